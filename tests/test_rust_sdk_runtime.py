"""The AWS SDK for Rust's own client (``aws-sdk-sagemakerruntime``), unchanged, against the
emulator: PrefixAwareId on InvokeEndpoint and InvokeEndpointWithResponseStream, InvokeEndpointAsync
with an inline Body, and the emulator's refusals as the SDK reads them.

The program is ``rust-sdk-runtime`` in ``examples/rust-sdk`` (its own cargo project: the SDK
takes minutes to build, so CI does not build it); ``make test-rust-sdk`` builds it and runs
this file. Without the binary the tests are skipped, saying how to build it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _emulator_fixtures import record_of, s3_object
from sagestream.emulator import Emulator, RequestRecord

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(
    os.environ.get(
        "SAGESTREAM_RUST_SDK_RUNTIME", ROOT / "target" / "rust-sdk" / "release" / "rust-sdk-runtime"
    )
)

pytestmark = pytest.mark.skipif(
    not BINARY.exists(), reason=f"{BINARY} is not built: run `make test-rust-sdk`"
)

BODY = b'{"inputs": "from the Rust SDK"}'


def run(emu: Emulator, mode: str, endpoint: str, *args: str, body: bytes = BODY) -> list[str]:
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=emu.access_key_id,
        AWS_SECRET_ACCESS_KEY=emu.secret_access_key,
        AWS_REGION=emu.region,
    )
    done = subprocess.run(
        [str(BINARY), mode, emu.url, endpoint, *args],
        input=body,
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().splitlines()


def record(emu: Emulator, lines: list[str]) -> RequestRecord:
    """The emulator's record of the request whose id the program printed first."""
    assert lines[0].startswith("request-id ")
    return record_of(emu, lines[0].split(" ", 1)[1], within=10)


def test_invoke_endpoint_with_a_prefix_aware_id(emulator: Emulator) -> None:
    lines = run(emulator, "invoke", "echo", "conversation-rust")
    assert lines[1:] == [f"body {BODY.decode()}"]
    r = record(emulator, lines)
    assert (r.operation, r.status, r.prefix_aware_id) == ("InvokeEndpoint", 200, "conversation-rust")


def test_a_stream_with_a_prefix_aware_id(emulator: Emulator) -> None:
    lines = run(emulator, "stream", "echo", "conversation-rust-stream")
    parts = [line.removeprefix("part ") for line in lines[1:]]
    assert all(line.startswith("part ") for line in lines[1:])
    assert "".join(parts) == BODY.decode()
    r = record(emulator, lines)
    assert r.operation == "InvokeEndpointWithResponseStream"
    assert r.prefix_aware_id == "conversation-rust-stream"


def test_without_a_prefix_aware_id_none_is_recorded(emulator: Emulator) -> None:
    r = record(emulator, run(emulator, "invoke", "echo"))
    assert r.prefix_aware_id is None


def test_the_service_refuses_a_prefix_aware_id_over_64_characters(emulator: Emulator) -> None:
    # The SDK leaves length constraints to the service; the emulator answers as the service does.
    for mode in ("invoke", "stream"):
        lines = run(emulator, mode, "echo", "p" * 65)
        assert len(lines) == 1, lines
        assert lines[0].startswith("error ValidationError "), lines
        assert "prefixAwareId" in lines[0]


def test_invoke_endpoint_async_with_an_inline_body(emulator: Emulator, s3_client: Any) -> None:
    lines = run(emulator, "async", "echo", body=b"inline from the Rust SDK")
    fields = dict(line.split(" ", 1) for line in lines)
    assert fields["output-location"].startswith("s3://")
    assert fields["inference-id"] in fields["output-location"].split("/", 3)[3]
    assert s3_object(s3_client, fields["output-location"]) == b"inline from the Rust SDK"
    assert record(emulator, lines).operation == "InvokeEndpointAsync"


def test_an_inline_body_over_128000_bytes_is_refused(emulator: Emulator) -> None:
    lines = run(emulator, "async", "echo", body=b"x" * 128_001)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error ValidationError "), lines
