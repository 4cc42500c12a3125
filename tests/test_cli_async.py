"""``sagestream invoke-async`` end to end against the emulator, as a user runs it."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from _cli_helpers import aws_env, no_traceback, run_cli
from rich.console import Console
from rich.text import Text
from sagestream import WaitProgress
from sagestream.cli._waiting import BAR_LIMIT, WaitDisplay
from sagestream.emulator import Emulator

BUCKET = "sagestream-cli-inputs"
LONG_ID = "an-inference-id-far-longer-than-a-narrow-terminal-is-wide"


@pytest.fixture
def cli(emulator: Emulator) -> Any:
    s3 = emulator.boto3_client("s3", endpoint_url=emulator.s3_endpoint_url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=BUCKET)
    env = aws_env(emulator)

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        urls = ["--endpoint-url", emulator.url, "--s3-endpoint-url", str(emulator.s3_endpoint_url)]
        return run_cli("invoke-async", *args, *urls, env=env)

    return run


@pytest.fixture
def input_file(tmp_path: Path) -> str:
    path = tmp_path / "input.bin"
    path.write_bytes(b"x")
    return str(path)


def test_wait_writes_the_output_to_stdout(cli: Any, tmp_path: Path) -> None:
    data = bytes(range(256)) * 50
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    done = cli("echo", "--input", str(path), "--input-prefix", f"s3://{BUCKET}/cli", "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout == data
    # stderr is a pipe here: plain progress lines, ending with the outcome.
    lines = done.stderr.decode().splitlines()
    assert lines[0].startswith("inference ")
    assert re.fullmatch(r"\S+: succeeded after \d+\.\ds \(\d+ polls?\)", lines[-1])


def test_without_wait_prints_the_locations(cli: Any, emulator: Emulator) -> None:
    s3 = emulator.boto3_client("s3", endpoint_url=emulator.s3_endpoint_url)
    s3.put_object(Bucket=BUCKET, Key="given.txt", Body=b"given")
    done = cli("echo", "--input-location", f"s3://{BUCKET}/given.txt", "--inference-id", "cli-1")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["InferenceId"] == "cli-1"
    assert doc["OutputLocation"].startswith("s3://")
    assert doc["FailureLocation"].startswith("s3://")


def test_failure_document_goes_to_stderr(cli: Any, input_file: str) -> None:
    attrs = "fault=model-error;message=cli failure"
    done = cli(
        "echo",
        "--input",
        input_file,
        "--input-prefix",
        f"s3://{BUCKET}/cli",
        "--wait",
        "--custom-attributes",
        attrs,
    )
    assert done.returncode == 1
    assert done.stdout == b""
    assert b"cli failure" in done.stderr
    assert no_traceback(done.stderr)


def test_timeout_exit_code(cli: Any, input_file: str) -> None:
    attrs = "fault=stall;seconds=2"
    args = [
        "--input-prefix",
        f"s3://{BUCKET}/cli",
        "--wait",
        "--timeout",
        "0.2",
        "--custom-attributes",
        attrs,
    ]
    done = cli("echo", "--input", input_file, *args)
    assert done.returncode == 124
    assert b"neither the output" in done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--input-location", f"s3://{BUCKET}/k", "--request-ttl", "30"],
            "argument --request-ttl: invalid RequestTTLSeconds 30",
        ),
        (
            ["--input-location", f"s3://{BUCKET}/k", "--invocation-timeout", "x"],
            "argument --invocation-timeout: expected an integer, got 'x'",
        ),
        (["--input-location", "bucket/k"], "argument --input-location: invalid InputLocation 'bucket/k'"),
        (["--input", "{input}"], "--input needs --input-prefix"),
        (
            ["--input", "{input}", "--input-prefix", "bucket/in"],
            "argument --input-prefix: invalid input prefix",
        ),
        (
            ["--input", "/no/such/file", "--input-prefix", f"s3://{BUCKET}/in"],
            "argument --input: cannot read '/no/such/file'",
        ),
        (["--input-location", f"s3://{BUCKET}/k", "--timeout", "5"], "--timeout bounds --wait"),
        (
            ["--input-location", f"s3://{BUCKET}/k", "--filename", "a.b.c"],
            "argument --filename: invalid Filename",
        ),
        ([], "one of the arguments --input --input-location is required"),
    ],
)
def test_bad_arguments_name_the_flags(cli: Any, input_file: str, args: list[str], expected: str) -> None:
    done = cli("echo", *[a.replace("{input}", input_file) for a in args])
    err = done.stderr.decode()
    assert done.returncode == 2
    assert expected in err
    assert no_traceback(err)
    for python_name in (
        "input_prefix",
        "input_location",
        "request_ttl_seconds",
        "invocation_timeout_seconds",
    ):
        assert python_name not in err


def test_no_region_says_what_sets_it(emulator: Emulator) -> None:
    env = aws_env(emulator)
    del env["AWS_DEFAULT_REGION"]
    done = run_cli(
        "invoke-async",
        "echo",
        "--input-location",
        f"s3://{BUCKET}/k",
        "--endpoint-url",
        emulator.url,
        env=env,
    )
    assert done.returncode == 2
    assert b"no AWS region: pass --region REGION, set AWS_REGION" in done.stderr
    assert no_traceback(done.stderr)


# --- the display on a terminal ---------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _frames(raw: str) -> list[str]:
    """The lines as drawn: control sequences dropped, split at each carriage return."""
    return [f for f in _ANSI.sub("", raw).replace("\n", "\r").split("\r") if f.strip()]


def _event(state: Any, elapsed: float, attempts: int) -> WaitProgress:
    return WaitProgress(LONG_ID, elapsed, attempts, state, "s3://b/o", "s3://b/f")


def _wait_for(buf: io.StringIO, text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in buf.getvalue():
        assert time.monotonic() < deadline, f"{text!r} never drawn: {buf.getvalue()!r}"
        time.sleep(0.05)


def test_the_clock_ticks_without_polls_on_one_line_of_a_narrow_terminal() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=30)
    with WaitDisplay(io.StringIO(), LONG_ID, bound=22_500.0, console=console) as display:
        display(_event("waiting", 0.01, 1))
        _wait_for(buf, "0:00:02")  # two seconds on, with no poll since the first
        live = buf.getvalue()
        display(_event("succeeded", 2.2, 2))
    frames = _frames(live)
    assert "\n" not in live  # every redraw replaced the line; none added one
    assert len(frames) > 2
    assert all(Text.from_ansi(f).cell_len <= 30 for f in frames)
    assert all(f.startswith(("⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏")) for f in frames)
    assert "━" not in live  # the limit is hours away: no bar that would never move


def test_a_near_limit_gets_a_bar_that_moves_with_the_clock() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    with WaitDisplay(io.StringIO(), "id", bound=4.0, console=console):
        _wait_for(buf, "0:00:02")
    assert BAR_LIMIT >= 4.0
    bars = {f.count("━") + f.count("╸") for f in _frames(buf.getvalue()) if "━" in f}
    assert len(bars) > 1  # the bar grew between polls (there were none)


def test_the_outcome_stays_as_one_plain_line() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=80)
    with WaitDisplay(stream, "id-1", bound=100.0, console=console) as display:
        display(WaitProgress("id-1", 0.4, 3, "failed", "s3://b/o", "s3://b/f"))
    assert stream.getvalue().endswith("id-1: failed after 0.4s (3 polls)\n")


def test_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with WaitDisplay(stream, "id-2", bound=100.0) as display:
        display(WaitProgress("id-2", 0.05, 1, "waiting", "s3://b/o", "s3://b/f"))
        display(WaitProgress("id-2", 0.15, 2, "timed_out", "s3://b/o", "s3://b/f"))
    assert stream.getvalue() == "id-2: waiting after 0.1s (1 poll)\nid-2: timed out after 0.1s (2 polls)\n"


def test_ctrl_c_on_a_terminal_ends_the_line(emulator: Emulator, cli: Any, input_file: str) -> None:
    """A real terminal (a pty 40 columns wide) and a real SIGINT while waiting."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    urls = ["--endpoint-url", emulator.url, "--s3-endpoint-url", str(emulator.s3_endpoint_url)]
    args = ["--input", input_file, "--input-prefix", f"s3://{BUCKET}/cli", "--wait"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sagestream",
            "invoke-async",
            "echo",
            *args,
            *urls,
            "--custom-attributes",
            "fault=stall;seconds=15",
        ],
        env={**aws_env(emulator), "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    seen = b""

    def read_some() -> bytes:
        return os.read(master, 65536) if select.select([master], [], [], 0.1)[0] else b""

    try:
        deadline = time.monotonic() + 60
        while b"polls" not in seen:  # the live line is up
            assert time.monotonic() < deadline, seen
            seen += read_some()
        proc.send_signal(signal.SIGINT)
        while proc.poll() is None:
            assert time.monotonic() < deadline, seen
            seen += read_some()
        # This end still holds the terminal open, so what the child wrote stays readable.
        while data := read_some():
            seen += data
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        os.close(slave)
        os.close(master)
    text = seen.decode("utf-8", "replace")
    assert proc.returncode == 130
    assert out == b""
    assert no_traceback(text)
    assert "\x1b[?25h" in text  # the cursor is shown again
    assert text.endswith("\r\n")  # the last line is ended
    assert "stopped waiting; the inference goes on, its output will be at s3://" in _ANSI.sub("", text)
    # Up to the interrupt, only the line before the display ended: the redraws added none.
    before = text[: text.index("\x1b[?25h")]
    assert before.count("\n") == 2  # the "waiting for" line, and the one rich ends the display with
