"""The coordinator of one endpoint: a named Ray actor shared by every actor calling it.

It holds the endpoint's :class:`~sagestream.batch.Limiter` (so N actors together stay within
the rate and concurrency the endpoint takes, and slow down together when it throttles) and its
counters (rows done / failed / retried, attempts, parts), which the driver reads while the
pipeline runs (:func:`endpoint_counters`).

It is a detached actor named ``endpoint:<name>`` in the ``sagestream`` namespace, created by the
first :class:`~sagestream.ray.SageMakerStream` that needs it (``get_if_exists``): detached, so
that it outlives any one of the actors, which Ray may kill and restart; it ends itself after
``idle_seconds`` without a worker. Workers report every second; one silent for ``lease_seconds``
is taken for dead and the calls it held are released (a killed actor releases nothing itself).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import ray

from sagestream.batch import Limiter

__all__ = [
    "NAMESPACE",
    "EndpointCounters",
    "close_endpoint",
    "coordinator",
    "coordinator_name",
    "endpoint_counters",
    "endpoint_workers",
]

#: The Ray namespace of the coordinators, so pipelines of different jobs share them.
NAMESPACE = "sagestream"
#: Default seconds without a report after which a worker is taken for dead.
LEASE_SECONDS = 10.0
#: Default seconds without any worker after which a coordinator ends itself.
IDLE_SECONDS = 300.0
#: Calls a coordinator serves at once (mostly waiting acquires).
MAX_CONCURRENCY = 10_000

_COUNTERS = ("rows_done", "rows_failed", "rows_retried", "attempts", "parts")


def coordinator_name(endpoint_name: str) -> str:
    """The Ray actor name of ``endpoint_name``'s coordinator."""
    return f"endpoint:{endpoint_name}"


@dataclass(frozen=True)
class EndpointCounters:
    """What the actors calling one endpoint have done so far (since its coordinator started).

    Rows of a batch Ray ran again (after an actor died) are counted each time they ran.
    """

    endpoint_name: str
    #: Rows answered without error, and with one.
    rows_done: int
    rows_failed: int
    #: Rows that took more than one HTTP request (the client's retries, or restarts).
    rows_retried: int
    #: HTTP requests sent, and payload parts received (tokens, for one-token-per-part models).
    attempts: int
    parts: int
    #: Throttle signals (ModelNotReadyException, retried 429 answers) the limiter received.
    throttles: int
    #: Requests holding the limiter now, and waiting for it (0 without limits).
    in_progress: int
    waiting: int
    #: Actors reporting now.
    workers: int
    #: Seconds from the first worker's arrival to the last report with rows.
    elapsed: float
    #: The limits as set, and in force now (scaled down after throttling; None: no limit).
    requests_per_second: float | None
    concurrency: int | None
    effective_requests_per_window: int | None
    effective_concurrency: int | None

    @property
    def rows(self) -> int:
        """Rows finished, with or without error."""
        return self.rows_done + self.rows_failed

    @property
    def rows_per_second(self) -> float | None:
        """Rows finished per second over ``elapsed``."""
        return self.rows / self.elapsed if self.elapsed > 0 else None

    @property
    def parts_per_second(self) -> float | None:
        """Payload parts (tokens) per second over ``elapsed``."""
        return self.parts / self.elapsed if self.elapsed > 0 else None


class _Worker:
    __slots__ = ("actor", "last_seen")

    def __init__(self, actor: Any, now: float) -> None:
        self.actor = actor
        self.last_seen = now


