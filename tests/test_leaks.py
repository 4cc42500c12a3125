"""No decoder keeps what it raised: thousands of errors of every kind leave no exception, frame
or buffered bytes behind (memory and live objects stay flat), and a cycle through an iterator's
source is collectable.

The leak these guard against: a decoder that held the exception it raised kept the exception's
traceback alive, which holds the caller's frame, which holds the decoder; the decoder took no
part in garbage collection, so the cycle was never freed (2,000 errors: +126 MB).
"""

from __future__ import annotations

import asyncio
import gc
import os
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from _frames import frame, payload_part
from sagestream import _core
from sagestream import exceptions as exc
from sagestream.reassembly import (
    aiter_json_lines,
    aiter_lines,
    aiter_sse,
    iter_json_lines,
    iter_lines,
    iter_sse,
)

#: Bytes each failed decoder holds when it fails, so that a leak shows in the process's memory.
HELD = 16 * 1024
ROUNDS = 5000


def rss() -> int:
    """Resident memory of this process, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fail_once(make: Callable[[], Any], reads: list[bytes], end: str) -> weakref.ref[BaseException]:
    """Drive a new decoder into its error; a weak reference to what it raised."""
    decoder = make()
    try:
        for read in reads:
            decoder.feed(read)
        getattr(decoder, end)()
    except exc.SageStreamError as error:
        return weakref.ref(error)
    raise AssertionError("no error")


def iterate_once(
    make: Callable[[Iterator[bytes]], Iterator[Any]], reads: list[bytes]
) -> weakref.ref[BaseException]:
    try:
        for _ in make(iter(reads)):
            pass
    except exc.SageStreamError as error:
        return weakref.ref(error)
    raise AssertionError("no error")


def assert_flat(provoke: Callable[[], weakref.ref[BaseException]], rounds: int = ROUNDS) -> None:
    provoke()  # first use: imports and caches
    gc.collect()
    objects, memory = len(gc.get_objects()), rss()
    for _ in range(rounds):
        # Dead at once, without a collection: nothing refers to it, not even in a cycle.
        assert provoke()() is None
    gc.collect()
    assert len(gc.get_objects()) - objects < rounds // 10
    assert rss() - memory < rounds * HELD // 8  # a leak of HELD bytes per round is 8x this


BIG = b"x" * HELD
BAD_FRAME = frame([], b"bad", message_crc=0)
MODEL_STREAM_ERROR = frame(
    [(":message-type", "string", "exception"), (":exception-type", "string", "ModelStreamError")],
    b'{"Message": "too slow", "ErrorCode": "ModelInvocationTimeExceeded"}',
)
CUT = payload_part(BIG)[:-1]

DECODERS: dict[str, tuple[Callable[[], Any], list[bytes], str]] = {
    "Decoder, bad frame": (_core.Decoder, [frame([], BIG) + BAD_FRAME, b""], "close"),
    "Decoder, cut frame": (_core.Decoder, [CUT], "close"),
    "PayloadDecoder, bad frame": (_core.PayloadDecoder, [payload_part(BIG) + BAD_FRAME, b""], "close"),
    "PayloadDecoder, error frame": (_core.PayloadDecoder, [payload_part(BIG) + MODEL_STREAM_ERROR], "close"),
    "PayloadDecoder, cut frame": (_core.PayloadDecoder, [CUT], "close"),
    "LineDecoder, too long": (lambda: _core.LineDecoder(max_line_bytes=HELD), [BIG, b"x"], "finish"),
    "LineDecoder, invalid UTF-8": (_core.LineDecoder, [BIG + b"\xff\n"], "finish"),
    "SseDecoder, too long": (lambda: _core.SseDecoder(max_event_bytes=HELD), [b"data: " + BIG], "finish"),
    "JsonLinesDecoder, invalid JSON": (_core.JsonLinesDecoder, [b'{"a": "' + BIG + b'"\n'], "finish"),
    "JsonLinesDecoder, too long": (
        lambda: _core.JsonLinesDecoder(max_line_bytes=HELD),
        [BIG, b"1"],
        "finish",
    ),
}


@pytest.mark.parametrize("name", list(DECODERS))
def test_decoder_errors_leave_nothing_behind(name: str) -> None:
    make, reads, end = DECODERS[name]
    assert_flat(lambda: fail_once(make, reads, end))


ITERATORS: dict[str, tuple[Callable[[Iterator[bytes]], Iterator[Any]], list[bytes]]] = {
    "PayloadIterator, bad frame": (_core.PayloadIterator, [payload_part(BIG), BAD_FRAME]),
    "PayloadIterator, error frame": (_core.PayloadIterator, [payload_part(BIG) + MODEL_STREAM_ERROR]),
    "PayloadIterator, cut frame": (_core.PayloadIterator, [CUT]),
    "iter_lines, too long": (lambda s: iter_lines(s, max_line_bytes=HELD), [b"ok\n", BIG, b"x"]),
    "iter_sse, too long": (lambda s: iter_sse(s, max_event_bytes=HELD), [b"data: a\n\n", BIG, b"x"]),
    "iter_json_lines, invalid JSON": (iter_json_lines, [b"1\n", BIG + b"\n"]),
}


@pytest.mark.parametrize("name", list(ITERATORS))
def test_iterator_errors_leave_nothing_behind(name: str) -> None:
    make, reads = ITERATORS[name]
    assert_flat(lambda: iterate_once(make, reads))


AITERS: dict[str, Callable[[AsyncIterator[bytes]], AsyncIterator[Any]]] = {
    "aiter_lines": lambda s: aiter_lines(s, max_line_bytes=HELD),
    "aiter_sse": lambda s: aiter_sse(s, max_event_bytes=HELD),
    "aiter_json_lines": lambda s: aiter_json_lines(s, max_line_bytes=HELD),
}


@pytest.mark.parametrize("name", list(AITERS))
def test_async_reassembly_errors_leave_nothing_behind(name: str) -> None:
    make = AITERS[name]

    async def source() -> AsyncIterator[bytes]:
        yield b"1\n"
        await asyncio.sleep(0)
        yield BIG
        yield b"x"

    async def once() -> weakref.ref[BaseException]:
        try:
            async for _ in make(source()):
                pass
        except exc.LineTooLongError as error:
            return weakref.ref(error)
        raise AssertionError("no error")

    # 1,000 async iterations, each over a new source, each ending in a LineTooLongError.
    assert_flat(lambda: asyncio.run(once()), rounds=1000)


def test_a_cycle_through_the_source_is_collected() -> None:
    """An iterator whose source refers back to it (a generator that closes over it) forms a
    cycle; the iterator reports its source to the collector, so the cycle is freed."""

    def make() -> weakref.ref[Any]:
        holder: dict[str, Any] = {}

        def parts() -> Iterator[bytes]:
            yield b"a\nb"
            yield holder["it"] and b"\n"

        source = parts()
        it = iter_lines(source)
        holder["it"] = it
        assert next(it) == "a"
        return weakref.ref(source)

    refs = [make() for _ in range(100)]
    gc.collect()
    assert all(ref() is None for ref in refs)
