"""A stream read back to back shares the event loop: what the loop did while it was read.

A task reading parts that are already there gets them without suspending; after a slice of
them (``SLICE_SECONDS`` of its time or ``SLICE_PARTS`` parts, whichever first) it lets the loop
run everything else that became ready, once. A ticker task that runs on every turn of the loop
counts the items the reader handled between two of its runs. Each item costs ``WORK`` (20 µs)
of busy work, so a slice holds at most ``ceil(SLICE_SECONDS / WORK)`` of them, however slow a
loaded machine makes each one (a slower item only spends the slice sooner): the bound comes
from the work per item, not from a wall-clock margin (see ``_loop_ticker.py``). The same reads
with the slice off are the control: they hold the loop for far more items, so each check can
fail.

Plain parts come from the emulator's bulk reply, lines / SSE / JSON lines from a scripted
loopback server (one item per part), the bidirectional session's output from the emulator's
echo model.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import types
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import boto3
import pytest
import sagestream
import sagestream._aio as aio
from _loop_ticker import Ticker, consume, slice_bound, unslice
from _raw_server import RawServer, Request, Response, payload_frame, stream_response
from botocore.config import Config
from sagestream.emulator import Emulator, bulk_part

#: Items per stream.
ITEMS = 1500


@pytest.fixture(params=["sliced", "unsliced"])
def sliced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Each test runs with the default slice and, as its control, with none (a fresh loop per
    test, so a fresh hub made with the setting)."""
    if request.param == "unsliced":
        unslice(monkeypatch)
    return request.param == "sliced"


def _check(ticker: Ticker, items: int, sliced: bool) -> None:
    bound = slice_bound()
    if sliced:
        assert ticker.most <= bound, (ticker.most, bound)
        assert ticker.runs >= items // bound
    else:
        assert ticker.most > 4 * bound, (ticker.most, bound)


# --- plain parts, from the emulator ----------------------------------------------------------


def _emulator_client(emu: Emulator) -> sagestream.AsyncClient:
    return sagestream.AsyncClient(
        region_name=emu.region,
        endpoint_url=emu.url,
        aws_access_key_id=emu.access_key_id,
        aws_secret_access_key=emu.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )


async def test_parts(emulator: Emulator, sliced: bool) -> None:
    async with (
        _emulator_client(emulator) as client,
        client.invoke_stream("demo", b"{}", custom_attributes=f"parts={ITEMS};part_size=20;delay_ms=0") as s,
    ):
        ticker = await consume(s)
        assert s.metrics.parts == ITEMS
    _check(ticker, ITEMS, sliced)


async def test_the_part_count_bounds_a_slice_of_free_parts(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aio, "SLICE_SECONDS", None)
    monkeypatch.setattr(aio, "SLICE_PARTS", 16)
    async with (
        _emulator_client(emulator) as client,
        client.invoke_stream("demo", b"{}", custom_attributes=f"parts={ITEMS};part_size=20;delay_ms=0") as s,
    ):
        ticker = await consume(s, 0.0)
    assert ticker.most <= 16
    assert ticker.runs >= ITEMS // 16


# --- lines, SSE, JSON lines, from a scripted server ------------------------------------------

FORMATS: dict[str, tuple[str, Callable[[int], bytes], Callable[[Any], AsyncIterator[Any]]]] = {
    "lines": ("text/plain", lambda i: b"line %d\n" % i, lambda s: s.lines()),
    "sse": ("text/event-stream", lambda i: b'data: {"i": %d}\n\n' % i, lambda s: s.sse()),
    "json_lines": ("application/jsonlines", lambda i: b'{"i": %d}\n' % i, lambda s: s.json_lines()),
}


