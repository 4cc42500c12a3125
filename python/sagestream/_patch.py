"""Drop-in acceleration for stock boto3 and aiobotocore: ``patch_botocore()`` / ``unpatch_botocore()``.

After ``patch_botocore()``, iterating the ``Body`` of a stock boto3
``invoke_endpoint_with_response_stream()`` (``for event in body``), or of aiobotocore's
(``async for event in body``, as aioboto3 users do), decodes the event stream in Rust and yields
exactly the events botocore yields (``{"PayloadPart": {"Bytes": b"..."}}``):

- one decoder per ``EventStream``, as botocore keeps one event generator per stream, so a
  second loop over a body (after ``break``, or after ``next(iter(body))``) carries on with the
  next event, and one after an error frame with the frame after it;
- ``PayloadPart`` events are built in Rust; every other frame (error and exception frames,
  ``initial-response``, event types the model names or not) goes through botocore's own
  ``EventStream._parse_event`` with the headers and payload botocore's decoder would give it,
  so codes, messages and parse failures are botocore's. An error frame raises the typed
  sagestream class for its code, a subclass of botocore's ``EventStreamError`` with botocore's
  very ``response`` and ``str()``.

The body is still read exactly as botocore (urllib3) or aiobotocore (aiohttp) reads it, so
transport errors are theirs, and end the iteration as they do. Event streams of other
operations are left alone.

Differences from botocore, both stricter: a stream that ends inside a frame raises
``TruncatedStreamError`` (botocore ends silently), and bad frames raise sagestream's
``DecodeError`` subclasses (botocore raises its own ``ParserError`` subclasses); either error
is raised again by a later loop over the same body, where botocore's ends silently.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

from botocore.eventstream import EventStream, EventStreamMessage
from botocore.exceptions import EventStreamError

from sagestream import _core
from sagestream.exceptions import StreamError, _stream_error_class

__all__ = ["is_patched", "patch_botocore", "unpatch_botocore"]

#: Operations whose event stream is decoded here (sagemaker-runtime's ``ResponseStream``).
_OPERATIONS = frozenset({"InvokeEndpointWithResponseStream"})
_SHAPES = frozenset({"ResponseStream"})

#: Where each stream keeps its one decoder (``EventStream`` has no ``__slots__``).
_STATE = "_sagestream_events"
#: Where an instrumentation leaves what opens a stream's watch (``watch_stream``).
_WATCH = "_sagestream_watch"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MILLISECOND = dt.timedelta(milliseconds=1)

_lock = threading.Lock()
#: What was patched, and what to put back: ``[(class, name, original)]``; empty when unpatched.
_patched: list[tuple[type, str, Any]] = []


def _is_sagemaker_stream(stream: Any) -> bool:
    shape = getattr(stream, "_output_shape", None)
    return getattr(stream, "_operation_name", None) in _OPERATIONS and getattr(shape, "name", None) in _SHAPES


def _applies(stream: EventStream) -> bool:
    """A SageMaker response stream over a urllib3 body."""
    return _is_sagemaker_stream(stream) and hasattr(getattr(stream, "_raw_stream", None), "stream")


def _applies_async(stream: Any) -> bool:
    """A SageMaker response stream over an aiohttp body (``content.iter_chunks()``)."""
    content = getattr(getattr(stream, "_raw_stream", None), "content", None)
    return _is_sagemaker_stream(stream) and hasattr(content, "iter_chunks")


def _botocore_value(type_name: str, value: Any) -> Any:
    """A header value as botocore's decoder gives it (timestamps in ms, UUIDs as 16 bytes)."""
    if type_name == "timestamp":
        return (value - _EPOCH) // _MILLISECOND
    if type_name == "uuid":
        return value.bytes
    return value


def _botocore_message(message: _core.Message) -> EventStreamMessage:
    """The ``EventStreamMessage`` botocore's decoder would have made of this frame."""
    headers = {name: _botocore_value(kind, value) for name, kind, value in message.header_list}
    return EventStreamMessage(None, headers, message.payload, None)


def _typed(error: EventStreamError) -> StreamError:
    """botocore's error, as the sagestream class for its code (same ``response`` and ``str()``)."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    return _stream_error_class(code)(error.response, error.operation_name)


def _events(stream: EventStream) -> _core.PayloadIterator[bytes | _core.Message]:
    """The one decoder of ``stream``, made on its first iteration."""
    events = stream.__dict__.get(_STATE)
    if events is None:
        events = stream.__dict__.setdefault(
            _STATE, _core.PayloadIterator(stream._raw_stream.stream(), other_frames=True)
        )
    return events  # type: ignore[no-any-return]


def watch_stream(stream: Any, opener: Callable[[], Any]) -> None:
    """Have the first loop over ``stream`` report to the watch ``opener()`` makes (a
    ``sagestream._observe.CallWatch``): each payload, then the end or the error. Only an
    instrumentation calls this; a stream without a watch pays nothing per part."""
    stream.__dict__[_WATCH] = opener


def _watched(stream: Any) -> Any:
    """The watch of this loop over ``stream``, if an instrumentation left one (first loop only)."""
    opener = stream.__dict__.pop(_WATCH, None)
    return None if opener is None else opener()


def _patched_iter(self: EventStream) -> Iterator[Any]:
    if not _applies(self):
        yield from _original("__iter__", EventStream)(self)
        return
    watch = _watched(self)
    if watch is not None:
        yield from _watched_iter(_decoded(self), watch)
        return
    yield from _decoded(self)


def _decoded(self: EventStream) -> Iterator[Any]:
    """botocore's events of ``self``, each payload decoded in Rust."""
    for item in _events(self):
        if isinstance(item, bytes):
            yield {"PayloadPart": {"Bytes": item}}
            continue
        try:
            parsed = self._parse_event(_botocore_message(item))
        except EventStreamError as exc:
            raise _typed(exc) from None
        if parsed:
            yield parsed


