"""Running ``sagestream`` as a user does: an AWS environment of its own, in or out of process."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from sagestream.emulator import Emulator


def aws_env(emulator: Emulator | None = None, **extra: str) -> dict[str, str]:
    """The process environment without the machine's AWS settings, plus ``emulator``'s keys.

    No config or credentials file and no instance metadata: only what the test sets counts.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    if emulator is not None:
        env.update(
            AWS_ACCESS_KEY_ID=emulator.access_key_id,
            AWS_SECRET_ACCESS_KEY=emulator.secret_access_key,
            AWS_DEFAULT_REGION=emulator.region,
        )
    env.update(extra)
    return env


def use_aws_env(monkeypatch: pytest.MonkeyPatch, emulator: Emulator | None = None, **extra: str) -> None:
    """:func:`aws_env` for this process, for the length of a test."""
    env = aws_env(emulator, **extra)
    for key in list(os.environ):
        if key.startswith("AWS_") and key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)


def run_cli(*args: str, env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
    """``python -m sagestream ARGS`` to completion (bounded), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "sagestream", *args],
        env=env,
        capture_output=True,
        timeout=90,
        check=False,
        **kw,
    )


def no_traceback(stderr: str | bytes) -> bool:
    """Whether stderr is free of Python's traceback and unraisable-exception reports."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    return "Traceback" not in text and "Exception ignored" not in text
