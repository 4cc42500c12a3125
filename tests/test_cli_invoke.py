"""``sagestream invoke`` against the emulator, as a user runs it."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from _cli_helpers import aws_env, no_traceback, use_aws_env
from _raw_server import RawServer, Request, Response, json_error
from sagestream.cli import _common, main
from sagestream.emulator import Emulator, demo_tokens

BODY = '{"inputs": "Tell me about rivers", "parameters": {"max_new_tokens": 12}}'


@pytest.fixture
def env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    use_aws_env(monkeypatch, emulator)
    return ["--endpoint-url", emulator.url]


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``argv``, which must be refused as a usage error (exit 2, no traceback); its stderr."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert no_traceback(err)
    return err


def stock_text(runtime_client: Any, attrs: str) -> bytes:
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=BODY, CustomAttributes=attrs
    )
    return b"".join(e["PayloadPart"]["Bytes"] for e in resp["Body"])


# --- streaming to stdout ---------------------------------------------------------------------


def test_invoke_raw(env: list[str], runtime_client: Any, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["invoke", "demo", "--body", BODY, "--custom-attributes", "tokens=12", *env]) == 0
    out, err = capfdbinary.readouterr()
    assert out == stock_text(runtime_client, "tokens=12")
    assert b"12 parts" in err
    assert b"first part after" in err
    assert b"[sagestream] no answer yet" not in err  # the emulator answers at once


def test_invoke_modes(env: list[str], capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    attrs = "format=sse;tokens=5"
    assert main(["invoke", "demo", "--body", BODY, "--custom-attributes", attrs, "--sse", "-q", *env]) == 0
    out, err = capfdbinary.readouterr()
    assert len([json.loads(line) for line in out.decode().splitlines()]) == 5
    assert err == b""
    attrs = "format=jsonl;tokens=4"
    assert main(["invoke", "demo", "--body", BODY, "--custom-attributes", attrs, "--json", "-q", *env]) == 0
    out, _ = capfdbinary.readouterr()
    assert len(out.decode().splitlines()) == 4
    assert main(["invoke", "echo", "--body", "a\nb\nc", "--lines", "-q", *env]) == 0
    out, _ = capfdbinary.readouterr()
    assert out == b"a\nb\nc\n"


def test_sse_over_plain_text_fails_and_says_so(
    env: list[str], capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """--sse on an answer without SSE events is not a silent success: a note on stderr, exit 1."""
    argv = ["invoke", "demo", "--body", BODY, "--custom-attributes", "tokens=5", "--sse", "-q", *env]
    assert main(argv) == 1
    out, err = capfdbinary.readouterr()
    assert out == b""
    assert b"--sse:" in err
    assert b"no server-sent events" in err
    assert b"text/plain" in err
    assert b'"stream": true' in err  # how to ask for events
    assert main(["invoke", "demo", "--body", BODY, "--json", "-q", *env]) == 1  # text is no JSON
    assert b"ReassemblyError: invalid JSON on line 1" in capfdbinary.readouterr().err
    assert main(["invoke", "echo", "--body", "", "--sse", "-q", *env]) == 0
    assert capfdbinary.readouterr() == (b"", b"")  # nothing received: nothing to explain


def test_the_readmes_sse_command_prints_the_events(
    env: list[str], capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A TGI body asks for events with "stream": true; each event's data is one line."""
    assert main(["invoke", "demo", "--body", '{"inputs": "Hi", "stream": true}', "--sse", "-q", *env]) == 0
    out, err = capfdbinary.readouterr()
    docs = [json.loads(line) for line in out.decode().splitlines()]
    assert [d["token"]["text"] for d in docs] == demo_tokens("Hi")
    assert err == b""


