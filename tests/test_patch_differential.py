"""The drop-in against the real thing: botocore's ``EventStream`` and aiobotocore's
``AioEventStream``, stock and patched, fed the same bytes in the same reads and iterated the
same way (whole, partially, again after ``break`` or an error), must give the same events and
the same errors.

The streams are built as botocore's response parser builds them (the operation's output shape,
the protocol's event stream parser), over a body that hands out the given reads as urllib3's
``HTTPResponse.stream()`` or aiohttp's ``StreamReader.iter_chunks()`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import botocore.eventstream
import botocore.parsers
import botocore.session
import pytest
from _frames import encode_headers, frame, payload_part
from _hypothesis import examples
from botocore.eventstream import EventStream
from botocore.exceptions import EventStreamError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sagestream import exceptions as exc
from sagestream import is_patched, patch_botocore, unpatch_botocore

try:
    import aiobotocore.eventstream
    import aiobotocore.parsers
    from aiobotocore.eventstream import AioEventStream
except ImportError:  # it pins an older botocore: its tests run in an environment of their own
    aiobotocore = None  # type: ignore[assignment]

NEEDS_AIOBOTOCORE = pytest.mark.skipif(
    aiobotocore is None, reason="aiobotocore is not installed here: `make test-aio` runs these"
)

OPERATION = "InvokeEndpointWithResponseStream"
SHAPE = (
    botocore.session.get_session()
    .get_service_model("sagemaker-runtime")
    .operation_model(OPERATION)
    .output_shape.members["Body"]
)


@pytest.fixture(autouse=True)
def _unpatched() -> Iterator[None]:
    unpatch_botocore()
    yield
    unpatch_botocore()


class Body:
    """What botocore's ``EventStream`` reads: ``stream()`` (one pass over the reads, however
    often it is called, as urllib3's reads of one socket) and ``close()``."""

    def __init__(self, reads: Sequence[bytes]) -> None:
        self._reads = iter(reads)

    def stream(self) -> Iterator[bytes]:
        yield from self._reads

    def close(self) -> None:
        pass


class Content:
    """aiohttp's ``StreamReader`` as ``AioEventStream`` reads it: ``iter_chunks()``."""

    def __init__(self, reads: Sequence[bytes]) -> None:
        self._reads = iter(reads)

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        for read in self._reads:
            await asyncio.sleep(0)
            yield read, True


class AioBody:
    def __init__(self, reads: Sequence[bytes]) -> None:
        self.content = Content(reads)

    def close(self) -> None:
        pass


def sync_stream(reads: Sequence[bytes]) -> EventStream:
    parser = botocore.parsers.create_parser("rest-json")._event_stream_parser
    return EventStream(Body(reads), SHAPE, parser, OPERATION)


def async_stream(reads: Sequence[bytes]) -> Any:
    parser = aiobotocore.parsers.create_parser("rest-json")._event_stream_parser
    return AioEventStream(AioBody(reads), SHAPE, parser, OPERATION)


def describe(error: BaseException) -> tuple[Any, ...]:
    """What must match between botocore's error and the drop-in's."""
    if isinstance(error, EventStreamError):
        return ("EventStreamError", str(error), error.response, error.operation_name)
    return (type(error).__name__, str(error))


#: How a body is iterated: each step is a fresh ``for`` loop over it that takes that many
#: events and breaks (``None``: to the end).
Steps = Sequence[int | None]


def drive(stream: EventStream, steps: Steps) -> tuple[list[Any], list[type]]:
    log: list[Any] = []
    raised: list[type] = []
    for limit in steps:
        taken = 0
        try:
            for event in stream:
                log.append(("event", event))
                taken += 1
                if limit is not None and taken >= limit:
                    log.append(("break",))
                    break
            else:
                log.append(("end",))
        except Exception as error:
            log.append(("error", *describe(error)))
            raised.append(type(error))
    return log, raised


async def adrive(stream: Any, steps: Steps) -> tuple[list[Any], list[type]]:
    log: list[Any] = []
    raised: list[type] = []
    for limit in steps:
        taken = 0
        try:
            async for event in stream:
                log.append(("event", event))
                taken += 1
                if limit is not None and taken >= limit:
                    log.append(("break",))
                    break
            else:
                log.append(("end",))
        except Exception as error:
            log.append(("error", *describe(error)))
            raised.append(type(error))
    return log, raised