class _Ending:
    """Tells ``watch`` how the events it saw ended: done, raised, or closed early (the loop left)."""

    def __init__(self, watch: Any) -> None:
        self._watch = watch

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is None:
            self._watch.stream_ended(None, None, False)
        elif issubclass(kind, GeneratorExit):
            self._watch.stream_ended(None, None, True)
        else:
            self._watch.stream_ended(None, exc, False)


def _watched_iter(events: Iterator[Any], watch: Any) -> Iterator[Any]:
    """``events``, telling ``watch`` of each payload and of the end."""
    with _Ending(watch):
        for event in events:
            part = event.get("PayloadPart")
            if part is not None:
                watch.part(part["Bytes"])
            yield event


class _AsyncEvents:
    """The one decoder of an aiobotocore event stream: its chunks through a ``PayloadDecoder``."""

    def __init__(self, stream: Any) -> None:
        self._chunks: AsyncIterator[tuple[bytes, bool]] = stream._raw_stream.content.iter_chunks()
        self._decoder = _core.PayloadDecoder(other_frames=True)
        self._ready: collections.deque[bytes | _core.Message] = collections.deque()
        #: The body ended (``close()`` then raises a cut frame, again at every later call).
        self._at_end = False
        #: A read raised: the iteration is over, as botocore's generator is once it raised.
        self._read_failed = False

    async def next(self) -> bytes | _core.Message | None:
        """The next payload or other frame, ``None`` at the end."""
        while not self._ready:
            if self._read_failed:
                return None
            if self._at_end:
                self._decoder.close()
                return None
            # An error held back after earlier items is raised before reading on.
            self._ready.extend(self._decoder.feed(b""))
            if self._ready:
                break
            try:
                chunk, _ = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._at_end = True
                continue
            except BaseException:
                self._read_failed = True
                raise
            self._ready.extend(self._decoder.feed(chunk))
        return self._ready.popleft()


async def _async_events(stream: Any) -> AsyncIterator[Any]:
    events = stream.__dict__.get(_STATE)
    if events is None:
        events = stream.__dict__.setdefault(_STATE, _AsyncEvents(stream))
    watch = _watched(stream)
    # The inner generators are closed when this one is (a loop left early), not when collected.
    async with contextlib.aclosing(_async_decoded(stream, events)) as decoded:
        if watch is None:
            async for event in decoded:
                yield event
            return
        async with contextlib.aclosing(_async_watched(decoded, watch)) as watched:
            async for event in watched:
                yield event


async def _async_decoded(stream: Any, events: _AsyncEvents) -> AsyncGenerator[Any, None]:
    """aiobotocore's events of ``stream``, each payload decoded in Rust."""
    while (item := await events.next()) is not None:
        if isinstance(item, bytes):
            yield {"PayloadPart": {"Bytes": item}}
            continue
        try:
            parsed = await stream._parse_event(_botocore_message(item))
        except EventStreamError as exc:
            raise _typed(exc) from None
        if parsed:
            yield parsed


async def _async_watched(events: AsyncIterator[Any], watch: Any) -> AsyncGenerator[Any, None]:
    """``events``, telling ``watch`` of each payload and of the end."""
    with _Ending(watch):
        async for event in events:
            part = event.get("PayloadPart")
            if part is not None:
                watch.part(part["Bytes"])
            yield event


def _patched_aiter(self: Any) -> AsyncIterator[Any]:
    if not _applies_async(self):
        return _original("__aiter__", type(self))(self)  # type: ignore[no-any-return]
    return _async_events(self)


def _original(name: str, owner: type) -> Callable[..., Any]:
    """The method ``name`` as it was before ``patch_botocore()``, for the streams left alone."""
    for cls, attr, original in _patched:
        if attr == name and issubclass(owner, cls):
            return original  # type: ignore[no-any-return]
    return getattr(owner, name)  # type: ignore[no-any-return]


def _aio_event_stream() -> type | None:
    """aiobotocore's ``AioEventStream``, when aiobotocore is installed."""
    try:
        from aiobotocore.eventstream import AioEventStream
    except ImportError:
        return None
    return AioEventStream  # type: ignore[no-any-return]


def patch_botocore() -> None:
    """Make botocore (and aiobotocore, when installed) decode SageMaker response streams in Rust.

    Idempotent and thread-safe; :func:`unpatch_botocore` reverts it.
    """
    with _lock:
        if _patched:
            return
        targets: list[tuple[type, str, Any]] = [(EventStream, "__iter__", _patched_iter)]
        aio = _aio_event_stream()
        if aio is not None:
            targets.append((aio, "__aiter__", _patched_aiter))
        for cls, name, replacement in targets:
            _patched.append((cls, name, cls.__dict__[name]))
            setattr(cls, name, replacement)


def unpatch_botocore() -> None:
    """Restore botocore's (and aiobotocore's) own decoding (idempotent, thread-safe)."""
    with _lock:
        while _patched:
            cls, name, original = _patched.pop()
            setattr(cls, name, original)


def is_patched() -> bool:
    """True while :func:`patch_botocore` is in effect."""
    return bool(_patched)
