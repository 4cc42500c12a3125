"""The response stream of InvokeEndpointWithResponseStream: payload parts as ``bytes``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagestream._transport import BodyReader
    from sagestream.reassembly import ServerSentEvent

__all__ = ["ResponseStream", "StreamMetrics"]


@dataclass
class StreamMetrics:
    """Timing of one stream; times are ``time.monotonic()`` seconds.

    ``time_to_first_part`` and ``duration`` count from ``started`` (when the request was
    sent); ``max_gap`` is the longest wait between two consecutive parts.
    """

    started: float = field(default_factory=time.monotonic)
    time_to_first_part: float | None = None
    parts: int = 0
    bytes: int = 0
    duration: float | None = None
    max_gap: float = 0.0
    last_part_at: float | None = None

    def update(self, now: float, nbytes: int) -> None:
        """Record one part of ``nbytes`` bytes received at ``now``."""
        if self.last_part_at is None:
            self.time_to_first_part = now - self.started
        else:
            self.max_gap = max(self.max_gap, now - self.last_part_at)
        self.last_part_at = now
        self.parts += 1
        self.bytes += nbytes

    def finish(self, now: float) -> None:
        """Record the end of the stream (first call wins)."""
        if self.duration is None:
            self.duration = now - self.started

    @property
    def parts_per_second(self) -> float | None:
        """Parts per second over the stream's duration so far."""
        end = self.duration
        if end is None:
            end = (self.last_part_at - self.started) if self.last_part_at is not None else None
        if not end or end <= 0:
            return None
        return self.parts / end


class ResponseStream:
    """Payload parts of one streaming invocation, decoded in Rust as they arrive.

    Iterate it for ``bytes``; use it as a context manager or call :meth:`close` to release
    the connection at once. :meth:`lines`, :meth:`sse` and :meth:`json_lines` reassemble
    text across part boundaries. Every part received before an error is yielded first, then
    the typed exception is raised.
    """

    def __init__(
        self,
        body: Any,
        owner: BodyReader,
        response: dict[str, Any],
        *,
        started: float,
        body_started: float,
    ) -> None:
        self._body = body
        self._owner = owner
        self._response = response
        self._started = started
        self._body_started = body_started
        meta = response.get("ResponseMetadata") or {}
        #: The HTTP response headers (lower-case names).
        self.headers: dict[str, str] = dict(meta.get("HTTPHeaders") or {})
        #: botocore's ``ResponseMetadata`` (request id, status, headers, retries).
        self.response_metadata: dict[str, Any] = dict(meta)

    # Iterating the stream is iterating the Rust object: no Python frame per part. The Rust
    # object owns the connection (through ``on_end``), so ``for part in client.invoke_stream(...)``
    # works although the ResponseStream itself is not referenced during the loop; an abandoned
    # stream's socket is closed when it is garbage collected.
    def __iter__(self) -> Iterator[bytes]:
        return self._body  # type: ignore[no-any-return]

    def __next__(self) -> bytes:
        return next(self._body)  # type: ignore[no-any-return]

    @property
    def content_type(self) -> str | None:
        """The model's content type (``X-Amzn-SageMaker-Content-Type``)."""
        value = self._response.get("ContentType")
        return str(value) if value is not None else None

    @property
    def invoked_production_variant(self) -> str | None:
        """The production variant that served the request."""
        value = self._response.get("InvokedProductionVariant")
        return str(value) if value is not None else None

    @property
    def custom_attributes(self) -> str | None:
        """``CustomAttributes`` returned by the model, if any."""
        value = self._response.get("CustomAttributes")
        return str(value) if value is not None else None

    @property
    def request_id(self) -> str | None:
        """The service's request id."""
        value = self.response_metadata.get("RequestId")
        return str(value) if value is not None else None

    @property
    def closed(self) -> bool:
        """True once the stream ended or was closed."""
        return bool(self._body.finished)

    @property
    def metrics(self) -> StreamMetrics:
        """Time to first part, parts, bytes, duration and the largest gap between parts."""
        parts, nbytes, first, max_gap, last, ended = self._body.stats()
        offset = self._body_started - self._started
        return StreamMetrics(
            started=self._started,
            time_to_first_part=None if first is None else offset + first,
            parts=parts,
            bytes=nbytes,
            duration=None if ended is None else offset + ended,
            max_gap=max_gap,
            last_part_at=None if last is None else self._body_started + last,
        )

    def close(self) -> None:
        """Stop reading and release the connection now (idempotent)."""
        # RuntimeError: another thread is inside next(); shutting the socket down (below)
        # ends its read.
        with contextlib.suppress(RuntimeError):
            self._body.close()
        # A stream that ended by itself already gave its connection back; otherwise the
        # unread rest of the body makes the connection unusable: close it.
        self._owner.release(False)

    def __enter__(self) -> ResponseStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def read_all(self) -> bytes:
        """Every remaining payload part, joined."""
        return b"".join(self)

    def lines(self, *, max_line_bytes: int | None = None, errors: str = "strict") -> Iterator[str]:
        """Text lines across part boundaries (UTF-8, ``\\n`` or ``\\r\\n``; the last may lack one).

        ``max_line_bytes`` bounds the bytes held for one unfinished line (``LineTooLongError``).
        """
        from sagestream import reassembly

        limit = reassembly.DEFAULT_MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
        return reassembly.iter_lines(self, max_line_bytes=limit, errors=errors)

    def sse(
        self, *, max_event_bytes: int | None = None, discard_incomplete: bool = False
    ) -> Iterator[ServerSentEvent]:
        """Server-sent events (WHATWG rules) across part boundaries; ``.data``, ``.json()``."""
        from sagestream import reassembly

        limit = reassembly.DEFAULT_MAX_LINE_BYTES if max_event_bytes is None else max_event_bytes
        return reassembly.iter_sse(self, max_event_bytes=limit, discard_incomplete=discard_incomplete)

    def json_lines(self, *, max_line_bytes: int | None = None) -> Iterator[Any]:
        """One JSON value per non-blank line, across part boundaries."""
        from sagestream import reassembly

        limit = reassembly.DEFAULT_MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
        return reassembly.iter_json_lines(self, max_line_bytes=limit)

    def __repr__(self) -> str:
        m = self.metrics
        state = "closed" if self.closed else "open"
        return f"<ResponseStream {state} parts={m.parts} bytes={m.bytes}>"