class _NoBotocoreDecoder:
    """Stands in for botocore's ``EventStreamBuffer`` during patched runs: the drop-in must not
    decode with it (a patch that did nothing would otherwise pass every comparison)."""

    used = 0

    def __init__(self) -> None:
        type(self).used += 1
        raise AssertionError("botocore's EventStreamBuffer was used")


@contextlib.contextmanager
def patched() -> Iterator[None]:
    modules: list[Any] = [botocore.eventstream]
    if aiobotocore is not None:
        modules.append(aiobotocore.eventstream)
    saved = [module.EventStreamBuffer for module in modules]
    for module in modules:
        module.EventStreamBuffer = _NoBotocoreDecoder
    patch_botocore()
    try:
        yield
    finally:
        unpatch_botocore()
        for module, buffer in zip(modules, saved, strict=True):
            module.EventStreamBuffer = buffer
    assert _NoBotocoreDecoder.used == 0


def both_sync(reads: Sequence[bytes], steps: Steps) -> tuple[Any, Any]:
    stock = drive(sync_stream(reads), steps)
    with patched():
        return stock, drive(sync_stream(reads), steps)


def both_async(reads: Sequence[bytes], steps: Steps) -> tuple[Any, Any]:
    stock = asyncio.run(adrive(async_stream(reads), steps))
    with patched():
        return stock, asyncio.run(adrive(async_stream(reads), steps))


def assert_same(stock: Any, patched: Any) -> None:
    (stock_log, stock_raised), (log, raised) = stock, patched
    assert log == stock_log
    # Where botocore raises its plain EventStreamError, the drop-in raises the typed subclass.
    for ours, theirs in zip(raised, stock_raised, strict=True):
        if theirs is EventStreamError:
            assert issubclass(ours, exc.StreamError)
        else:
            assert ours is theirs


BOTH = pytest.mark.parametrize(
    "both",
    [both_sync, pytest.param(both_async, marks=NEEDS_AIOBOTOCORE)],
    ids=["botocore", "aiobotocore"],
)


def exception_frame(
    exception_type: str | None, payload: bytes, *, code: str | None = None, message: str | None = None
) -> bytes:
    headers = [(":message-type", "string", "exception"), (":content-type", "string", "application/json")]
    if exception_type is not None:
        headers.append((":exception-type", "string", exception_type))
    if code is not None:
        headers.append((":error-code", "string", code))
    if message is not None:
        headers.append((":error-message", "string", message))
    return frame(headers, payload)


def error_frame(code: str | None = None, message: str | None = None) -> bytes:
    headers = [(":message-type", "string", "error")]
    if code is not None:
        headers.append((":error-code", "string", code))
    if message is not None:
        headers.append((":error-message", "string", message))
    return frame(headers)


def event_frame(event_type: str | None, payload: bytes = b"{}") -> bytes:
    headers = [(":message-type", "string", "event")]
    if event_type is not None:
        headers.append((":event-type", "string", event_type))
    return frame(headers, payload)


PAYLOADS = [b"part %d " % i * (i + 1) for i in range(6)]
PARTS = [payload_part(p) for p in PAYLOADS]
MODEL_STREAM_ERROR = exception_frame(
    "ModelStreamError", b'{"Message": "too slow", "ErrorCode": "ModelInvocationTimeExceeded"}'
)

ERROR_FRAMES = {
    "modeled ModelStreamError": MODEL_STREAM_ERROR,
    "modeled StreamBroken": exception_frame(
        "ModelStreamError", b'{"Message": "reset", "ErrorCode": "StreamBroken"}'
    ),
    "modeled InternalStreamFailure": exception_frame("InternalStreamFailure", b'{"Message": "oops"}'),
    "modeled, lower-case message": exception_frame("InternalStreamFailure", b'{"message": "lower"}'),
    "modeled, empty payload": exception_frame("ModelStreamError", b""),
    "modeled, text payload": exception_frame("ModelStreamError", b"not json"),
    "modeled, with code and message headers": exception_frame(
        "ModelStreamError", b'{"Message": "m"}', code="C", message="header message"
    ),
    "unmodeled with code and message": exception_frame(
        "ThrottlingException", b'{"Message": "ignored"}', code="Throttled", message="slow down"
    ),
    "unmodeled without code or message": exception_frame("ThrottlingException", b'{"Message": "x"}'),
    "exception without a type": exception_frame(None, b"{}", code="NoType", message="no type"),
    "error with code and message": error_frame("InternalError", "it broke"),
    "error with code only": error_frame("InternalError"),
    "error with message only": error_frame(None, "no code"),
    "error with neither": error_frame(),
    "error naming a modeled code": error_frame("ModelStreamError", "from an error frame"),
}


