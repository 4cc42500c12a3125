"""The response streams of InvokeEndpointWithResponseStream: payload parts as ``bytes``.

Both clients' streams share :class:`_StreamBase` (what the answer's headers say, metrics, the
reassembly helpers); they differ only in how a part is waited for. Iterating a stream is
iterating the Rust object itself: no Python frame runs per part.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from sagestream._operations import StreamInfo

if TYPE_CHECKING:
    from sagestream.reassembly import ServerSentEvent

__all__ = ["AsyncClosing", "AsyncResponseStream", "Closing", "Opened", "ResponseStream", "StreamMetrics"]

_Self = TypeVar("_Self")


class Closing:
    """``with`` for what has a ``close()``: it is closed on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClosing:
    """``async with`` and ``contextlib.aclosing`` for what has a ``close()`` that does not wait."""

    def close(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Same as :meth:`close` (for ``contextlib.aclosing``)."""
        self.close()

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


@dataclass
class StreamMetrics:
    """Timing of one stream; times are ``time.monotonic()`` seconds.

    ``time_to_first_part`` and ``duration`` count from ``started`` (when the call began);
    ``max_gap`` is the longest wait between two consecutive parts.
    """

    started: float = field(default_factory=time.monotonic)
    time_to_first_part: float | None = None
    parts: int = 0
    bytes: int = 0
    duration: float | None = None
    max_gap: float = 0.0
    last_part_at: float | None = None

    @classmethod
    def of(cls, stats: Any, started: float) -> StreamMetrics:
        """From the Rust stream's ``StreamStats``."""
        first = stats.first_part_at
        ended = stats.ended_at
        return cls(
            started=started,
            time_to_first_part=None if first is None else first - started,
            parts=stats.parts,
            bytes=stats.bytes,
            duration=None if ended is None else ended - started,
            max_gap=stats.max_gap,
            last_part_at=stats.last_part_at,
        )

    @property
    def parts_per_second(self) -> float | None:
        """Parts per second over the stream's duration so far."""
        end = self.duration
        if end is None:
            end = (self.last_part_at - self.started) if self.last_part_at is not None else None
        if not end or end <= 0:
            return None
        return self.parts / end


class _Answered:
    """A read-only attribute of a stream that is its answer's (:class:`StreamInfo`) of the same name."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, stream: None, owner: type) -> _Answered: ...
    @overload
    def __get__(self, stream: _StreamBase, owner: type | None = None) -> str | None: ...
    def __get__(self, stream: _StreamBase | None, owner: type | None = None) -> _Answered | str | None:
        return self if stream is None else getattr(stream._info, self._name)

    def __set__(self, stream: _StreamBase, value: object) -> None:
        raise AttributeError(f"{self._name} is read-only")


class _StreamBase:
    """What both streams share: the answer's headers, the parts object, metrics.

    ``answer`` is the botocore-style answer of the response's headers; what it says
    (:class:`StreamInfo`) is read from it when first asked for, not before the first part:
    a consumer that only reads parts never pays for it.
    """

    def __init__(
        self,
        parts: Any,
        answer: dict[str, Any],
        *,
        started: float,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._parts = parts
        self._answer = answer
        self._started = started
        self._on_close = on_close

    @cached_property
    def _info(self) -> StreamInfo:
        return StreamInfo.of(self._answer)

    @cached_property
    def headers(self) -> dict[str, str]:
        """The HTTP response headers (lower-case names)."""
        return self._info.headers

    @cached_property
    def response_metadata(self) -> dict[str, Any]:
        """botocore's ``ResponseMetadata`` (request id, status, headers, retries)."""
        return self._info.response_metadata

    content_type = _Answered("The model's content type (``X-Amzn-SageMaker-Content-Type``).")
    invoked_production_variant = _Answered("The production variant that served the request.")
    custom_attributes = _Answered("``CustomAttributes`` returned by the model, if any.")
    request_id = _Answered("The service's request id.")

    @property
    def closed(self) -> bool:
        """True once the stream ended, failed or was closed."""
        return bool(self._parts.finished)

    @property
    def metrics(self) -> StreamMetrics:
        """Time to first part, parts, bytes, duration and the largest gap between parts."""
        return StreamMetrics.of(self._parts.stats(), self._started)

    def __repr__(self) -> str:
        m = self.metrics
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {state} parts={m.parts} bytes={m.bytes}>"


#: Content types whose streams hold server-sent events, and JSON lines (by their essence).
_SSE_TYPES = frozenset({"text/event-stream"})
_JSON_LINES_TYPES = frozenset(
    {"application/jsonlines", "application/x-jsonlines", "application/jsonl", "application/x-ndjson",
     "application/ndjson", "application/json", "application/json-seq", "text/plain"}
)  # fmt: skip


def _expect(info: StreamInfo, kind: str, types: frozenset[str]) -> None:
    """Warn (``ContentTypeWarning``) when the stream's content type says ``kind`` will find nothing."""
    content_type = info.content_type
    if content_type is None:
        return
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence and essence not in types:
        import warnings

        from sagestream.exceptions import ContentTypeWarning

        warnings.warn(
            f"{kind} on a stream of {content_type}: the model may send none"
            " (ask for another format, or read the stream's parts or .lines())",
            ContentTypeWarning,
            stacklevel=3,
        )


def _limit(value: int | None) -> int:
    from sagestream.reassembly import DEFAULT_MAX_LINE_BYTES

    return DEFAULT_MAX_LINE_BYTES if value is None else value


class ResponseStream(_StreamBase, Closing):
    """Payload parts of one streaming invocation, decoded in Rust as they arrive.

    Iterate it for ``bytes``; use it as a context manager or call :meth:`close` to release
    the connection at once. :meth:`lines`, :meth:`sse` and :meth:`json_lines` reassemble
    text across part boundaries. Every part received before an error is yielded first, then
    the typed exception is raised.
    """

    def __iter__(self) -> Iterator[bytes]:
        return self._parts  # type: ignore[no-any-return]

    def __next__(self) -> bytes:
        return next(self._parts)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop reading and release the connection now (idempotent)."""
        # RuntimeError: another thread is inside next(); on_close ends its read.
        with contextlib.suppress(RuntimeError):
            self._parts.close()
        if self._on_close is not None:
            self._on_close()

    def read_all(self) -> bytes:
        """Every remaining payload part, joined."""
        return b"".join(self)

    def lines(self, *, max_line_bytes: int | None = None, errors: str = "strict") -> Iterator[str]:
        """Text lines across part boundaries (UTF-8, ``\\n`` or ``\\r\\n``; the last may lack one).

        ``max_line_bytes`` bounds the bytes held for one unfinished line (``LineTooLongError``).
        """
        from sagestream import reassembly

        return reassembly.iter_lines(self, max_line_bytes=_limit(max_line_bytes), errors=errors)

    def sse(
        self, *, max_event_bytes: int | None = None, discard_incomplete: bool = False
    ) -> Iterator[ServerSentEvent]:
        """Server-sent events (WHATWG rules) across part boundaries; ``.data``, ``.json()``."""
        from sagestream import reassembly

        _expect(self._info, ".sse()", _SSE_TYPES)
        return reassembly.iter_sse(
            self, max_event_bytes=_limit(max_event_bytes), discard_incomplete=discard_incomplete
        )

    def json_lines(self, *, max_line_bytes: int | None = None) -> Iterator[Any]:
        """One JSON value per non-blank line, across part boundaries."""
        from sagestream import reassembly

        _expect(self._info, ".json_lines()", _JSON_LINES_TYPES)
        return reassembly.iter_json_lines(self, max_line_bytes=_limit(max_line_bytes))


class AsyncResponseStream(_StreamBase, AsyncClosing):
    """The payload parts of one InvokeEndpointWithResponseStream answer, for ``async for``.

    ``async with client.invoke_stream(...) as s: async for part in s``. A part that has
    arrived is returned without a trip through the event loop (after 1 ms or 256 such parts the
    reading task lets the loop run others once); waiting for one costs no thread.
    An error frame raises ``ModelStreamError`` / ``InternalStreamFailure`` after every earlier
    part; a lost connection, a read timeout or the deadline raise a
    :class:`~sagestream.TransportError`; a stream cut inside a frame raises
    ``TruncatedStreamError``. Cancelling the consuming task closes the connection at once.
    """

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._parts  # type: ignore[no-any-return]

    async def __anext__(self) -> bytes:
        return await self._parts.__anext__()  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the connection now (parts not yet read are dropped); idempotent."""
        self._parts.close()

    def lines(self, **kwargs: Any) -> AsyncIterator[str]:
        """Text lines reassembled across parts (UTF-8 safe); see ``sagestream.reassembly``."""
        from sagestream.reassembly import aiter_lines

        return aiter_lines(self, **kwargs)

    def sse(self, **kwargs: Any) -> AsyncIterator[ServerSentEvent]:
        """Server-sent events reassembled across parts, per the WHATWG rules."""
        from sagestream.reassembly import aiter_sse

        _expect(self._info, ".sse()", _SSE_TYPES)
        return aiter_sse(self, **kwargs)

    def json_lines(self, **kwargs: Any) -> AsyncIterator[Any]:
        """One decoded JSON value per line."""
        from sagestream.reassembly import aiter_json_lines

        _expect(self._info, ".json_lines()", _JSON_LINES_TYPES)
        return aiter_json_lines(self, **kwargs)


class _Closable(Protocol):
    def close(self) -> None: ...


_Opened = TypeVar("_Opened", bound=_Closable)


class Opened(Awaitable[_Opened], Generic[_Opened]):
    """What an asyncio call that opens a stream or a session returns: awaitable (``start()``
    opens it), and an async context manager that closes what it opened on the way out."""

    def __init__(self, start: Callable[[], Awaitable[_Opened]]) -> None:
        self._start = start
        self._opened: _Opened | None = None

    def __await__(self) -> Generator[Any, None, _Opened]:
        return self._start().__await__()

    async def __aenter__(self) -> _Opened:
        self._opened = await self._start()
        return self._opened

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._opened is not None:
            self._opened.close()
