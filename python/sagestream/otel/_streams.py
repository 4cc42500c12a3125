"""How a call's watch follows its stream's parts, and ends its span with the stream.

By default the Rust part iterator itself is handed to the stream, observed (``observe()``): it
measures the gap before each part where it hands the part out, keeps the gaps (at most
``BATCH``) and tells a :class:`Watcher` of the first part, of the gaps in batches and of the
end; no Python frame runs per part. Only when the bodies are captured (content capture) do
:class:`Parts` / :class:`AsyncParts` stand in for the Rust iterators, to see each part's bytes;
the streams (``ResponseStream``, ``AsyncResponseStream``) use them as they use the Rust ones:
iteration, ``close()``, ``finished``, ``stats()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["BATCH", "MAX_DELAY", "AsyncParts", "Parts", "Watcher"]

#: Gaps between parts a stream keeps before its watch records them.
BATCH = 64
#: ... or seconds since the oldest kept gap was measured (checked at each part).
MAX_DELAY = 1.0


class Call(Protocol):
    """What the iterators tell of their call (``sagestream.otel._calls.Call``)."""

    ended: bool
    requesting: bool

    def answered(self, status: int, headers: Mapping[str, str], attempts: int) -> None: ...

    def part(self, data: bytes) -> None: ...

    def first_part(self, at: float) -> None: ...

    def gaps(self, gaps: list[float]) -> None: ...

    def stream_ended(self, stats: Any, error: BaseException | None, closed: bool) -> None: ...


def _stream_ended(
    call: Call, answer: Callable[[], Any] | None, stats: Any, error: BaseException | None, closed: bool
) -> None:
    if call.ended:
        return
    if answer is not None and call.requesting:
        try:
            status, headers = answer()
        except AttributeError:  # a session being collected: the collector cleared its attributes
            status, headers = None, None
        if status is not None:
            call.answered(status, headers or {}, 1)
    call.stream_ended(stats, error, closed)


class Watcher:
    """What an observed Rust part iterator tells (``PartIterator.observe``), told to the call."""

    __slots__ = ("_answer", "_call", "first_part", "gaps")

    def __init__(self, call: Call, answer: Callable[[], Any] | None = None) -> None:
        self._call = call
        self._answer = answer
        self.first_part = call.first_part
        self.gaps = call.gaps

    def ended(self, stats: Any, error: BaseException | None, closed: bool) -> None:
        _stream_ended(self._call, self._answer, stats, error, closed)


class _Base:
    __slots__ = ("_answer", "_call", "_inner")

    def __init__(self, inner: Any, call: Call, answer: Callable[[], Any] | None = None) -> None:
        self._inner = inner
        self._call = call
        self._answer = answer

    @property
    def finished(self) -> bool:
        return bool(self._inner.finished)

    def stats(self) -> Any:
        return self._inner.stats()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    #: What the inner iterator raises when it has no more parts.
    _END: type[BaseException]

    def _raised(self, exc: BaseException) -> None:
        """The inner iterator raised ``exc``: the stream ended, failed unless it ran out."""
        self._ended(None if isinstance(exc, self._END) else exc)

    def _ended(self, error: BaseException | None, closed: bool = False) -> None:
        if not self._call.ended:
            _stream_ended(self._call, self._answer, self._inner.stats(), error, closed)

    def close(self) -> None:
        self._inner.close()
        self._ended(None, closed=True)

    def __del__(self) -> None:
        # A stream dropped unread still ends its span.
        call = getattr(self, "_call", None)
        if call is not None and not call.ended:
            self._ended(None, closed=True)


class Parts(_Base):
    """A sync part iterator, timed, whose parts' bytes the call sees."""

    __slots__ = ()
    _END = StopIteration

    def __iter__(self) -> Parts:
        return self

    def __next__(self) -> bytes:
        try:
            part: bytes = next(self._inner)
        except BaseException as exc:
            self._raised(exc)
            raise
        self._call.part(part)
        return part


class AsyncParts(_Base):
    """An asyncio part iterator, timed, whose parts' bytes the call sees."""

    __slots__ = ()
    _END = StopAsyncIteration

    def __aiter__(self) -> AsyncParts:
        return self

    async def __anext__(self) -> bytes:
        try:
            part: bytes = await self._inner.__anext__()
        except BaseException as exc:
            self._raised(exc)
            raise
        self._call.part(part)
        return part