@BOTH
@pytest.mark.parametrize("name", list(ERROR_FRAMES))
def test_every_error_frame_shape(both: Any, name: str) -> None:
    data = PARTS[0] + PARTS[1] + ERROR_FRAMES[name] + PARTS[2]
    # Whole, then again after the error (botocore carries on with the frame after it).
    stock, patched = both([data], [None, None, None])
    assert_same(stock, patched)
    assert stock[1] == [EventStreamError]


@BOTH
def test_typed_classes_carry_botocores_response(both: Any) -> None:
    for data, typed in [
        (MODEL_STREAM_ERROR, exc.ModelStreamError),
        (ERROR_FRAMES["modeled InternalStreamFailure"], exc.InternalStreamFailure),
        (ERROR_FRAMES["error with neither"], exc.StreamError),
        (ERROR_FRAMES["error naming a modeled code"], exc.ModelStreamError),
    ]:
        stock, patched = both([data], [None])
        assert_same(stock, patched)
        assert patched[1] == [typed]


@BOTH
def test_an_error_frame_without_code_is_code_empty_as_in_botocore(both: Any) -> None:
    stock, patched = both([error_frame(message="m")], [None])
    assert_same(stock, patched)
    assert patched[0][0][3]["Error"] == {"Code": "", "Message": "m"}


@BOTH
@pytest.mark.parametrize(
    "steps",
    [[1, None], [1, 1, 1, None], [2, 0, 3, None], [None, None], [3, None, 1], [0, 0, None]],
)
def test_reiteration_carries_on_where_botocore_does(both: Any, steps: Steps) -> None:
    data = b"".join(PARTS)
    for reads in ([data], [data[i : i + 7] for i in range(0, len(data), 7)]):
        stock, patched = both(reads, steps)
        assert_same(stock, patched)
        events = [e for e in stock[0] if e[0] == "event"]
        assert len(events) == len(PARTS)  # botocore loses nothing across loops: neither may we


def test_next_iter_body_then_a_loop_gets_every_event() -> None:
    data = b"".join(PARTS)
    stock = sync_stream([data])
    stock_events = [next(iter(stock)), next(iter(stock)), *stock]
    with patched():
        body = sync_stream([data])
        events = [next(iter(body)), next(iter(body)), *body]
    assert events == stock_events
    assert len(events) == len(PARTS)


@NEEDS_AIOBOTOCORE
async def test_async_partial_iteration_then_a_loop_gets_every_event() -> None:
    data = b"".join(PARTS)
    with patched():
        stream = async_stream([data[:30], data[30:]])
        first = [event async for event in _take(stream, 2)]
        rest = [event async for event in stream]
    assert [e["PayloadPart"]["Bytes"] for e in first + rest] == PAYLOADS


async def _take(stream: Any, n: int) -> AsyncIterator[Any]:
    async for event in stream:
        yield event
        n -= 1
        if n == 0:
            return


@BOTH
def test_other_events_parse_as_botocore_parses_them(both: Any) -> None:
    data = b"".join(
        [
            event_frame("initial-response"),
            PARTS[0],
            event_frame("SomethingNew", b"?"),
            event_frame(None, b"no type"),
            event_frame("ModelStreamError", b'{"Message": "as an event", "ErrorCode": "X"}'),
            frame([(":event-type", "string", "PayloadPart")], b"no message type"),
            frame([], b"no headers"),
            frame(encode_headers([(":event-type", "string", "PayloadPart"), ("n", "int32", 7)]), b"extra"),
            PARTS[1],
        ]
    )
    stock, patched = both([data], [None])
    assert_same(stock, patched)
    # Not an event shape, so botocore parses no body for it: an empty member, yielded.
    assert ("event", {"ModelStreamError": {}}) in stock[0]


@BOTH
def test_parse_failures_are_botocores(both: Any) -> None:
    for payload in [b"\xff\xfe", b"[1, 2]"]:
        stock, patched = both(
            [PARTS[0] + exception_frame("ModelStreamError", payload) + PARTS[1]], [None, None]
        )
        assert_same(stock, patched)
        assert stock[1]
        assert stock[1][0] is not EventStreamError