@contextlib.asynccontextmanager
async def _scripted(payloads: list[bytes], content_type: str = "text/plain") -> AsyncIterator[Any]:
    """A stream of ``payloads`` from a loopback server that writes them all at once (the client
    has them as fast as it can read them)."""
    frames = [payload_frame(p) for p in payloads]

    def answer(_: Request) -> Response:
        return stream_response(
            frames, one_chunk_per_frame=False, headers={"X-Amzn-SageMaker-Content-Type": content_type}
        )

    session = boto3.Session(
        aws_access_key_id="AKIDFAIR", aws_secret_access_key="secret", region_name="us-east-1"
    )
    with RawServer(answer) as server:
        async with (
            sagestream.AsyncClient(session, endpoint_url=server.url) as client,
            client.invoke_stream("ep", b"{}") as s,
        ):
            yield s


@pytest.mark.parametrize("fmt", list(FORMATS))
async def test_reassembled(fmt: str, sliced: bool) -> None:
    content_type, item, read = FORMATS[fmt]
    async with _scripted([item(i) for i in range(ITEMS)], content_type) as s:
        ticker = await consume(read(s))
        assert s.metrics.parts == ITEMS
    _check(ticker, ITEMS, sliced)


# --- the bidirectional session ---------------------------------------------------------------


async def test_duplex_session(duplex_emulator: Emulator, sliced: bool) -> None:
    emu = duplex_emulator
    client = sagestream.AsyncClient(
        region_name=emu.region,
        endpoint_url=emu.url,
        aws_access_key_id=emu.access_key_id,
        aws_secret_access_key=emu.secret_access_key,
        duplex_endpoint_url=emu.duplex_url,
    )
    async with client, client.invoke_bidirectional("echo") as session:
        for i in range(ITEMS):
            await session.send(b"%06d" % i)
        session.close_input()
        # The echo is all written (its record is logged) before the reading starts.
        deadline = time.monotonic() + 30
        while not any(r.request_id == session.request_id for r in emu.request_log.snapshot()):
            assert time.monotonic() < deadline, "the echo never ended"
            await asyncio.sleep(0.01)
        ticker = await consume(session)
        assert session.metrics.parts == ITEMS
    _check(ticker, ITEMS, sliced)


# --- what a yield is -------------------------------------------------------------------------


@types.coroutine
def _steps(awaitable: Any, seen: list[Any]) -> Generator[Any, Any, Any]:
    """Await ``awaitable``, noting what it hands the task at each suspension."""
    it = awaitable.__await__()
    value = None
    while True:
        try:
            out = it.send(value)
        except StopIteration as stop:
            return stop.value
        seen.append(out)
        value = yield out


async def test_a_spent_slice_suspends_and_no_part_is_lost(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aio, "SLICE_SECONDS", None)
    monkeypatch.setattr(aio, "SLICE_PARTS", 8)
    seen: list[Any] = []
    got: list[bytes] = []
    runs = [0]  # parts handed out between two suspensions
    async with (
        _emulator_client(emulator) as client,
        client.invoke_stream("demo", b"{}", custom_attributes="parts=200;part_size=10;delay_ms=0") as s,
    ):
        parts = aiter(s)
        while True:
            before = len(seen)
            try:
                got.append(await _steps(anext(parts), seen))
            except StopAsyncIteration:
                break
            if len(seen) > before:
                runs.append(0)
            runs[-1] += 1
        yields = s._parts.yields
    assert got == [bulk_part(i, 10) for i in range(200)]
    assert max(runs) <= 8
    assert yields >= 1
    # Each suspension hands the task a future of the loop (a wait, or the loop's next turn).
    assert all(isinstance(step, asyncio.Future) for step in seen)


