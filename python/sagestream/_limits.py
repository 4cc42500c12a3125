"""Rate and concurrency limits for the requests of one endpoint, shared by many callers.

:class:`LimitState` is sans-I/O (the caller passes the clock): which calls hold what, and
whether one more may start. :class:`Limiter` waits on it in asyncio; :func:`sagestream.batch.
invoke_many` takes one, and the Ray coordinator actor of :mod:`sagestream.ray` runs one for every
actor calling the endpoint.

**Rate**, ``requests_per_second=R``: at most ``⌊R⌋`` requests start within any second (below 1,
one per ``1/R`` seconds), as the *endpoint* sees them, whatever the delay between a grant and
the request's arrival. A call holds one unit of the rate from its grant until ``window`` seconds
after its response headers (or its failure) were seen: the endpoint saw the request start
between the two, so the holds of every request it saw start within one window overlap at a
single instant, and at most ``⌊R⌋`` holds exist at any instant. Streaming the body holds no
rate unit. A retry the client makes on its own (botocore's decision) is charged to the call's
hold when it is sent (:meth:`LimitState.charge`): it cannot be held back, only counted, so later
calls wait longer.

**Concurrency**, ``concurrency=C``: at most ``C`` calls from grant to end (the stream read to its
end, or failed), so the endpoint never serves more than ``C`` of them at once.

**Throttling** (:meth:`LimitState.throttled`, for ModelNotReadyException and 429 answers):
both limits are halved, at most once per window (a burst of throttled answers is one signal),
down to an eighth of what was set, then grow back by an eighth of it per window without a
throttle. Only limits that were set are scaled.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["Limiter", "LimitState", "Limits"]

#: The smallest fraction of the configured limits throttling brings them down to.
MIN_FACTOR = 0.125
#: How much of the configured limits comes back per window without a throttle.
RECOVERY_STEP = 0.125


@dataclass(frozen=True)
class Limits:
    """What an endpoint takes: requests started per second, and calls in progress at once."""

    requests_per_second: float | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        rate = self.requests_per_second
        if rate is not None and not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"requests_per_second must be a positive number, got {rate!r}")
        conc = self.concurrency
        if conc is not None and (isinstance(conc, bool) or not isinstance(conc, int) or conc < 1):
            raise ValueError(f"concurrency must be a positive integer, got {conc!r}")

    @property
    def window(self) -> float:
        """Seconds of the sliding window the rate is counted over (1, or ``1/R`` below 1/s)."""
        rate = self.requests_per_second
        return 1.0 if rate is None or rate >= 1 else 1.0 / rate

    @property
    def units(self) -> int | None:
        """Requests that may start within one window (None: no rate limit)."""
        rate = self.requests_per_second
        return None if rate is None else max(1, math.floor(rate))


class _Hold:
    __slots__ = ("expires", "holder", "in_progress", "units")

    def __init__(self, holder: Hashable) -> None:
        self.holder = holder
        self.units = 1
        #: None until the call was answered; then when its rate units come free.
        self.expires: float | None = None
        self.in_progress = True


class LimitState:
    """The holds of the calls granted so far, on a caller-given clock (seconds)."""

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self._holds: dict[Hashable, _Hold] = {}
        #: ``(expires, seq, key)`` of every answered hold, soonest first.
        self._expiries: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._rate_used = 0
        self._in_progress = 0
        self.factor = 1.0
        self._last_cut = -math.inf
        self._last_change = now
        #: Throttle signals received, and grants made.
        self.throttles = 0
        self.grants = 0

    # what may start -------------------------------------------------------------------------

    def _recover(self, now: float) -> None:
        window = self.limits.window
        while self.factor < 1.0 and now - self._last_change >= window:
            self.factor = min(1.0, self.factor + RECOVERY_STEP)
            self._last_change += window

    def effective(self, now: float) -> tuple[int | None, int | None]:
        """The rate units per window and the concurrency in force now (throttling applied)."""
        self._recover(now)
        units, conc = self.limits.units, self.limits.concurrency
        return (
            None if units is None else max(1, math.floor(units * self.factor)),
            None if conc is None else max(1, math.floor(conc * self.factor)),
        )

    def expire(self, now: float) -> None:
        """Free the rate units whose window has passed; forget calls that are over."""
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            expires, _, key = heapq.heappop(expiries)
            hold = self._holds.get(key)
            if hold is None or hold.expires != expires:
                continue  # a hold of an earlier call with the same key
            self._rate_used -= hold.units
            hold.units = 0
            hold.expires = None
            if not hold.in_progress:
                del self._holds[key]

    def can_grant(self, now: float) -> bool:
        """Whether one more call may start now."""
        self.expire(now)
        units, conc = self.effective(now)
        if units is not None and self._rate_used >= units:
            return False
        return conc is None or self._in_progress < conc

    def next_change(self, now: float) -> float | None:
        """The next instant a refused call might be granted without any other event."""
        times = [self._expiries[0][0]] if self._expiries else []
        if self.factor < 1.0:
            times.append(self._last_change + self.limits.window)
        return min(times) if times else None

    # the calls ------------------------------------------------------------------------------

    def grant(self, key: Hashable, holder: Hashable, now: float) -> None:
        """Call ``key`` (of ``holder``) starts now: it takes a rate unit and a slot."""
        if key in self._holds:
            raise ValueError(f"call {key!r} already holds a grant")
        self._holds[key] = _Hold(holder)
        self._rate_used += 1
        self._in_progress += 1
        self.grants += 1

    def charge(self, key: Hashable) -> None:
        """Call ``key`` sent one more request (a retry of the client's own): one more rate unit."""
        hold = self._holds.get(key)
        if hold is not None and hold.in_progress:
            hold.units += 1
            self._rate_used += 1

    def answered(self, key: Hashable, now: float) -> None:
        """Call ``key`` got its response headers (or failed): its rate units free in a window."""
        hold = self._holds.get(key)
        if hold is not None and hold.in_progress and hold.expires is None and hold.units:
            hold.expires = now + self.limits.window
            heapq.heappush(self._expiries, (hold.expires, next(self._seq), key))

    def release(self, key: Hashable, now: float) -> None:
        """Call ``key`` is over: its slot is free (and its rate units a window from now at most)."""
        hold = self._holds.get(key)
        if hold is None or not hold.in_progress:
            return
        self.answered(key, now)
        hold.in_progress = False
        self._in_progress -= 1
        if not hold.units:
            del self._holds[key]

    def reclaim(self, holder: Hashable, now: float) -> int:
        """Release every call of ``holder`` (gone without releasing); how many there were."""
        keys = [k for k, h in self._holds.items() if h.holder == holder and h.in_progress]
        for key in keys:
            self.release(key, now)
        return len(keys)

    def throttled(self, now: float) -> None:
        """The endpoint throttled a call: scale the limits down (once per window at most)."""
        self.throttles += 1
        self._recover(now)
        if now - self._last_cut >= self.limits.window:
            self.factor = max(MIN_FACTOR, self.factor / 2)
            self._last_cut = now
            self._last_change = now

    @property
    def in_progress(self) -> int:
        """Calls granted and not yet released."""
        return self._in_progress

    @property
    def rate_used(self) -> int:
        """Rate units held now (until :meth:`expire` frees those past their window)."""
        return self._rate_used


class Limiter:
    """An asyncio limiter over :class:`LimitState`: :meth:`acquire` waits for a grant, first come
    first served.

    ``requests_per_second`` and ``concurrency`` as in :class:`Limits` (None: no such limit).
    Use it from one event loop. Each call is named by a hashable ``key`` (unique among the
    calls in progress) and may name its ``holder`` (a worker), so :meth:`reclaim` can release
    the calls of a worker that went away.
    """

    def __init__(
        self,
        *,
        requests_per_second: float | None = None,
        concurrency: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.state = LimitState(Limits(requests_per_second, concurrency), clock())
        self._waiters: deque[tuple[Hashable, Hashable, asyncio.Future[None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def limits(self) -> Limits:
        """The limits as configured."""
        return self.state.limits

    async def acquire(self, key: Hashable, holder: Hashable = None) -> None:
        """Wait until call ``key`` may start; it then holds its grant until :meth:`release`."""
        now = self._clock()
        if not self._waiters and self.state.can_grant(now):
            self.state.grant(key, holder, now)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((key, holder, future))
        self._pump()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(key)  # granted as it was cancelled
            raise

    def answered(self, key: Hashable) -> None:
        """The call's response headers are in, or it failed before them."""
        self.state.answered(key, self._clock())
        self._pump()

    def charge(self, key: Hashable) -> None:
        """The call's client sent a retry of its own (see :meth:`LimitState.charge`)."""
        self.state.charge(key)

    def release(self, key: Hashable) -> None:
        """The call is over (idempotent)."""
        self.state.release(key, self._clock())
        self._pump()

    def throttled(self) -> None:
        """The endpoint throttled a call."""
        self.state.throttled(self._clock())

    def reclaim(self, holder: Hashable) -> int:
        """Release every call ``holder`` still holds; how many there were."""
        count = self.state.reclaim(holder, self._clock())
        self._pump()
        return count

    def snapshot(self) -> dict[str, Any]:
        """In progress, waiting, throttles and the limits in force, for counters and logs."""
        now = self._clock()
        self.state.expire(now)
        units, conc = self.state.effective(now)
        return {
            "in_progress": self.state.in_progress,
            "waiting": sum(1 for _, _, f in self._waiters if not f.done()),
            "grants": self.state.grants,
            "throttles": self.state.throttles,
            "effective_requests_per_window": units,
            "effective_concurrency": conc,
        }

    def _pump(self) -> None:
        """Grant what may start now, and wake up again when more might."""
        now = self._clock()
        waiters = self._waiters
        while waiters:
            key, holder, future = waiters[0]
            if future.done():
                waiters.popleft()
                continue
            if not self.state.can_grant(now):
                break
            waiters.popleft()
            self.state.grant(key, holder, now)
            future.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if waiters:
            at = self.state.next_change(now)
            if at is not None:
                loop = asyncio.get_running_loop()
                # The loop's clock is time.monotonic(), like the default clock.
                self._timer = loop.call_later(max(0.0, at - now), self._pump)
