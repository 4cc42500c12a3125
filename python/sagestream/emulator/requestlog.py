"""What the emulator received: one record per request, and the load they add up to.

Tests of rate limiting and concurrency (a Ray actor pool, a client-side limiter) read
``Emulator.request_log`` to see what actually reached the endpoint: which operation, when it
started and ended (``time.monotonic()`` of the emulator's process), its status, and the
CustomAttributes and PrefixAwareId it carried. The log keeps the last ``size`` records (a ring
buffer, 10,000 by default: a few MB), so a long load test against ``sagestream serve`` does
not grow it for ever.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["DEFAULT_REQUEST_LOG_SIZE", "RequestLog", "RequestRecord"]

#: Records a request log keeps (the oldest go first).
DEFAULT_REQUEST_LOG_SIZE = 10_000


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw it."""

    #: ``InvokeEndpoint``, ``InvokeEndpointWithResponseStream``, ``InvokeEndpointAsync``, or
    #: ``Unknown`` for any other route.
    operation: str
    #: The endpoint name from the path (None on other routes).
    endpoint: str | None
    #: ``time.monotonic()`` when the request's headers were in, and when its answer was sent
    #: (for a stream: its last frame; for InvokeEndpointAsync: the 202, not the job).
    started: float
    ended: float
    #: The HTTP status answered (200 for a stream, even one ended by an error event).
    status: int
    custom_attributes: str | None
    #: The ``x-amzn-RequestId`` answered.
    request_id: str
    #: The error code answered or sent in the stream, or None.
    error: str | None = None
    #: The PrefixAwareId routing hint the request carried (validated), or None.
    prefix_aware_id: str | None = None

    @property
    def duration(self) -> float:
        """Seconds from ``started`` to ``ended``."""
        return self.ended - self.started


class RequestLog:
    """A thread-safe log of the last ``size`` :class:`RequestRecord` (a ring buffer: the
    oldest record goes when a new one would pass the bound), with load summaries over what it
    holds. ``dropped`` counts the records that went.

    Reading (iteration, ``len``, indexing, :meth:`snapshot`) works on a copy taken under the
    lock, so the server thread may keep appending.
    """

    def __init__(self, size: int = DEFAULT_REQUEST_LOG_SIZE) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"a request log holds at least one record, not {size!r}")
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=size)
        #: Records dropped to keep within ``size``.
        self.dropped = 0

    @property
    def size(self) -> int:
        """The most records kept."""
        return self._records.maxlen or 0

    def append(self, record: RequestRecord) -> None:
        """Add a record (called by the server); the oldest goes if the log is full."""
        with self._lock:
            if len(self._records) == self._records.maxlen:
                self.dropped += 1
            self._records.append(record)

    def clear(self) -> None:
        """Forget every record so far."""
        with self._lock:
            self._records.clear()
            self.dropped = 0

    def snapshot(self) -> list[RequestRecord]:
        """A copy of the records, in the order their requests ended."""
        with self._lock:
            return list(self._records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __getitem__(self, index: int) -> RequestRecord:
        with self._lock:
            return self._records[index]

    def peak_concurrency(self, operation: str | None = None) -> int:
        """The most requests (of ``operation``, or all) in progress at the same moment.

        A request that ends at the very instant another starts is not counted as overlapping.
        """
        events: list[tuple[float, int]] = []
        for record in self.snapshot():
            if operation is None or record.operation == operation:
                events.append((record.started, 1))
                events.append((record.ended, -1))
        # Ends sort before starts at the same instant.
        events.sort()
        peak = current = 0
        for _, delta in events:
            current += delta
            peak = max(peak, current)
        return peak

    def max_rate(self, window: float = 1.0, operation: str | None = None) -> int:
        """The most requests (of ``operation``, or all) started within any ``window`` seconds.

        A sliding window over the start times: ``max_rate(1.0)`` is the peak requests per
        second however the second is aligned.
        """
        if window <= 0:
            raise ValueError("window must be positive")
        starts = sorted(r.started for r in self.snapshot() if operation is None or r.operation == operation)
        best = first = 0
        for last, stamp in enumerate(starts):
            while stamp - starts[first] >= window:
                first += 1
            best = max(best, last - first + 1)
        return best