@BOTH
def test_a_bad_frame_raises_again_where_botocore_ends_silently(both: Any) -> None:
    """The one deliberate difference: botocore's generator dies on a bad frame, so a second
    loop over the body silently yields nothing; the drop-in raises the same error again."""
    data = PARTS[0] + frame([], b"bad", message_crc=1) + PARTS[1]
    (stock_log, _), (log, raised) = both([data], [None, None])
    assert stock_log[0] == log[0]
    assert stock_log[2] == ("end",)
    assert raised == [exc.ChecksumMismatchError, exc.ChecksumMismatchError]
    assert log[1][0] == log[2][0] == "error"


@BOTH
def test_a_cut_frame_is_reported(both: Any) -> None:
    (stock_log, _), (log, raised) = both([PARTS[0] + PARTS[1][:-3]], [None])
    assert stock_log[-1] == ("end",)
    assert log[:-1] == stock_log[:-1]
    assert raised == [exc.TruncatedStreamError]


@NEEDS_AIOBOTOCORE
def test_is_patched_is_exported_and_both_classes_are_patched() -> None:
    assert not is_patched()
    sync_iter, async_iter = EventStream.__iter__, AioEventStream.__aiter__
    patch_botocore()
    assert is_patched()
    assert EventStream.__iter__ is not sync_iter
    assert AioEventStream.__aiter__ is not async_iter
    unpatch_botocore()
    assert (EventStream.__iter__, AioEventStream.__aiter__) == (sync_iter, async_iter)


# --- random streams ---------------------------------------------------------------------------

_text = st.text(alphabet="abcXYZ _-:é", max_size=8)
_json_payload = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "Message": _text,
            "message": _text,
            "ErrorCode": st.sampled_from(["ModelInvocationTimeExceeded", "StreamBroken", ""]),
        },
    ).map(lambda d: json.dumps(d).encode()),
    st.sampled_from([b"", b"null", b'"text"', b"not json"]),
)
_extra_header = st.one_of(
    st.tuples(st.just("x-int"), st.just("int32"), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just("x-bool"), st.sampled_from(["bool_true", "bool_false"]), st.booleans()),
    st.tuples(st.just("x-bytes"), st.just("bytes"), st.binary(max_size=5)),
    st.tuples(
        st.just("x-time"),
        st.just("timestamp"),
        st.datetimes(
            min_value=dt.datetime(1970, 1, 1),
            max_value=dt.datetime(2100, 1, 1),
            timezones=st.just(dt.timezone.utc),
        ).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)),
    ),
    st.tuples(st.just("x-uuid"), st.just("uuid"), st.uuids()),
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["part"] * 6 + ["exception", "error", "event", "bare"]))
    extra = draw(st.lists(_extra_header, max_size=2, unique_by=lambda h: h[0]))
    optional = st.none() | _text
    if kind == "part":
        headers = [(":event-type", "string", "PayloadPart"), (":message-type", "string", "event")]
        return frame(headers + extra, draw(st.binary(max_size=40)))
    if kind == "exception":
        headers = [(":message-type", "string", "exception")]
        exception_type = draw(
            st.none() | st.sampled_from(["ModelStreamError", "InternalStreamFailure", "PayloadPart", "Other"])
        )
        if exception_type is not None:
            headers.append((":exception-type", "string", exception_type))
    elif kind == "error":
        headers = [(":message-type", "string", "error")]
    elif kind == "event":
        event_type = draw(st.sampled_from(["initial-response", "Unknown", "ModelStreamError", "PayloadPart"]))
        headers = [(":message-type", "string", "event"), (":event-type", "string", event_type)]
    else:
        headers = []
    if kind in ("exception", "error"):
        for name in (":error-code", ":error-message"):
            value = draw(optional)
            if value is not None:
                headers.append((name, "string", value))
    return frame(headers + extra, draw(_json_payload))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


random_streams = st.tuples(
    st.lists(frames(), max_size=12).map(b"".join),
    st.lists(st.integers(min_value=0), max_size=8),
    st.lists(st.none() | st.integers(0, 4), min_size=1, max_size=5),
)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_streams)
def test_random_streams_sync(case: tuple[bytes, list[int], list[int | None]]) -> None:
    data, cuts, steps = case
    assert_same(*both_sync(split(data, cuts), steps))


@NEEDS_AIOBOTOCORE
@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_streams)
def test_random_streams_async(case: tuple[bytes, list[int], list[int | None]]) -> None:
    data, cuts, steps = case
    assert_same(*both_async(split(data, cuts), steps))
