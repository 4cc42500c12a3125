"""Part iterators that time each part and end their call's span with the stream.

They stand in for the Rust part iterators only while sagestream is instrumented; the streams
(``ResponseStream``, ``AsyncResponseStream``) use them as they use the Rust ones: iteration,
``close()``, ``finished``, ``stats()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["AsyncParts", "Parts"]


class Call(Protocol):
    """What the iterators tell of their call (``sagestream.otel._calls.Call``)."""

    ended: bool
    requesting: bool

    def answered(self, status: int, headers: Mapping[str, str], attempts: int) -> None: ...

    def part(self, data: bytes) -> None: ...

    def stream_ended(self, stats: Any, error: BaseException | None, closed: bool) -> None: ...


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

    def _ended(self, error: BaseException | None, closed: bool = False) -> None:
        call = self._call
        if call.ended:
            return
        if self._answer is not None and call.requesting:
            status, headers = self._answer()
            if status is not None:
                call.answered(status, headers or {}, 1)
        call.stream_ended(self._inner.stats(), error, closed)

    def close(self) -> None:
        self._inner.close()
        self._ended(None, closed=True)

    def __del__(self) -> None:
        # A stream dropped unread still ends its span.
        call = getattr(self, "_call", None)
        if call is not None and not call.ended:
            self._ended(None, closed=True)


class Parts(_Base):
    """A sync part iterator, timed."""

    __slots__ = ()

    def __iter__(self) -> Parts:
        return self

    def __next__(self) -> bytes:
        try:
            part: bytes = next(self._inner)
        except StopIteration:
            self._ended(None)
            raise
        except BaseException as exc:
            self._ended(exc)
            raise
        self._call.part(part)
        return part


class AsyncParts(_Base):
    """An asyncio part iterator, timed."""

    __slots__ = ()

    def __aiter__(self) -> AsyncParts:
        return self

    async def __anext__(self) -> bytes:
        try:
            part: bytes = await self._inner.__anext__()
        except StopAsyncIteration:
            self._ended(None)
            raise
        except BaseException as exc:
            self._ended(exc)
            raise
        self._call.part(part)
        return part
