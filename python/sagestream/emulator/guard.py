"""Bounds on client connections, so that idle or slow clients cannot starve correct ones.

aiohttp has no bound on how many connections a server holds, nor one on how long a connection
may take to send its request's headers; nor has the HTTP/2 server of the bidirectional
operation (:mod:`.h2server`). Without them, 1,100 connections that send nothing (or half an
HTTP/2 preface) exhaust a 1,024-file limit and every later request, on any port, waits for ever.
One guard serves every port of an emulator, so the ports share one budget of connections. It
wraps the protocol factory of aiohttp's server (the HTTP/2 server tells it of its connections
itself: :meth:`ConnectionGuard.track`, :meth:`ConnectionGuard.begin` / :meth:`ConnectionGuard.end`)
and:

- closes a connection that has no request in progress (none sent yet, headers still
  trickling in, or idle between requests) for longer than ``idle_timeout``;
- keeps the number of open connections under ``max_connections`` (by default a margin below
  the process's open-file limit): at the cap, the connection idle the longest is closed to
  make room for the new one, and if every connection is busy, the new one is refused.

A request counts as in progress from the moment its headers are parsed (the middleware
:meth:`ConnectionGuard.middleware` marks it; on HTTP/2, a stream's handler) until its handler
returns; the body's own bound is the server's (``EmulatorConfig.body_timeout``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from .config import log

__all__ = ["ConnectionGuard", "default_max_connections"]

#: Descriptors kept free for everything else the process opens (files, S3, model proxies).
_RESERVED_FILES = 64


def default_max_connections() -> int:
    """A connection cap below the soft open-file limit (RLIMIT_NOFILE) of this process."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return 10_000
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 10_000
    return max(8, min(10_000, soft - max(_RESERVED_FILES, soft // 8)))


class _Connection:
    __slots__ = ("busy", "close", "idle_since", "transport")

    def __init__(self, transport: asyncio.Transport, now: float, close: Callable[[], None]) -> None:
        self.transport = transport
        self.busy = 0
        self.idle_since = now
        self.close = close


class _GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol, telling the guard when it opens and closes."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's
        self._transport = transport
        self._inner.connection_made(transport)
        self._guard.track(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.untrack(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ConnectionGuard:
    """Idle and count bounds on the connections of an emulator's servers, all ports together."""

    def __init__(self, *, idle_timeout: float, max_connections: int | None = None) -> None:
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections or default_max_connections()
        self._connections: dict[asyncio.BaseTransport, _Connection] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        #: Connections closed for idling, and for making room at the cap.
        self.closed_idle = 0
        self.evicted = 0

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """The protocol factory for ``loop.create_server``: ``factory``'s protocols, guarded."""

        def guarded() -> asyncio.Protocol:
            return _GuardedProtocol(self, factory())

        return guarded

    @property
    def open_connections(self) -> int:
        """Connections open now."""
        return len(self._connections)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Marks the request's connection busy while its handler runs."""
        transport = request.transport
        if transport is None or transport not in self._connections:
            return await handler(request)
        self.begin(transport)
        try:
            return await handler(request)
        finally:
            self.end(transport)

    def begin(self, transport: asyncio.BaseTransport) -> None:
        """A request on ``transport`` is in progress (the connection is not idle)."""
        connection = self._connections.get(transport)
        if connection is not None:
            connection.busy += 1

    def end(self, transport: asyncio.BaseTransport) -> None:
        """A request on ``transport`` ended; the connection is idle from now if it was the last."""
        connection = self._connections.get(transport)
        if connection is not None:
            connection.busy -= 1
            connection.idle_since = asyncio.get_running_loop().time()

    def close(self) -> None:
        """Stop sweeping (the server closes the connections themselves)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    # --- bookkeeping -----------------------------------------------------------------------

    def track(self, transport: asyncio.Transport, close: Callable[[], None] | None = None) -> bool:
        """Count a new connection; False if it was refused (and closed): at the cap with every
        connection busy. ``close`` ends it when it idled too long or must make room (default:
        ``transport.abort``)."""
        loop = asyncio.get_running_loop()
        if len(self._connections) >= self.max_connections and not self._evict_one():
            log.warning("connection refused: %d connections, all busy", len(self._connections))
            transport.abort()
            return False
        self._connections[transport] = _Connection(transport, loop.time(), close or transport.abort)
        if self._sweeper is None:
            self._schedule(loop)
        return True

    def untrack(self, transport: asyncio.BaseTransport) -> None:
        """The connection closed."""
        self._connections.pop(transport, None)

    def _evict_one(self) -> bool:
        """Close the connection idle the longest; False if every connection is busy."""
        idle = [c for c in self._connections.values() if not c.busy]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since)
        self._drop(oldest)
        self.evicted += 1
        return True

    def _drop(self, connection: _Connection) -> None:
        self._connections.pop(connection.transport, None)
        try:
            connection.close()
        except Exception:  # a protocol's close must not stop the sweep
            log.exception("closing an idle connection failed")
            connection.transport.abort()

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        interval = min(1.0, max(0.05, self.idle_timeout / 4))
        self._sweeper = loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() - self.idle_timeout
        for connection in list(self._connections.values()):
            if connection.transport.is_closing():
                self._connections.pop(connection.transport, None)
            elif not connection.busy and connection.idle_since < deadline:
                self.closed_idle += 1
                self._drop(connection)
        if self._connections:
            self._schedule(loop)