async def _woken_during_a_slice() -> tuple[int, int]:
    """Read 2,000 parts at hand in slices of 16; when the 100th is handed out, a byte arrives on
    a socket. How many parts had been handed out then, and when the task it woke ran."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    arrived = asyncio.Event()
    loop.add_reader(ours.fileno(), lambda: (ours.recv(1), arrived.set()))
    count = 0
    sent_at = woken_at = -1

    async def waiter() -> None:
        nonlocal woken_at
        await arrived.wait()
        woken_at = count

    try:
        task = loop.create_task(waiter())
        async with _scripted([b"%d" % i for i in range(2000)]) as s:
            async for _ in s:
                count += 1
                if count == 100:
                    theirs.send(b"x")
                    sent_at = count
            assert s._parts.yields >= 1  # the parts were at hand: slices were spent
        await task
    finally:
        loop.remove_reader(ours.fileno())
        ours.close()
        theirs.close()
    return sent_at, woken_at


async def test_what_became_ready_during_a_slice_runs_before_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    # The task a socket wakes during a slice runs before the reader's next slice (a bare
    # `yield` would queue the reader ahead of it: 44 parts later here, not at most 16).
    monkeypatch.setattr(aio, "SLICE_SECONDS", None)
    monkeypatch.setattr(aio, "SLICE_PARTS", 16)
    sent_at, woken_at = await _woken_during_a_slice()
    assert 0 <= woken_at - sent_at <= 16


def test_what_became_ready_during_a_slice_runs_before_the_next_on_uvloop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uvloop = pytest.importorskip("uvloop")  # its call_later(0) is a call_soon: two hops all the same
    monkeypatch.setattr(aio, "SLICE_SECONDS", None)
    monkeypatch.setattr(aio, "SLICE_PARTS", 16)
    loop = uvloop.new_event_loop()
    try:
        sent_at, woken_at = loop.run_until_complete(_woken_during_a_slice())
    finally:
        loop.close()
    assert 0 <= woken_at - sent_at <= 16


async def test_cancelled_at_a_yield_closes_the_stream(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aio, "SLICE_PARTS", 1)
    count = 0
    async with (
        _emulator_client(emulator) as client,
        client.invoke_stream("demo", b"{}", custom_attributes="parts=5000;part_size=10;delay_ms=0") as s,
    ):

        async def read() -> None:
            nonlocal count
            async for _ in s:
                count += 1

        reader = asyncio.create_task(read())
        while count < 5:
            await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert s.closed
        assert count < 5000


# --- paced streams still come in batches -----------------------------------------------------


async def test_paced_streams_cost_one_wake_up_for_many_parts_and_no_yield(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams, tokens = 40, 20
    # A slice of fewer parts than a stream has: spent if a run outlived a wait. (No time bound
    # here: a machine that stops this process for a millisecond must not fail the check.)
    monkeypatch.setattr(aio, "SLICE_SECONDS", None)
    monkeypatch.setattr(aio, "SLICE_PARTS", tokens // 2)
    loop = asyncio.get_running_loop()
    hub = aio.hub_for(loop)
    dispatches = 0

    def dispatch() -> None:
        nonlocal dispatches
        dispatches += 1
        hub.dispatch()

    loop.remove_reader(hub.fileno())
    loop.add_reader(hub.fileno(), dispatch)
    yields: list[int] = []
    async with _emulator_client(emulator) as client:

        async def one() -> int:
            async with client.invoke_stream(
                "demo", b"{}", custom_attributes=f"parts={tokens};part_size=20;delay_ms=10"
            ) as s:
                n = 0
                async for _ in s:
                    n += 1
                yields.append(s._parts.yields)
                return n

        counts = await asyncio.gather(*(one() for _ in range(streams)))
    assert counts == [tokens] * streams
    # Every suspension is a wait for a part (each wait starts a new slice)...
    assert yields == [0] * streams
    # ... and the hub resolves the futures of many streams in one wake-up of the loop.
    assert dispatches * 2 <= streams * tokens, dispatches


def test_the_hub_checks_its_slice() -> None:
    loop = asyncio.new_event_loop()
    try:
        for bad in ({"slice_seconds": -1.0}, {"slice_seconds": 2.0}, {"slice_items": 0}):
            with pytest.raises(ValueError, match="slice"):
                sagestream._core.Hub(loop, **bad)  # type: ignore[arg-type]
        sagestream._core.Hub(loop, slice_seconds=None, slice_items=None)
    finally:
        loop.close()
