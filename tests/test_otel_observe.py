"""An observed part iterator (``observe()``, what ``sagestream.otel`` uses): the watch is told
of the first part, of every gap between parts in batches, and of the end once; what it raises
never reaches the reader."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from typing import Any

import pytest
import sagestream
from _duplex_fixtures import make_client
from _otel_fixtures import BODY, Recorded, config, session_of, telemetry
from sagestream.emulator import Emulator

__all__ = ["telemetry"]


class Watch:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.first: list[float] = []
        self.batches: list[list[float]] = []
        self.ends: list[tuple[Any, BaseException | None, bool]] = []

    def first_part(self, at: float) -> None:
        self.first.append(at)
        if self.fail:
            raise RuntimeError("a broken watch")

    def gaps(self, gaps: list[float]) -> None:
        self.batches.append(gaps)

    def ended(self, stats: Any, error: BaseException | None, closed: bool) -> None:
        self.ends.append((stats, error, closed))


def test_the_watch_is_told_of_each_gap_and_of_the_end_once(emulator: Emulator) -> None:
    watch = Watch()
    with (
        sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client,
        client.invoke_stream("demo", BODY, custom_attributes="tokens=10") as stream,
    ):
        parts = stream._parts
        with pytest.raises(ValueError, match="batch"):
            parts.observe(watch, 0)
        with pytest.raises(ValueError, match="max_delay"):
            parts.observe(watch, 3, -1.0)
        parts.observe(watch, 3, float("inf"))
        with pytest.raises(RuntimeError, match="observed already"):
            parts.observe(watch)
        got = list(stream)
        stream.close()
    stats = parts.stats()
    assert watch.first == [stats.first_part_at]
    assert [len(b) for b in watch.batches[:-1]] == [3] * (len(watch.batches) - 1)
    gaps = [gap for batch in watch.batches for gap in batch]
    assert len(gaps) == len(got) - 1 == stats.parts - 1
    assert max(gaps) == stats.max_gap
    assert sum(gaps) == pytest.approx(stats.last_part_at - stats.first_part_at)
    assert watch.ends == [(watch.ends[0][0], None, False)]
    assert watch.ends[0][0].parts == len(got)


def test_an_async_stream_closed_early_tells_the_watch(emulator: Emulator) -> None:
    """(A cancelled reader: ``test_otel_clients.test_cancelling_the_reading_task_ends_the_span``.)"""
    watch = Watch()

    async def main() -> None:
        async with (
            sagestream.AsyncClient(
                session_of(emulator), endpoint_url=emulator.url, config=config()
            ) as client,
            client.invoke_stream("demo", BODY, custom_attributes="tokens=20") as stream,
        ):
            stream._parts.observe(watch)
            await stream.__anext__()
            await stream.__anext__()

    asyncio.run(main())
    assert len(watch.first) == 1
    assert [(error, closed) for _, error, closed in watch.ends] == [(None, True)]
    assert [len(batch) for batch in watch.batches] == [1], "the gap kept, reported at the close"


def test_a_failing_watch_never_breaks_the_stream(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    watch = Watch(fail=True)
    with (
        sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client,
        client.invoke_stream("demo", BODY, custom_attributes="tokens=5") as stream,
    ):
        stream._parts.observe(watch)
        got = list(stream)
    assert len(got) >= 5
    assert [type(u.exc_value) for u in unraisable] == [RuntimeError]
    assert len(watch.ends) == 1


def test_a_stream_dropped_unread_ends_closed(emulator: Emulator) -> None:
    watch = Watch()
    with sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client:
        stream = client.invoke_stream("demo", BODY, custom_attributes="tokens=5")
        stream._parts.observe(watch)
        del stream
    assert [(error, closed) for _, error, closed in watch.ends] == [(None, True)]


def test_an_abandoned_watched_session_is_collected(telemetry: Recorded, duplex_emulator: Emulator) -> None:
    """The watch of a bidirectional session's parts asks the session for its answer at the end:
    session, iterator and watch make a cycle, which the garbage collector sees through the
    iterator and frees."""
    client = make_client(duplex_emulator)
    try:
        session = client.invoke_bidirectional("echo")
        session.send("one", complete=True)
        next(iter(session))
        gone = weakref.ref(session)
        del session
        gc.collect()
        assert gone() is None
    finally:
        client.close()
    (span,) = telemetry.finished()
    assert span.attributes is not None
    assert span.attributes["sagestream.stream.closed_early"] is True
