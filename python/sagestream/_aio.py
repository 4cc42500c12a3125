"""The asyncio client: the sync client's operations, awaited.

Requests take the same request path as :class:`sagestream.Client` (:mod:`sagestream._call`),
driven by awaiting the Rust transport: its futures complete through one hub per event loop
(:class:`sagestream._core.Hub`), so no thread waits per request or per stream, the event loop
never blocks, and the parts of many streams arriving together cost one wake-up. A runtime
client whose botocore machinery that path does not reproduce, and the S3 calls of async
inference jobs, take botocore's own path over the same transport (:mod:`._botocore_path`).

Nothing blocks the event loop: the boto3 session and the botocore clients are created in a
worker thread, credentials are refreshed in one when they near their expiry, and adaptive
mode's rate limiter waits in one.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from sagestream import _botocore_path, _core, _jobs, _observe
from sagestream._base import BaseClient
from sagestream._botocore import Bridge
from sagestream._call import Call, answer_of, send_async
from sagestream._jobs import AsyncInferenceJob
from sagestream._operations import (
    AsyncAnswer,
    InvokeResult,
)
from sagestream._s3 import AsyncTransportS3
from sagestream._stream import AsyncResponseStream, Opened
from sagestream.exceptions import service_error_from_response
from sagestream.service import INVOKE, INVOKE_ASYNC, INVOKE_DUPLEX, INVOKE_STREAM

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Iterable  # noqa: F401 (named in AsyncClient's base)

    from sagestream._duplex import AsyncDuplexSession, Data, DuplexCall  # noqa: F401 (likewise)

__all__ = ["AsyncClient", "AsyncResponseStream", "hub_for"]

#: The least time between two wake-ups of a busy event loop by the transport: parts of many
#: streams arriving within it are delivered together.
COALESCE_SECONDS = 0.001
#: How long, and for how many parts, a task reading a stream whose parts are already there
#: runs before it lets the event loop run everything else that is ready (once): no stream
#: read back to back holds the loop longer. A task that waits for a part suspends anyway.
SLICE_SECONDS: float | None = 0.001
SLICE_PARTS: int | None = 256

#: The environment variable that forces how hubs wake their loops (read once, at the first hub):
#: ``eventfd`` (Linux), ``pipe`` (Unix), ``socket`` (a loopback socket pair, the Windows
#: default), ``call_soon`` (``loop.call_soon_threadsafe``, for loops that watch no descriptors).
#: Unset or empty: the platform's own choice. For testing the portable paths on one machine.
WAKEUP_ENV = "SAGESTREAM_HUB_WAKEUP"
WAKEUPS = ("eventfd", "pipe", "socket", "call_soon")

_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _core.Hub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


@functools.cache
def forced_wakeup() -> str | None:
    """The hub wake-up ``SAGESTREAM_HUB_WAKEUP`` forces, read once (None: not forced)."""
    value = os.environ.get(WAKEUP_ENV, "").strip() or None
    if value is not None and value not in WAKEUPS:
        raise ValueError(f"{WAKEUP_ENV}={value!r}: expected one of {', '.join(WAKEUPS)}")
    return value


def hub_for(loop: asyncio.AbstractEventLoop) -> _core.Hub:
    """The hub of ``loop``, created and registered with it on first use."""
    hub = _hubs.get(loop)
    if hub is None:
        with _hubs_lock:
            hub = _hubs.get(loop)
            if hub is None:
                hub = _new_hub(loop)
                _hubs[loop] = hub
    return hub


def _hub_settings() -> dict[str, Any]:
    """The settings of a new hub, as this module's constants say now (tests change them)."""
    return {"coalesce": COALESCE_SECONDS, "slice_seconds": SLICE_SECONDS, "slice_items": SLICE_PARTS}


def _new_hub(loop: asyncio.AbstractEventLoop) -> _core.Hub:
    hub = _core.Hub(loop, wakeup=forced_wakeup(), **_hub_settings())
    if hub.wakeup == "call_soon":
        return hub
    try:
        loop.add_reader(hub.fileno(), hub.dispatch)
    except NotImplementedError:
        # A loop that watches no descriptors: Windows' ProactorEventLoop, its default.
        return _core.Hub(loop, wakeup="call_soon", **_hub_settings())
    return hub


