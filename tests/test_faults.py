"""One fault suite for both clients: the same scripted misbehaviour, the same outcome.

Each case scripts a loopback server's answer byte by byte and runs it through ``Client`` and
``AsyncClient``. Both must hand out every part that arrived before the fault, then raise the
same exception class, and send the request once: a request is never sent again after response
headers, and a call's ``deadline`` bounds the wait for the headers too.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import boto3
import pytest
import sagestream
from _raw_server import (
    CUT,
    EVENTSTREAM,
    LAST_CHUNK,
    RawServer,
    Request,
    Response,
    chunk,
    payload_frame,
)
from botocore.config import Config

PARTS = [b"first ", b"second ", b"third "]
FRAMES = [payload_frame(p) for p in PARTS]
STATUS = b"HTTP/1.1 200 OK\r\n"
STREAM_HEADERS = (
    b"Content-Type: " + EVENTSTREAM.encode() + b"\r\n"
    b"X-Amzn-SageMaker-Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
)
#: Generous: a loaded machine may be slow to run the client, never so slow as this.
DEADLINE = 1.5


def _session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="AKIDFAULT", aws_secret_access_key="secret", region_name="us-east-1"
    )


def _config() -> Config:
    # Retries allowed, so a re-sent request would show in the server's count.
    return Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=30, connect_timeout=5)


@dataclass
class Outcome:
    parts: list[bytes]
    error: BaseException | None
    requests: int


def run_sync(url: str, deadline: float | None) -> tuple[list[bytes], BaseException | None]:
    client = sagestream.Client(_session(), endpoint_url=url, config=_config())
    got: list[bytes] = []
    try:
        with client.invoke_stream("ep", b"{}", deadline=deadline) as stream:
            got.extend(stream)
    except Exception as exc:
        return got, exc
    finally:
        client.close()
    return got, None


def run_async(url: str, deadline: float | None) -> tuple[list[bytes], BaseException | None]:
    async def main() -> tuple[list[bytes], BaseException | None]:
        got: list[bytes] = []
        async with sagestream.AsyncClient(_session(), endpoint_url=url, config=_config()) as client:
            try:
                async with client.invoke_stream("ep", b"{}", deadline=deadline) as stream:
                    async for part in stream:
                        got.append(part)
            except Exception as exc:
                return got, exc
        return got, None

    return asyncio.run(asyncio.wait_for(main(), 60))


RUNNERS = {"Client": run_sync, "AsyncClient": run_async}


def outcome(script: Callable[[], Response], runner: str, deadline: float | None = None) -> Outcome:
    """Serve a fresh ``script()`` answer to every request and run one stream through ``runner``."""

    def handler(_: Request) -> Response:
        return script()

    with RawServer(handler) as server:
        parts, error = RUNNERS[runner](server.url, deadline)
        return Outcome(parts, error, len(server.requests))


def trickled_headers() -> Response:
    """The status line, then a header's bytes one every 0.2 s, never ending."""
    return Response(head_writes=itertools.chain([STATUS, b"X-Slow: "], itertools.cycle([b"a", 0.2])))


def endless_continue() -> Response:
    """``100 Continue`` interim answers, one every 0.1 s, and never the final one."""
    return Response(head_writes=itertools.cycle([b"HTTP/1.1 100 Continue\r\n\r\n", 0.1]))


def bad_chunk_in_first_read() -> Response:
    """Headers, a whole part and a malformed chunk size line, all in one write."""
    return Response(head_writes=[STATUS + STREAM_HEADERS + chunk(FRAMES[0]) + b"zz\r\n", 0.05, CUT])


