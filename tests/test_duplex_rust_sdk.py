"""The AWS SDK for Rust's own client (``aws-sdk-sagemakerruntimehttp2``), unchanged, against
the emulator's TLS port: signed request, signed event chain, every field, errors.

The program lives in ``examples/rust-sdk`` (its own cargo project: the SDK takes minutes
to build, so CI does not build it); ``make test-rust-sdk`` builds it and runs this file.
Without the binary the tests are skipped, saying how to build it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sagestream.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(
    os.environ.get("SAGESTREAM_RUST_SDK_DUPLEX", ROOT / "target" / "rust-sdk" / "release" / "rust-sdk-duplex")
)

pytestmark = pytest.mark.skipif(
    not BINARY.exists(), reason=f"{BINARY} is not built: run `make test-rust-sdk`"
)


def run(emu: Emulator, endpoint: str, lines: list[str], query: str | None = None) -> list[str]:
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=emu.access_key_id,
        AWS_SECRET_ACCESS_KEY=emu.secret_access_key,
        AWS_REGION=emu.region,
    )
    args = [str(BINARY), "parts", str(emu.duplex_tls_url), str(emu.duplex_ca_file), endpoint]
    if query is not None:
        args.append(query)
    done = subprocess.run(
        args,
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_echo_with_every_field(duplex_emulator: Emulator) -> None:
    out = run(duplex_emulator, "echo", ["UTF8 COMPLETE hello world", "BINARY PARTIAL abc", "- - plain"])
    assert out == ["variant AllTraffic", "UTF8 COMPLETE hello world", "BINARY PARTIAL abc", "- - plain"]


def test_demo_transcript(duplex_emulator: Emulator) -> None:
    out = run(duplex_emulator, "demo", ["UTF8 PARTIAL the quick", "UTF8 COMPLETE fox"])
    assert out == [
        "variant AllTraffic",
        "UTF8 PARTIAL the",
        "UTF8 PARTIAL the quick",
        "UTF8 PARTIAL the quick fox",
        "UTF8 COMPLETE the quick fox.",
    ]


def test_the_websocket_container(duplex_emulator: Emulator) -> None:
    out = run(duplex_emulator, "ws", ["UTF8 - hello", "BINARY - abc", "UTF8 - bye"])
    assert out == ["variant AllTraffic", "UTF8 - HELLO", "BINARY - cba"]


def test_stream_errors_reach_the_sdk_typed(duplex_emulator: Emulator) -> None:
    out = run(
        duplex_emulator,
        "echo",
        ["UTF8 - a", "UTF8 - b"],
        "fault=model-stream-error&after=1&code=StreamBroken",
    )
    assert out[:2] == ["variant AllTraffic", "UTF8 - a"]
    assert out[2].startswith("error ModelStreamError StreamBroken ")
    out = run(duplex_emulator, "echo", ["UTF8 - a"], "fault=internal-stream-failure&after=0")
    assert out[1].startswith("error InternalStreamFailure")


def test_operation_errors_reach_the_sdk_by_their_modeled_names(duplex_emulator: Emulator) -> None:
    assert run(duplex_emulator, "nowhere", ["UTF8 - a"])[0].startswith(
        "error InputValidationError - Endpoint nowhere"
    )
    assert run(duplex_emulator, "echo", ["UTF8 - a"], "fault=model-error")[0].startswith("error ModelError ")
    assert run(duplex_emulator, "echo", ["UTF8 - a"], "fault=unavailable")[0].startswith(
        "error ServiceUnavailableError "
    )
    assert run(duplex_emulator, "echo", ["UTF8 - a"], "fault=internal-failure")[0].startswith(
        "error InternalServerError "
    )