def test_body_from_a_file_and_from_stdin(
    env: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "body.bin"
    path.write_bytes(b"\x00\x01file body")
    assert main(["invoke", "echo", "--body", f"@{path}", "--no-stream", "-q", *env]) == 0
    assert capfdbinary.readouterr().out == b"\x00\x01file body"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    assert main(["invoke", "echo", "--body", "-", "-q", *env]) == 0
    assert capfdbinary.readouterr().out == b"from stdin"


def test_errors_keep_the_parts_received(env: list[str], capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["invoke", "demo", "--body", BODY, "--custom-attributes", "fault=model-error", *env]) == 1
    _, err = capfdbinary.readouterr()
    assert b"ModelError" in err
    attrs = "fault=model-stream-error;after=3"
    assert main(["invoke", "demo", "--body", BODY, "--custom-attributes", attrs, *env]) == 1
    out, err = capfdbinary.readouterr()
    assert len(out) > 0
    assert b"ModelStreamError" in err
    assert b"3 parts" in err
    assert no_traceback(err)


# --- InvokeEndpoint's own options ----------------------------------------------------------


def test_target_model_and_explanations_reach_invoke_endpoint(
    env: list[str], capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    def answer(request: Request) -> Response:
        return Response(
            headers={"Content-Type": "text/plain"}, writes=[b"ok"], chunked=False, content_length=2
        )

    with RawServer(answer) as server:
        argv = ["invoke", "mme", "--body", "x", "--no-stream", "-q", "--endpoint-url", server.url]
        assert main([*argv, "--target-model", "model-b.tar.gz", "--enable-explanations", "`true`"]) == 0
    assert capfdbinary.readouterr().out == b"ok"
    (request,) = server.requests
    assert request.path == "/endpoints/mme/invocations"
    assert request.headers["x-amzn-sagemaker-target-model"] == "model-b.tar.gz"
    assert request.headers["x-amzn-sagemaker-enable-explanations"] == "`true`"
    # The emulator, which checks TargetModel as the service does, takes it too.
    argv = ["invoke", "echo", "--body", "y", "--no-stream", "-q", "--target-model", "model-b.tar.gz"]
    assert main([*argv, *env]) == 0
    assert capfdbinary.readouterr().out == b"y"


def test_invoke_endpoint_options_need_no_stream(env: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "invoke", "demo", "--body", "x", "--target-model", "m.tar.gz", *env)
    assert "--target-model needs --no-stream" in err
    err = usage_error(capsys, "invoke", "demo", "--body", "x", "--enable-explanations", "`true`", *env)
    assert "--enable-explanations needs --no-stream" in err
    err = usage_error(capsys, "invoke", "demo", "--body", "x", "--no-stream", "--sse", *env)
    assert "--sse reads a response stream" in err


# --- usage errors: exit 2, what is expected, no traceback --------------------------------


def test_endpoint_url_without_a_scheme(env: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "invoke", "demo", "--body", "x", "--endpoint-url", "127.0.0.1:8080")
    assert "argument --endpoint-url" in err
    assert "did you mean http://127.0.0.1:8080?" in err


def test_body_from_a_missing_file(env: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.json"
    err = usage_error(capsys, "invoke", "demo", "--body", f"@{missing}", *env)
    assert f"argument --body: cannot read '{missing}'" in err
    assert "No such file" in err


def test_invalid_parameters_name_the_flag(env: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "invoke", "bad_name", "--body", "x", *env)
    assert "argument ENDPOINT: invalid EndpointName 'bad_name'" in err
    err = usage_error(capsys, "invoke", "demo", "--body", "x", "--custom-attributes", "caf\u00e9", *env)
    assert "argument --custom-attributes: invalid CustomAttributes" in err
    err = usage_error(capsys, "invoke", "demo", "--body", "x", "--deadline", "0", *env)
    assert "argument --deadline: expected a positive number of seconds" in err


# --- AWS setup: what to set ----------------------------------------------------------------


def test_no_region_says_what_sets_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_aws_env(monkeypatch, emulator)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert main(["invoke", "demo", "--body", "x", "--endpoint-url", emulator.url]) == 2
    err = capsys.readouterr().err
    assert "no AWS region" in err
    for setting in ("--region", "AWS_REGION", "~/.aws/config"):
        assert setting in err
    assert no_traceback(err)


def test_no_credentials_say_what_sets_them(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_aws_env(monkeypatch, None, AWS_DEFAULT_REGION=emulator.region)
    assert main(["invoke", "demo", "--body", "x", "--endpoint-url", emulator.url]) == 2
    err = capsys.readouterr().err
    assert "no AWS credentials found" in err
    for setting in ("AWS_ACCESS_KEY_ID", "--profile", "AWS_PROFILE", "~/.aws/credentials"):
        assert setting in err
    assert no_traceback(err)
    assert main(["invoke", "demo", "--body", "x", "--endpoint-url", emulator.url, "--profile", "nope"]) == 2
    err = capsys.readouterr().err
    assert "The config profile (nope) could not be found" in err
    assert "AWS_CONFIG_FILE" in err


# --- waiting and retries are said on stderr ------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("mode", "attempts"), [("legacy", 3), ("standard", 2)])
def test_unreachable_endpoint_says_it_retries(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    attempts: int,
) -> None:
    use_aws_env(monkeypatch, emulator, AWS_RETRY_MODE=mode, AWS_MAX_ATTEMPTS=str(attempts))
    url = f"http://127.0.0.1:{_closed_port()}"
    assert main(["invoke", "demo", "--body", "x", "--endpoint-url", url]) == 1
    err = capsys.readouterr().err
    retries = [line for line in err.splitlines() if line.endswith("; retrying")]
    # The user's retry configuration is kept: one notice per attempt but the last.
    assert len(retries) == attempts - 1
    for n, line in enumerate(retries, 1):
        assert line.startswith(f"[sagestream] attempt {n} of {attempts} to {url} failed (")
    assert f"retries as configured: mode {mode}, at most {attempts} attempts" in err
    assert err.count("retries as configured") == 1
    assert err.splitlines()[-1].startswith("sagestream invoke: ")
    assert no_traceback(err)


class _Recorder(io.StringIO):
    """stderr that tells when a text has been written to it."""

    def __init__(self, wanted: str) -> None:
        super().__init__()
        self.wanted = wanted
        self.seen = threading.Event()

    def write(self, text: str) -> int:
        n = super().write(text)
        if self.wanted in self.getvalue():
            self.seen.set()
        return n


def test_a_silent_endpoint_is_announced(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """No answer for a while: stderr names the URL; the endpoint answers only once it has."""
    use_aws_env(monkeypatch, emulator, AWS_MAX_ATTEMPTS="2")
    monkeypatch.setattr(_common, "NOTICE_AFTER", 0.1)
    err = _Recorder("[sagestream] no answer yet from ")
    monkeypatch.setattr(sys, "stderr", err)

    def answer(request: Request) -> Response:
        assert err.seen.wait(30), "no notice while the endpoint kept silent"
        return json_error(503, "ServiceUnavailable", "busy")

    with RawServer(answer) as server:
        argv = ["invoke", "demo", "--body", "x", "--no-stream", "--read-timeout", "20"]
        rc = main([*argv, "--endpoint-url", server.url])
    text = err.getvalue()
    assert rc == 1
    assert (
        f"[sagestream] no answer yet from {server.url} after 0.1 s; still waiting (attempt 1 of at most 2"
        in text
    )
    assert f"[sagestream] attempt 1 of 2 to {server.url} failed (HTTP 503); retrying" in text
    assert "sagestream invoke: ServiceUnavailable" in text
    assert len(server.requests) == 2


# --- a reader that goes away -----------------------------------------------------------------


def test_stdout_closed_early_is_a_quiet_exit_0(emulator: Emulator) -> None:
    """`sagestream invoke ... | head -c 1000`: exit 0 and nothing on stderr."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sagestream",
            "invoke",
            "demo",
            "--body",
            "x",
            "--endpoint-url",
            emulator.url,
            "--custom-attributes",
            "parts=20000;part_size=100",
        ],  # 2 MB: far more than a pipe holds
        env=aws_env(emulator),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert len(proc.stdout.read(1000)) == 1000
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err == b""


def test_the_command_line_client_takes_the_request_path() -> None:
    """The notices ride on the client's attempt observer, not on botocore handlers of the
    runtime client, so `sagestream invoke` keeps the fast path."""
    import argparse

    from sagestream.cli import _common

    args = argparse.Namespace(profile=None, region="us-east-1", endpoint_url="http://127.0.0.1:9")
    with _common.ConnectionNotices() as notices:
        client = _common.make_client(args, notices)
        assert client.fast_path, client.fast_path_reason
