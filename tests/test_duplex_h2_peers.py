"""The bidirectional operation's transport against scripted HTTP/2 servers (tests/_h2_peer.py):
an answer that ends without its END_STREAM — a stream reset with NO_ERROR, a GOAWAY that cuts
it — is a lost connection (or a truncation inside a frame) after every part received, on both
clients; an error answer's body is bounded like every other."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sagestream
from _h2_peer import END, END_THEN_RESET, GOAWAY, GOAWAY_CLOSE, RESET_CANCEL, RESET_NO_ERROR, H2Peer, Script
from _raw_server import payload_frame

PARTS = [b"first ", b"second ", b"third "]
FRAMES = [payload_frame(p) for p in PARTS]
#: Ten bytes of a fourth frame: a cut inside it.
PARTIAL = payload_frame(b"fourth")[:10]

_CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "AKIDH2PEER",
    "aws_secret_access_key": "secret",
    # InvokeEndpoint is not called: the bidirectional session goes to the peer.
    "endpoint_url": "http://127.0.0.1:9",
}


def run_sync(url: str, *, close_input: bool = True, **kw: Any) -> tuple[list[bytes], BaseException | None]:
    client = sagestream.Client(**_CREDENTIALS, **kw)
    got: list[bytes] = []
    try:
        with client.invoke_bidirectional("ep", endpoint_url=url, deadline=30) as session:
            if close_input:
                session.close_input()
            for part in session:
                got.append(bytes(part))
    except Exception as exc:
        return got, exc
    finally:
        client.close()
    return got, None


def run_async(url: str, *, close_input: bool = True, **kw: Any) -> tuple[list[bytes], BaseException | None]:
    async def main() -> tuple[list[bytes], BaseException | None]:
        got: list[bytes] = []
        async with sagestream.AsyncClient(**_CREDENTIALS, **kw) as client:
            try:
                async with client.invoke_bidirectional("ep", endpoint_url=url, deadline=30) as session:
                    if close_input:
                        session.close_input()
                    async for part in session:
                        got.append(bytes(part))
            except Exception as exc:
                return got, exc
        return got, None

    return asyncio.run(asyncio.wait_for(main(), 60))


RUNNERS = {"Client": run_sync, "AsyncClient": run_async}


@pytest.fixture(params=list(RUNNERS))
def runner(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def outcome(script: Script, runner: str, **kw: Any) -> tuple[list[bytes], BaseException | None, int]:
    with H2Peer(script) as peer:
        parts, error = RUNNERS[runner](peer.url, **kw)
        return parts, error, peer.requests


@pytest.mark.parametrize("ending", [END, END_THEN_RESET])
def test_an_answer_that_ends_with_its_end_stream_is_whole(runner: str, ending: str) -> None:
    # The input is left open: the server's answer ends first (then, for the second, the server
    # resets the request half with NO_ERROR, as RFC 9113 section 8.1 allows).
    parts, error, requests = outcome(Script(writes=FRAMES, ending=ending), runner, close_input=False)
    assert (parts, error, requests) == (PARTS, None, 1)


@pytest.mark.parametrize("ending", [RESET_NO_ERROR, GOAWAY, GOAWAY_CLOSE, RESET_CANCEL])
def test_an_answer_cut_between_frames_is_a_lost_connection(runner: str, ending: str) -> None:
    parts, error, requests = outcome(Script(writes=FRAMES, ending=ending), runner)
    assert parts == PARTS
    assert type(error) is sagestream.ConnectionLostError, repr(error)
    assert requests == 1


@pytest.mark.parametrize("ending", [RESET_NO_ERROR, GOAWAY, GOAWAY_CLOSE, RESET_CANCEL])
def test_an_answer_cut_inside_a_frame_is_truncated(runner: str, ending: str) -> None:
    parts, error, requests = outcome(Script(writes=[*FRAMES, PARTIAL], ending=ending), runner)
    assert parts == PARTS
    assert type(error) is sagestream.TruncatedStreamError, repr(error)
    assert requests == 1


def test_an_end_stream_missing_is_named(runner: str) -> None:
    _, error, _ = outcome(Script(writes=FRAMES, ending=RESET_NO_ERROR), runner)
    assert "END_STREAM" in str(error)


def test_an_error_answer_past_its_cap_is_refused(runner: str) -> None:
    """A 500 whose body goes on for 64 MiB: refused past the 1 MiB error bound, the stream reset."""
    block = b"e" * (1024 * 1024)
    script = Script(status=500, writes=[block] * 64, headers=[("x-amzn-errortype", "InternalServerError")])
    parts, error, requests = outcome(script, runner)
    assert parts == []
    assert type(error) is sagestream.ResponseTooLargeError, repr(error)
    assert error.limit == 1024 * 1024
    assert "HTTP 500" in str(error)
    assert requests == 1


def test_an_error_answer_within_its_cap_is_the_service_error(runner: str) -> None:
    body = b'{"message": "bad input"}'
    script = Script(status=400, writes=[body], headers=[("x-amzn-errortype", "InputValidationError")])
    parts, error, _ = outcome(script, runner)
    assert parts == []
    assert type(error) is sagestream.InputValidationError, repr(error)
    limits = sagestream.ResponseLimits(error_body=len(body) - 1)
    _, error, _ = outcome(script, runner, response_limits=limits)
    assert type(error) is sagestream.ResponseTooLargeError, repr(error)
