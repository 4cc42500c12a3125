"""``sagestream invoke-async`` end to end against the emulator, as a user runs it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sagestream._async_inference import WaitProgress
from sagestream._cli_async import Progress
from sagestream.emulator import Emulator

BUCKET = "sagestream-cli-inputs"


@pytest.fixture
def cli(emulator: Emulator) -> Any:
    s3 = emulator.boto3_client("s3", endpoint_url=emulator.s3_endpoint_url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=BUCKET)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": emulator.access_key_id,
        "AWS_SECRET_ACCESS_KEY": emulator.secret_access_key,
        "AWS_DEFAULT_REGION": emulator.region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    env.pop("AWS_PROFILE", None)

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, "-m", "sagestream", "invoke-async", *args]
        command += ["--endpoint-url", emulator.url, "--s3-endpoint-url", str(emulator.s3_endpoint_url)]
        return subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)

    return run


def test_wait_writes_the_output_to_stdout(cli: Any, tmp_path: Path) -> None:
    data = bytes(range(256)) * 50
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    done = cli("echo", "--input", str(path), "--input-prefix", f"s3://{BUCKET}/cli", "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout == data
    # stderr is a pipe here: plain progress lines, ending with the outcome.
    lines = done.stderr.decode().splitlines()
    assert lines[-1].split(": ")[1].startswith("succeeded after")


def test_without_wait_prints_the_locations(cli: Any, emulator: Emulator) -> None:
    s3 = emulator.boto3_client("s3", endpoint_url=emulator.s3_endpoint_url)
    s3.put_object(Bucket=BUCKET, Key="given.txt", Body=b"given")
    done = cli("echo", "--input-location", f"s3://{BUCKET}/given.txt", "--inference-id", "cli-1")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["InferenceId"] == "cli-1"
    assert doc["OutputLocation"].startswith("s3://")
    assert doc["FailureLocation"].startswith("s3://")


def test_failure_document_goes_to_stderr(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(b"x")
    done = cli(
        "echo",
        "--input",
        str(path),
        "--input-prefix",
        f"s3://{BUCKET}/cli",
        "--wait",
        "--custom-attributes",
        "fault=model-error;message=cli failure",
    )
    assert done.returncode == 1
    assert done.stdout == b""
    assert b"cli failure" in done.stderr


def test_timeout_exit_code(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(b"x")
    done = cli(
        "echo",
        "--input",
        str(path),
        "--input-prefix",
        f"s3://{BUCKET}/cli",
        "--wait",
        "--timeout",
        "0.2",
        "--custom-attributes",
        "fault=stall;seconds=2",
    )
    assert done.returncode == 124
    assert b"neither the output" in done.stderr


def test_bad_arguments(cli: Any) -> None:
    done = cli("echo", "--input-location", f"s3://{BUCKET}/k", "--request-ttl", "30")
    assert done.returncode == 2
    assert b"RequestTTLSeconds" in done.stderr
    done = cli("echo")  # neither --input nor --input-location
    assert done.returncode == 2


def test_progress_bar_on_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(out, bound=10.0, tty=True)
    progress(WaitProgress("id", 2.5, 3, "waiting", "s3://b/o", "s3://b/f"))
    progress(WaitProgress("id", 5.0, 4, "succeeded", "s3://b/o", "s3://b/f"))
    text = out.getvalue()
    assert text.startswith("\r[" + "#" * 7 + "." * 23 + "]")
    assert "\r[" + "#" * 15 + "." * 15 + "]" in text
    assert text.endswith("\n")
    assert text.count("\n") == 1