def _coroutine_function(function: Any) -> Any:
    """AsyncClient's own method for an operation declared in :class:`BaseClient` whose
    implementation here is a coroutine: an ``async def`` awaiting it, so that
    ``inspect.iscoroutinefunction`` (on every Python) and ``asyncio.iscoroutinefunction`` say
    what the method is, as frameworks that pick how to call a callable ask. ``inspect.signature``
    follows ``__wrapped__`` to the declared signature. One coroutine frame a call."""

    @functools.wraps(function)
    async def operation(self: Any, /, *args: Any, **kwargs: Any) -> Any:
        return await function(self, *args, **kwargs)

    operation.__module__ = __name__
    operation.__qualname__ = f"AsyncClient.{function.__name__}"
    return operation


class _StreamCall(Opened[AsyncResponseStream]):
    """What ``invoke_stream`` returns: awaitable, and an async context manager."""


class AsyncClient(
    BaseClient[
        Coroutine[Any, Any, InvokeResult],
        _StreamCall,
        Coroutine[Any, Any, AsyncInferenceJob],
        "DuplexCall",
        "Iterable[Data] | AsyncIterable[Data]",
    ]
):
    """The asyncio twin of :class:`sagestream.Client`.

    ``session`` (a ``boto3.Session``), ``region_name``, ``endpoint_url`` and ``config`` (a
    ``botocore.config.Config``: timeouts, retries, max_pool_connections, proxies) mean what they
    mean for boto3. ``s3_endpoint_url`` is the S3 endpoint used by :meth:`invoke_async`.
    ``verify`` is botocore's: ``False`` skips TLS certificate checks, a path names a CA bundle.
    Without a session, ``aws_access_key_id`` & co. build one. ``observer`` is told of each
    attempt of each call (:class:`sagestream.AttemptObserver`); ``response_limits`` bounds what
    an answer may bring into memory (:class:`sagestream.ResponseLimits`).

    Use it as ``async with AsyncClient() as client`` or call :meth:`close` when done. The
    botocore clients and credentials are set up in a worker thread on first use.
    """

    if not TYPE_CHECKING:  # typed by the base: a coroutine of the result
        invoke = _coroutine_function(BaseClient.invoke)
        invoke_async = _coroutine_function(BaseClient.invoke_async)

    def _open(self) -> None:
        self._s3 = AsyncTransportS3(self._make_s3, lambda: hub_for(asyncio.get_running_loop()), self._limits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._setup_lock = threading.Lock()
        self._closed = False
        if self._runtime is not None:  # from_boto3's
            self._new_bridge()

    # set-up ----------------------------------------------------------------------------------

    def _make_runtime(self) -> Bridge:
        with self._setup_lock:
            bridge = self._bridge
            if bridge is None:
                bridge = self._new_bridge()
                bridge.fast()  # the proof, here in a worker thread rather than on the loop
                if bridge.transport is None:
                    raise NotImplementedError(
                        f"sagestream.AsyncClient cannot send for this client: {bridge.reason}"
                    )
            return bridge

    def _make_s3(self) -> Any:
        """The botocore S3 client of async inference jobs (called in a worker thread)."""
        self._make_runtime()
        return self._new_s3()

    async def _ready(self) -> tuple[Bridge, _core.Hub]:
        if self._closed:
            raise RuntimeError("this AsyncClient is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this AsyncClient belongs to another event loop; create one client per event loop"
            )
        bridge = self._bridge
        if bridge is None:
            bridge = await asyncio.to_thread(self._make_runtime)
        elif bridge.templates is None and bridge.reason is None:
            await asyncio.to_thread(bridge.fast)  # the proof (from_boto3's client), off the loop
        return bridge, hub_for(loop)

    @property
    def runtime_client(self) -> Any:
        """The underlying botocore ``sagemaker-runtime`` client (made now if it is not yet)."""
        self._make_runtime()
        return self._runtime

    @property
    def fast_path(self) -> bool:
        """Whether calls take the request path (False before the client is set up: after
        ``async with``, the first call, or :attr:`runtime_client`)."""
        return self._bridge is not None and self._bridge.fast()

    async def close(self) -> None:
        """Close the connection pools (open streams keep their connections until they end)."""
        self._closed = True
        if self._bridge is not None:
            self._bridge.transport.close()
        self._s3.close()

    async def __aenter__(self) -> AsyncClient:
        await self._ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # sending -----------------------------------------------------------------------------

    async def _send(
        self, operation: str, params: dict[str, Any], *, stream: bool = False, deadline: float | None = None
    ) -> tuple[Call, Any, dict[str, Any]]:
        """One call, in this task: its last response and the botocore-style answer of its headers
        (with the body, when botocore's parser read it)."""
        started = time.monotonic()
        bridge, hub = await self._ready()
        watch = None if _observe.watcher is None else self._watch(operation, params)
        call = Call(bridge, operation, params, stream=stream, deadline=deadline, started=started, watch=watch)
        if watch is None and bridge.fast():
            return call, *await send_async(call, hub)
        with _observe.Failures(watch):
            return call, *await self._sent(call, hub)

    async def _sent(self, call: Call, hub: _core.Hub) -> tuple[Any, dict[str, Any]]:
        """The call, watched or on botocore's path."""
        if call.bridge.fast():
            response, answer = await send_async(call, hub)
            return response, answer
        response, answer = await self._via_botocore(call, hub)
        if call.watch is not None:
            _observe.answered(call.watch, response.status, response.headers, answer)
        return response, answer

    async def _via_botocore(self, call: Call, hub: _core.Hub) -> tuple[Any, dict[str, Any]]:
        """botocore's own path, over the transport (:mod:`sagestream._botocore_path`)."""
        bridge = call.bridge
        operation = call.operation
        reply = await _botocore_path.call(
            self._runtime,
            bridge.transport,
            hub,
            operation,
            bridge.for_botocore(operation, call.params),
            stream=call.mode == "stream",
            deadline=call.deadline,
            started=call.started,
            limit=bridge.limits.body,
            error_limit=bridge.limits.error_body,
        )
        if reply.status >= 300:
            raise service_error_from_response(reply.parsed or {}, operation)
        if reply.parsed is not None:
            return reply.response, reply.parsed
        return reply.response, answer_of(bridge.routes[operation], reply.response.headers, reply.status, 0)

    # operations ------------------------------------------------------------------------------

    def _invoke_stream(self, arguments: dict[str, Any]) -> _StreamCall:
        params = self._params(INVOKE_STREAM, arguments, arguments["extra"])
        deadline = arguments["deadline"]

        async def start() -> AsyncResponseStream:
            call, response, answer = await self._send(
                INVOKE_STREAM.name, params, stream=True, deadline=deadline
            )
            _, hub = await self._ready()
            parts = self._parts(call, response.aparts(hub), True)
            return AsyncResponseStream(parts, answer, started=call.started)

        return _StreamCall(start)

    async def _invoke(self, arguments: dict[str, Any]) -> InvokeResult:
        params = self._params(INVOKE, arguments, arguments["extra"])
        call, response, answer = await self._send(INVOKE.name, params, deadline=arguments["deadline"])
        return self._invoke_result(call, response, answer)

    async def _invoke_async_call(self, params: dict[str, Any]) -> AsyncAnswer:
        """InvokeEndpointAsync itself (the job handles' submit step)."""
        call, response, answer = await self._send(INVOKE_ASYNC.name, params)
        return self._async_answer(call, response, answer)

    def _invoke_async(self, arguments: dict[str, Any]) -> Coroutine[Any, Any, AsyncInferenceJob]:
        input, prefix, extra = arguments["input"], arguments["input_prefix"], arguments["extra"]
        return _jobs.submit_async(
            self._s3, self._invoke_async_call, arguments, input=input, input_prefix=prefix, extra=extra
        )

    def _invoke_bidirectional(self, arguments: dict[str, Any]) -> DuplexCall:
        from sagestream._duplex import DuplexCall, Opening

        INVOKE_DUPLEX.of_call(arguments)  # the parameters checked before anything is awaited
        endpoint_url = arguments["endpoint_url"] or self.duplex_endpoint_url

        async def start() -> AsyncDuplexSession:
            bridge, hub = await self._ready()
            return await Opening(bridge, arguments, endpoint_url).open_async(hub, arguments["input"])

        return DuplexCall(start)
