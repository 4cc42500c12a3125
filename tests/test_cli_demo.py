"""``sagestream demo``: the README's first command, needing no AWS account."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _cli_helpers import aws_env
from sagestream.cli import main
from sagestream.cli.demo import DEMO_PROMPT
from sagestream.emulator import demo_tokens


def test_demo_streams_the_text_and_a_summary(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["demo", "--tokens", "6", "--delay-ms", "0"]) == 0
    out, err = capfdbinary.readouterr()
    assert out == "".join(demo_tokens(DEMO_PROMPT, tokens=6)).encode() + b"\n"
    assert b"emulated endpoint 'demo'" in err
    assert b"6 parts" in err


def test_demo_without_tokens_streams_the_models_own_answer(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["demo", "--delay-ms", "0", "-q"]) == 0
    out, _ = capfdbinary.readouterr()
    assert out == "".join(demo_tokens(DEMO_PROMPT)).encode() + b"\n"
    assert out.endswith(b".\n")


@pytest.mark.parametrize("fmt", ["sse", "jsonl"])
def test_demo_formats_decode_to_the_same_text(fmt: str, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["demo", "--tokens", "6", "--delay-ms", "0", "--format", fmt, "-q"]) == 0
    out, err = capfdbinary.readouterr()
    assert out == "".join(demo_tokens(DEMO_PROMPT, tokens=6)).encode() + b"\n"
    assert err == b""


def test_demo_into_a_closed_pipe_is_a_quiet_exit_0() -> None:
    """`sagestream demo | head -c 100`: exit 0 and nothing on stderr but the banner."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagestream", "demo", "--tokens", "30000", "--delay-ms", "0"],
        env=aws_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.decode().splitlines()[0].startswith("[sagestream] emulated endpoint 'demo' at ")
    assert len(err.splitlines()) == 1