class Coordinator:
    """The actor's class (made a Ray actor by :func:`coordinator`)."""

    def __init__(
        self,
        endpoint_name: str,
        requests_per_second: float | None,
        concurrency: int | None,
        lease_seconds: float = LEASE_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.limiter = Limiter(requests_per_second=requests_per_second, concurrency=concurrency)
        self.lease_seconds = lease_seconds
        self.idle_seconds = idle_seconds
        self.workers: dict[str, _Worker] = {}
        self.counters = dict.fromkeys(_COUNTERS, 0)
        self.started: float | None = None
        self.updated: float | None = None
        self.idle_since = time.monotonic()
        self._reaper: asyncio.Task[None] | None = None

    # workers --------------------------------------------------------------------------------

    def _seen(self, holder: str, actor: Any = None) -> None:
        now = time.monotonic()
        worker = self.workers.get(holder)
        if worker is None:
            self.workers[holder] = worker = _Worker(actor, now)
            if self.started is None:
                self.started = now
        elif actor is not None:
            worker.actor = actor
        worker.last_seen = now
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def register(
        self, holder: str, actor: Any, requests_per_second: float | None, concurrency: int | None
    ) -> None:
        """A worker arrives; the limits it was given must be the coordinator's."""
        limits = self.limiter.limits
        if (limits.requests_per_second, limits.concurrency) != (requests_per_second, concurrency):
            raise ValueError(
                f"endpoint {self.endpoint_name!r} is already limited to "
                f"max_requests_per_second={limits.requests_per_second}, "
                f"max_concurrent_streams={limits.concurrency} by another pipeline; give the same "
                "limits, or call sagestream.ray.close_endpoint() once that pipeline is done"
            )
        self._seen(holder, actor)

    async def report(self, holder: str, delta: dict[str, int]) -> None:
        """A worker's counters since its last report (also its heartbeat)."""
        self._seen(holder)
        if delta:
            for name in _COUNTERS:
                self.counters[name] += delta.get(name, 0)
            self.updated = time.monotonic()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.lease_seconds / 4))
            now = time.monotonic()
            for holder, worker in list(self.workers.items()):
                if now - worker.last_seen > self.lease_seconds:
                    del self.workers[holder]
                    self.limiter.reclaim(holder)
            if self.workers:
                self.idle_since = now
            elif now - self.idle_since > self.idle_seconds:
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    # the limiter ----------------------------------------------------------------------------

    async def acquire(self, holder: str, key: Any) -> None:
        """Wait until call ``key`` of ``holder`` may start."""
        self._seen(holder)
        await self.limiter.acquire(key, holder)

    async def answered(self, key: Any) -> None:
        """Call ``key`` has its response headers, or failed before them."""
        self.limiter.answered(key)

    async def charge(self, key: Any) -> None:
        """Call ``key`` sent a retry of its client's own."""
        self.limiter.charge(key)

    async def release(self, key: Any) -> None:
        """Call ``key`` is over."""
        self.limiter.release(key)

    async def throttled(self) -> None:
        """The endpoint throttled a call."""
        self.limiter.throttled()

    # what the driver reads ------------------------------------------------------------------

    async def snapshot(self) -> EndpointCounters:
        """The counters now."""
        limits = self.limiter.limits
        state = self.limiter.snapshot()
        elapsed = 0.0
        if self.started is not None and self.updated is not None:
            elapsed = max(0.0, self.updated - self.started)
        return EndpointCounters(
            endpoint_name=self.endpoint_name,
            rows_done=self.counters["rows_done"],
            rows_failed=self.counters["rows_failed"],
            rows_retried=self.counters["rows_retried"],
            attempts=self.counters["attempts"],
            parts=self.counters["parts"],
            throttles=state["throttles"],
            in_progress=state["in_progress"],
            waiting=state["waiting"],
            workers=len(self.workers),
            elapsed=elapsed,
            requests_per_second=limits.requests_per_second,
            concurrency=limits.concurrency,
            effective_requests_per_window=state["effective_requests_per_window"],
            effective_concurrency=state["effective_concurrency"],
        )

    async def actors(self) -> list[Any]:
        """The Ray actor handles of the workers reporting now."""
        return [w.actor for w in self.workers.values() if w.actor is not None]


_RemoteCoordinator = ray.remote(Coordinator)


def coordinator(
    endpoint_name: str,
    *,
    requests_per_second: float | None = None,
    concurrency: int | None = None,
    lease_seconds: float = LEASE_SECONDS,
    idle_seconds: float = IDLE_SECONDS,
) -> Any:
    """The handle of ``endpoint_name``'s coordinator, created with these settings if it has none."""
    return _RemoteCoordinator.options(
        name=coordinator_name(endpoint_name),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        max_restarts=-1,
        max_task_retries=-1,
        max_concurrency=MAX_CONCURRENCY,
    ).remote(endpoint_name, requests_per_second, concurrency, lease_seconds, idle_seconds)


def _existing(endpoint_name: str) -> Any:
    try:
        return ray.get_actor(coordinator_name(endpoint_name), namespace=NAMESPACE)
    except ValueError:
        raise ValueError(
            f"no SageMakerStream has called endpoint {endpoint_name!r} in this Ray cluster yet"
            " (or its coordinator ended after being idle)"
        ) from None


def endpoint_counters(endpoint_name: str, *, timeout: float = 30.0) -> EndpointCounters:
    """The counters of ``endpoint_name`` now (readable while the pipeline runs)."""
    return ray.get(_existing(endpoint_name).snapshot.remote(), timeout=timeout)  # type: ignore[no-any-return]


def endpoint_workers(endpoint_name: str, *, timeout: float = 30.0) -> list[Any]:
    """The Ray actors calling ``endpoint_name`` through SageMakerStream now (handles)."""
    return ray.get(_existing(endpoint_name).actors.remote(), timeout=timeout)  # type: ignore[no-any-return]


def close_endpoint(endpoint_name: str) -> bool:
    """End ``endpoint_name``'s coordinator (its counters and limits); False if it had none.

    The next SageMakerStream for the endpoint starts a new one, with its own limits.
    """
    try:
        handle = ray.get_actor(coordinator_name(endpoint_name), namespace=NAMESPACE)
    except ValueError:
        return False
    ray.kill(handle, no_restart=True)
    return True
