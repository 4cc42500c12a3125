"""One rule for every decoder and iterator of ``sagestream._core``: every item completed before
an error first, then the error, on that call and on every later one (a new exception each time,
so no raised exception is kept by the decoder), and never another item."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _frames import frame, payload_part
from sagestream import _core
from sagestream import exceptions as exc

BAD_CRC = frame([("a", "int32", 1)], b"bad", message_crc=0)
MODEL_STREAM_ERROR = frame(
    [
        (":message-type", "string", "exception"),
        (":exception-type", "string", "ModelStreamError"),
    ],
    b'{"Message": "too slow", "ErrorCode": "ModelInvocationTimeExceeded"}',
)
ERROR_FRAME = frame([(":message-type", "string", "error"), (":error-message", "string", "boom")])

# (make a decoder, its end-of-input method, a read holding items then an error,
#  the items, the error class)
FEED_CASES: list[tuple[Callable[[], Any], str, bytes, list[Any], type[Exception]]] = [
    (_core.Decoder, "close", frame([], b"ok") + BAD_CRC, [b"ok"], exc.ChecksumMismatchError),
    (_core.PayloadDecoder, "close", payload_part(b"ok") + BAD_CRC, [b"ok"], exc.ChecksumMismatchError),
    (
        _core.PayloadDecoder,
        "close",
        payload_part(b"1") + payload_part(b"2") + MODEL_STREAM_ERROR + payload_part(b"never"),
        [b"1", b"2"],
        exc.ModelStreamError,
    ),
    (_core.PayloadDecoder, "close", payload_part(b"ok") + ERROR_FRAME, [b"ok"], exc.StreamError),
    (lambda: _core.LineDecoder(max_line_bytes=4), "finish", b"ab\ncdefgh", ["ab"], exc.LineTooLongError),
    (_core.LineDecoder, "finish", b"ab\nc\xffd\n", ["ab"], exc.ReassemblyError),
    (
        lambda: _core.SseDecoder(max_event_bytes=10),
        "finish",
        b"data: a\n\ndata: 0123456789",
        ["a"],
        exc.LineTooLongError,
    ),
    (_core.JsonLinesDecoder, "finish", b'1\n{"broken\n2\n', [1], exc.ReassemblyError),
]


def _item(value: Any) -> Any:
    """Messages and events compared by their payload or data."""
    if isinstance(value, _core.Message):
        return value.payload
    if isinstance(value, _core.ServerSentEvent):
        return value.data
    return value


@pytest.mark.parametrize(("make", "end", "data", "items", "error"), FEED_CASES)
def test_items_then_the_same_error_at_every_later_call(
    make: Callable[[], Any], end: str, data: bytes, items: list[Any], error: type[Exception]
) -> None:
    decoder = make()
    assert [_item(x) for x in decoder.feed(data)] == items
    raised: list[BaseException] = []
    for call in [lambda: decoder.feed(b""), lambda: decoder.feed(data), getattr(decoder, end)] * 2:
        with pytest.raises(error) as info:
            call()
        raised.append(info.value)
    assert len({type(e) for e in raised}) == 1
    assert len({str(e) for e in raised}) == 1
    assert len({id(e) for e in raised}) == len(raised)  # a new exception each time


@pytest.mark.parametrize(("make", "end", "data", "items", "error"), FEED_CASES)
def test_the_error_is_raised_however_the_bytes_are_cut(
    make: Callable[[], Any], end: str, data: bytes, items: list[Any], error: type[Exception]
) -> None:
    decoder = make()
    assert [_item(x) for x in decoder.feed(data)] == items
    fresh = make()

    def byte_by_byte() -> None:  # the error comes in a read of its own
        for i in range(len(data)):
            fresh.feed(data[i : i + 1])
        getattr(fresh, end)()

    with pytest.raises(error):
        byte_by_byte()


@pytest.mark.parametrize(
    ("make", "end"),
    [
        (_core.Decoder, "close"),
        (_core.PayloadDecoder, "close"),
        (_core.LineDecoder, "finish"),
        (_core.SseDecoder, "finish"),
        (_core.JsonLinesDecoder, "finish"),
    ],
)
def test_feed_after_the_end_is_a_value_error_and_the_end_repeats(make: Callable[[], Any], end: str) -> None:
    decoder = make()
    getattr(decoder, end)()
    getattr(decoder, end)()
    with pytest.raises(ValueError, match=f"after {end}"):
        decoder.feed(b"x")


def test_a_cut_frame_is_raised_at_close_and_again_after() -> None:
    for decoder in (_core.Decoder(), _core.PayloadDecoder()):
        decoder.feed(payload_part(b"cut")[:-2])
        for _ in range(3):
            with pytest.raises(exc.TruncatedStreamError):
                decoder.close()
        with pytest.raises(exc.TruncatedStreamError):
            decoder.feed(b"")


def test_invalid_json_has_a_new_json_error_as_cause_each_time() -> None:
    decoder = _core.JsonLinesDecoder()
    with pytest.raises(exc.ReassemblyError) as first:
        decoder.feed(b'{"a": tru}\n')
    with pytest.raises(exc.ReassemblyError) as second:
        decoder.finish()
    for info in (first, second):
        cause = info.value.__cause__
        assert isinstance(cause, json.JSONDecodeError)
        assert (cause.msg, cause.doc, cause.pos) == ("Expecting value", '{"a": tru}', 6)
        assert info.value.line_number == 1
        assert info.value.offset == 0
    assert first.value.__cause__ is not second.value.__cause__


def _source(*reads: bytes) -> Iterator[bytes]:
    yield from reads


ITER_CASES: list[tuple[Callable[[Iterator[bytes]], Iterator[Any]], tuple[bytes, ...], list[Any], type]] = [
    (
        _core.PayloadIterator,
        (payload_part(b"a"), payload_part(b"b") + BAD_CRC),
        [b"a", b"b"],
        exc.DecodeError,
    ),
    (
        _core.PayloadIterator,
        (payload_part(b"a") + MODEL_STREAM_ERROR,),
        [b"a"],
        exc.ModelStreamError,
    ),
    (
        _core.PayloadIterator,
        (payload_part(b"a") + payload_part(b"cut")[:-1],),
        [b"a"],
        exc.TruncatedStreamError,
    ),
    (
        lambda s: _core.ReassemblyIterator.lines(s, max_line_bytes=3),
        (b"ab\n", b"cdef"),
        ["ab"],
        exc.LineTooLongError,
    ),
    (lambda s: _core.ReassemblyIterator.json_lines(s), (b"1\n", b"x\n"), [1], exc.ReassemblyError),
    (
        lambda s: _core.ReassemblyIterator.sse(s, max_event_bytes=8),
        (b"data: a\n\n", b"data: 0123"),
        ["a"],
        exc.LineTooLongError,
    ),
]


@pytest.mark.parametrize(("make", "reads", "items", "error"), ITER_CASES)
def test_iterators_yield_the_items_then_raise_at_every_later_next(
    make: Callable[[Iterator[bytes]], Iterator[Any]], reads: tuple[bytes, ...], items: list[Any], error: type
) -> None:
    it = make(_source(*reads))
    got: list[Any] = []

    def drain() -> None:
        got.extend(_item(item) for item in it)

    with pytest.raises(error):
        drain()
    assert got == items
    raised = []
    for _ in range(3):
        with pytest.raises(error) as info:
            next(it)
        raised.append(info.value)
    assert len({id(e) for e in raised}) == 3
    it.close()  # type: ignore[attr-defined]
    assert list(it) == []  # closed: over, without the error


def test_source_errors_pass_through_once_and_end_the_iteration() -> None:
    def source() -> Iterator[bytes]:
        yield payload_part(b"a") + payload_part(b"cu")[:-3]
        raise ConnectionResetError("reset")

    it = _core.PayloadIterator(source())
    assert next(it) == b"a"
    with pytest.raises(ConnectionResetError):
        next(it)
    assert list(it) == []
