"""``sagestream invoke`` and ``sagestream demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sagestream.cli import main
from sagestream.emulator import Emulator

BODY = '{"inputs": "Tell me about rivers", "parameters": {"max_new_tokens": 12}}'


@pytest.fixture
def env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", emulator.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", emulator.secret_access_key)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return ["--endpoint-url", emulator.url, "--region", emulator.region]


def stock_text(runtime_client: Any, attrs: str) -> bytes:
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=BODY, CustomAttributes=attrs
    )
    return b"".join(e["PayloadPart"]["Bytes"] for e in resp["Body"])


def test_invoke_raw(env: list[str], runtime_client: Any, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["invoke", "demo", "--body", BODY, "--custom-attributes", "tokens=12", *env]) == 0
    out, err = capfdbinary.readouterr()
    assert out == stock_text(runtime_client, "tokens=12")
    assert b"12 parts" in err
    assert b"first part after" in err


def test_invoke_modes(env: list[str], capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert (
        main(
            [
                "invoke",
                "demo",
                "--body",
                BODY,
                "--custom-attributes",
                "format=sse;tokens=5",
                "--sse",
                "-q",
                *env,
            ]
        )
        == 0
    )
    out, err = capfdbinary.readouterr()
    docs = [json.loads(line) for line in out.decode().splitlines()]
    assert len(docs) == 5
    assert err == b""
    assert (
        main(
            [
                "invoke",
                "demo",
                "--body",
                BODY,
                "--custom-attributes",
                "format=jsonl;tokens=4",
                "--json",
                "-q",
                *env,
            ]
        )
        == 0
    )
    out, _ = capfdbinary.readouterr()
    assert len(out.decode().splitlines()) == 4
    assert main(["invoke", "echo", "--body", "a\nb\nc", "--lines", "-q", *env]) == 0
    out, _ = capfdbinary.readouterr()
    assert out == b"a\nb\nc\n"


def test_sse_over_plain_text_says_so(env: list[str], capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """--sse on an answer without SSE events ends with a note on stderr, not in silence."""
    assert (
        main(["invoke", "demo", "--body", BODY, "--custom-attributes", "tokens=5", "--sse", "-q", *env]) == 0
    )
    out, err = capfdbinary.readouterr()
    assert out == b""
    assert b"--sse:" in err
    assert b"no server-sent events" in err
    assert b"text/plain" in err
    assert main(["invoke", "echo", "--body", "", "--sse", "-q", *env]) == 0
    assert capfdbinary.readouterr() == (b"", b"")  # nothing received: nothing to explain


def test_invoke_body_from_file_and_no_stream(
    env: list[str], tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "body.bin"
    path.write_bytes(b"\x00\x01file body")
    assert main(["invoke", "echo", "--body", f"@{path}", "--no-stream", "-q", *env]) == 0
    out, _ = capfdbinary.readouterr()
    assert out == b"\x00\x01file body"


def test_invoke_errors(env: list[str], capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["invoke", "demo", "--body", BODY, "--custom-attributes", "fault=model-error", *env]) == 1
    _, err = capfdbinary.readouterr()
    assert b"ModelError" in err
    assert main(["invoke", "bad_name", "--body", BODY, *env]) == 2
    _, err = capfdbinary.readouterr()
    assert b"ParamValidationError" in err
    rc = main(
        ["invoke", "demo", "--body", BODY, "--custom-attributes", "fault=model-stream-error;after=3", *env]
    )
    assert rc == 1
    out, err = capfdbinary.readouterr()
    assert len(out) > 0
    assert b"ModelStreamError" in err
    assert b"3 parts" in err


def test_demo(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["demo", "--tokens", "6", "--delay-ms", "0"]) == 0
    out, err = capfdbinary.readouterr()
    assert len(out.split()) == 6
    assert b"emulated endpoint 'demo'" in err
    assert b"6 parts" in err
    for fmt in ("sse", "jsonl"):
        assert main(["demo", "--tokens", "6", "--delay-ms", "0", "--format", fmt, "-q"]) == 0
        out2, _ = capfdbinary.readouterr()
        assert out2 == out