def cut_mid_frame() -> Response:
    half = FRAMES[2][: len(FRAMES[2]) // 2]
    return Response(
        head_writes=[STATUS + STREAM_HEADERS],
        writes=[chunk(FRAMES[0]), chunk(FRAMES[1]), chunk(half), 0.05, CUT],
    )


def cut_between_frames() -> Response:
    return Response(head_writes=[STATUS + STREAM_HEADERS], writes=[chunk(FRAMES[0]), 0.05, CUT])


def html_answer() -> Response:
    body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    return Response(headers={"Content-Type": "text/html"}, writes=[chunk(body), LAST_CHUNK])


def gzip_answer() -> Response:
    body = gzip.compress(b"".join(FRAMES), mtime=0)  # the same bytes on both clients
    return Response(
        headers={"Content-Type": EVENTSTREAM, "Content-Encoding": "gzip"},
        writes=[chunk(body), LAST_CHUNK],
    )


def malformed_head() -> Response:
    """A status line hyper cannot parse: the server had the request."""
    return Response(head_writes=[b"HTTP/1.1 2x0 OK\r\n" + STREAM_HEADERS, 0.05, CUT])


def complete() -> Response:
    return Response(head_writes=[STATUS + STREAM_HEADERS], writes=[*map(chunk, FRAMES), LAST_CHUNK])


@pytest.fixture(params=list(RUNNERS))
def runner(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_complete_stream_is_whole_on_both(runner: str) -> None:
    result = outcome(complete, runner)
    assert (result.parts, result.error, result.requests) == (PARTS, None, 1)


@pytest.mark.parametrize("script", [trickled_headers, endless_continue], ids=["trickled", "100-continue"])
def test_the_deadline_covers_the_wait_for_headers(script: Callable[[], Response], runner: str) -> None:
    result = outcome(script, runner, deadline=DEADLINE)
    assert type(result.error) is sagestream.DeadlineExceededError
    assert result.parts == []
    assert result.requests == 1


def test_a_bad_chunk_in_the_first_read_keeps_the_part_before_it(runner: str) -> None:
    result = outcome(bad_chunk_in_first_read, runner)
    assert result.parts == PARTS[:1]
    assert type(result.error) is sagestream.InvalidFrameError
    assert "chunk" in str(result.error)
    assert result.requests == 1


def test_a_cut_inside_a_frame_is_truncated(runner: str) -> None:
    result = outcome(cut_mid_frame, runner)
    assert result.parts == PARTS[:2]
    assert type(result.error) is sagestream.TruncatedStreamError
    assert result.requests == 1


def test_a_cut_between_frames_is_connection_lost(runner: str) -> None:
    result = outcome(cut_between_frames, runner)
    assert result.parts == PARTS[:1]
    assert type(result.error) is sagestream.ConnectionLostError
    assert result.requests == 1


def test_a_malformed_head_is_named_and_never_sent_again(runner: str) -> None:
    result = outcome(malformed_head, runner)
    assert result.parts == []
    assert type(result.error) is sagestream.MalformedResponseError
    assert "invalid HTTP status-code parsed" in str(result.error)
    assert result.requests == 1


@pytest.mark.parametrize(
    ("script", "named"), [(html_answer, "text/html"), (gzip_answer, "gzip")], ids=["html", "gzip"]
)
def test_an_answer_that_is_not_an_event_stream_is_named(
    script: Callable[[], Response], named: str, runner: str
) -> None:
    result = outcome(script, runner)
    assert result.parts == []
    assert isinstance(result.error, sagestream.DecodeError)
    assert named in str(result.error)
    assert result.requests == 1


@pytest.mark.parametrize(
    "script",
    [bad_chunk_in_first_read, cut_mid_frame, cut_between_frames, html_answer, gzip_answer],
    ids=["bad-chunk", "cut-mid-frame", "cut-between", "html", "gzip"],
)
def test_both_clients_raise_the_same_class_with_the_same_message(script: Callable[[], Response]) -> None:
    sync, asyncio_ = (outcome(script, name) for name in RUNNERS)
    assert type(sync.error) is type(asyncio_.error)
    assert str(sync.error) == str(asyncio_.error)
    assert sync.parts == asyncio_.parts


def test_failed_async_streams_leave_nothing_behind() -> None:
    """1,000 AsyncClient streams, each ending in a LineTooLongError from ``.lines()`` after
    16 KiB held: what each raised is dead at once, and live objects and memory stay flat."""
    import gc
    import os
    import weakref

    held = 16 * 1024
    line = payload_frame(b"x" * held)
    rounds = 1000

    def script() -> Response:
        return Response(head_writes=[STATUS + STREAM_HEADERS], writes=[chunk(line), chunk(line), LAST_CHUNK])

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    async def fail(client: sagestream.AsyncClient) -> weakref.ref[BaseException]:
        try:
            async with client.invoke_stream("ep", b"{}") as stream:
                async for _ in stream.lines(max_line_bytes=held):
                    pass
        except sagestream.LineTooLongError as error:
            return weakref.ref(error)
        raise AssertionError("no error")

    async def main(server: RawServer) -> tuple[int, int]:
        async with sagestream.AsyncClient(_session(), endpoint_url=server.url, config=_config()) as client:
            await fail(client)  # first use: imports, the connection, caches
            gc.collect()
            objects, memory = len(gc.get_objects()), rss()
            for _ in range(rounds):
                assert (await fail(client))() is None
                # The scripted server (in this process) records each request: forget them as
                # they come, or their memory, freed only at the end, stays in the process's
                # resident set and reads as the client's.
                server.requests.clear()
            # The scripted server's own threads are not the client's: stop it; the client
            # stays open, as a gateway's would.
            server.__exit__(None, None, None)
            server.requests.clear()
            gc.collect()
            return len(gc.get_objects()) - objects, rss() - memory

    server = RawServer(lambda _: script()).__enter__()
    try:
        objects, memory = asyncio.run(asyncio.wait_for(main(server), 170))
    finally:
        server.__exit__(None, None, None)
    # A stream kept alive leaves several objects per round (its error, traceback, frames):
    # thousands; what stays is the runtime's own caches and interned values.
    assert objects < rounds // 2
    assert memory < rounds * held // 8  # a leak of what each stream held would be 8x this
