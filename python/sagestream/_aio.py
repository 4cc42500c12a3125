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
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sagestream import _botocore_path, _core, _jobs, _observe, _params
from sagestream._botocore import Bridge
from sagestream._call import AttemptObserver, Attempts, response_metadata, send_async
from sagestream._caps import ResponseLimits
from sagestream._jobs import AsyncInferenceJob
from sagestream._operations import (
    ASYNC_OPERATION,
    INVOKE_OPERATION,
    STREAM_OPERATION,
    AsyncAnswer,
    InvokeResult,
    StreamInfo,
)
from sagestream._s3 import AsyncTransportS3
from sagestream._stream import AsyncResponseStream
from sagestream.exceptions import service_error_from_response
from sagestream.service import INVOKE, INVOKE_STREAM

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Iterable, Mapping

    import boto3
    from botocore.config import Config

    from sagestream._duplex import AsyncDuplexSession, Data, DuplexCall

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


class _StreamCall(Awaitable[AsyncResponseStream]):
    """What ``invoke_stream`` returns: awaitable, and an async context manager."""

    def __init__(self, start: Callable[[], Awaitable[AsyncResponseStream]]) -> None:
        self._start = start
        self._stream: AsyncResponseStream | None = None

    def __await__(self) -> Any:
        return self._start().__await__()

    async def __aenter__(self) -> AsyncResponseStream:
        self._stream = await self._start()
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            self._stream.close()


class AsyncClient:
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

    def __init__(
        self,
        session: boto3.Session | None = None,
        *,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        config: Config | None = None,
        s3_endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        verify: bool | str | None = None,
        observer: AttemptObserver | None = None,
        duplex_endpoint_url: str | None = None,
        response_limits: ResponseLimits | None = None,
    ) -> None:
        if session is not None and not hasattr(session, "client"):
            raise TypeError(
                f"session must be a boto3.Session, got {type(session).__name__}"
                " (pass the region as region_name=...)"
            )
        self._session: Any = session
        self._observer = observer
        self._limits = response_limits or ResponseLimits()
        self._verify = verify
        self._credentials_given = {
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
        }
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._s3_endpoint_url = s3_endpoint_url
        self._config = config
        self._runtime: Any = None
        self._bridge: Bridge | None = None
        self._s3 = AsyncTransportS3(self._make_s3, lambda: hub_for(asyncio.get_running_loop()), self._limits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._setup_lock = threading.Lock()
        self._closed = False
        #: Where :meth:`invoke_bidirectional` connects (None: the service's endpoint).
        self.duplex_endpoint_url = duplex_endpoint_url

    @classmethod
    def from_boto3(
        cls,
        client: Any,
        *,
        s3_endpoint_url: str | None = None,
        observer: AttemptObserver | None = None,
        response_limits: ResponseLimits | None = None,
    ) -> AsyncClient:
        """An AsyncClient over an existing boto3 / botocore ``sagemaker-runtime`` client (see
        :meth:`sagestream.Client.from_boto3`)."""
        from sagestream._client import _runtime_client, session_of

        runtime = _runtime_client(client)
        self = cls(
            session_of(runtime),
            region_name=runtime.meta.region_name,
            config=runtime.meta.config,
            s3_endpoint_url=s3_endpoint_url,
            verify=getattr(getattr(runtime._endpoint, "http_session", None), "_verify", None),
            observer=observer,
            response_limits=response_limits,
        )
        self._runtime = runtime
        self._bridge = Bridge.of(runtime, observer, self._limits)
        return self

    # set-up ----------------------------------------------------------------------------------

    def _make_runtime(self) -> Bridge:
        with self._setup_lock:
            if self._bridge is None:
                if self._session is None:
                    import boto3

                    self._session = boto3.Session(region_name=self._region_name, **self._credentials_given)
                self._runtime = self._session.client(
                    "sagemaker-runtime",
                    region_name=self._region_name,
                    endpoint_url=self._endpoint_url,
                    config=self._config,
                    verify=self._verify,
                )
                self._bridge = Bridge.of(self._runtime, self._observer, self._limits)
                self._bridge.fast()  # the proof, here in a worker thread rather than on the loop
                if self._bridge.transport is None:
                    raise NotImplementedError(
                        f"sagestream.AsyncClient cannot send for this client: {self._bridge.reason}"
                    )
            return self._bridge

    def _make_s3(self) -> Any:
        """The botocore S3 client of async inference jobs (called in a worker thread)."""
        self._make_runtime()
        return self._session.client(
            "s3",
            region_name=self._region_name or self._runtime.meta.region_name,
            endpoint_url=self._s3_endpoint_url,
            config=self._config,
            verify=self._verify,
        )

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

    async def _watch(self, operation: str, params: dict[str, Any]) -> _observe.CallWatch | None:
        """The watch of a call, while something watches (the client made first: its URL)."""
        await self._ready()
        return _observe.call_watch(operation, params, self._runtime.meta.endpoint_url)

    @property
    def runtime_client(self) -> Any:
        """The underlying botocore ``sagemaker-runtime`` client (made now if it is not yet)."""
        self._make_runtime()
        return self._runtime

    def idle_connections(self) -> int:
        """Connections of the request path kept open for the next calls."""
        bridge = self._bridge
        return int(bridge.transport.idle_connections()) if bridge is not None else 0

    @property
    def fast_path(self) -> bool:
        """Whether calls take the request path (False before the client is set up: after
        ``async with``, the first call, or :attr:`runtime_client`)."""
        return self._bridge is not None and self._bridge.fast()

    @property
    def fast_path_reason(self) -> str | None:
        """Why calls take botocore's own path instead, or None."""
        if self._bridge is None:
            return "the client is not set up yet"
        self._bridge.fast()
        return self._bridge.reason

    async def close(self) -> None:
        """Close the connection pools (open streams keep their connections until they end)."""
        self._closed = True
        if self._bridge is not None:
            self._bridge.transport.close()
        self._s3.close()

    async def __aenter__(self) -> AsyncClient:
        await self._ready()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # the two paths -----------------------------------------------------------------------

    async def _attempts(
        self,
        bridge: Bridge,
        operation: str,
        params: dict[str, Any],
        mode: Any,
        deadline: float | None,
        started: float,
        watch: _observe.CallWatch | None,
    ) -> Attempts:
        if not bridge.credentials_fresh():
            await asyncio.to_thread(bridge.refresh_credentials)
        route = bridge.routes[operation]
        if isinstance(params.get("Body"), bytes) or "Body" not in params:
            return Attempts(bridge, route, params, mode=mode, deadline=deadline, started=started, watch=watch)
        return await asyncio.to_thread(
            Attempts, bridge, route, params, mode=mode, deadline=deadline, started=started, watch=watch
        )

    async def _call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        stream: bool = False,
        deadline: float | None = None,
        watch: _observe.CallWatch | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """One call: its last response and the botocore-style answer of its headers."""
        started = time.monotonic()
        bridge, hub = await self._ready()
        if bridge.fast():
            attempts = await self._attempts(
                bridge, operation, params, "stream" if stream else "whole", deadline, started, watch
            )
            response = await send_async(attempts, hub)
            headers = response.headers
            answer = attempts.route.output_headers(headers)
            answer["ResponseMetadata"] = response_metadata(headers, response.status, attempts.attempt - 1)
            return response, answer
        params = bridge.for_botocore(operation, params)
        reply = await _botocore_path.call(
            self._runtime,
            bridge.transport,
            hub,
            operation,
            params,
            stream=stream,
            deadline=deadline,
            started=started,
            limit=bridge.limits.body,
            error_limit=bridge.limits.error_body,
        )
        if reply.status >= 300:
            raise service_error_from_response(reply.parsed or {}, operation)
        if reply.parsed is not None:
            return reply.response, reply.parsed
        headers = reply.response.headers
        answer = bridge.routes[operation].output_headers(headers)
        answer["ResponseMetadata"] = response_metadata(headers, reply.status, 0)
        return reply.response, answer

    # operations ------------------------------------------------------------------------------

    def invoke_stream(
        self,
        endpoint_name: str,
        body: _params.Body,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        target_variant: str | None = None,
        target_container_hostname: str | None = None,
        inference_id: str | None = None,
        inference_component_name: str | None = None,
        session_id: str | None = None,
        prefix_aware_id: str | None = None,
        deadline: float | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> _StreamCall:
        """Start InvokeEndpointWithResponseStream.

        Use as ``async with client.invoke_stream(...) as stream`` or ``stream = await
        client.invoke_stream(...)``. Parameters are validated before anything is sent
        (:class:`~sagestream.ParamValidationError`). ``deadline`` bounds the whole call in
        seconds (:class:`~sagestream.DeadlineExceededError`), besides Config's read timeout
        between reads.
        """
        params = INVOKE_STREAM.of_call(locals(), extra)
        _params.check_deadline(deadline)

        async def start() -> AsyncResponseStream:
            started = time.monotonic()
            watch = None if _observe.watcher is None else await self._watch(STREAM_OPERATION, params)
            pending = self._call(STREAM_OPERATION, params, stream=True, deadline=deadline, watch=watch)
            response, answer = await (pending if watch is None else _observe.watched(watch, pending))
            _, hub = await self._ready()
            parts = response.aparts(hub) if watch is None else watch.parts(response.aparts(hub), True)
            return AsyncResponseStream(parts, StreamInfo.of(answer), started=started)

        return _StreamCall(start)

    async def invoke(
        self,
        endpoint_name: str,
        body: _params.Body,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        target_model: str | None = None,
        target_variant: str | None = None,
        target_container_hostname: str | None = None,
        inference_id: str | None = None,
        enable_explanations: str | None = None,
        inference_component_name: str | None = None,
        session_id: str | None = None,
        prefix_aware_id: str | None = None,
        deadline: float | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> InvokeResult:
        """InvokeEndpoint: the whole answer at once (``session_id="NEW_SESSION"`` opens a session)."""
        params = INVOKE.of_call(locals(), extra)
        _params.check_deadline(deadline)
        watch = None if _observe.watcher is None else await self._watch(INVOKE_OPERATION, params)
        pending = self._call(INVOKE_OPERATION, params, deadline=deadline, watch=watch)
        response, answer = await (pending if watch is None else _observe.watched(watch, pending))
        body_bytes = answer.pop("Body", None)
        if body_bytes is None:
            body_bytes = response.body or b""
        if watch is not None:
            watch.done(bytes(body_bytes))
        return InvokeResult.of(answer, bytes(body_bytes))

    async def _invoke_async_call(self, params: dict[str, Any]) -> AsyncAnswer:
        """InvokeEndpointAsync itself (the job handles' submit step)."""
        watch = None if _observe.watcher is None else await self._watch(ASYNC_OPERATION, params)
        pending = self._call(ASYNC_OPERATION, params, watch=watch)
        response, answer = await (pending if watch is None else _observe.watched(watch, pending))
        if watch is not None:
            watch.done()
        if "InferenceId" in answer:
            return AsyncAnswer.of(answer)
        return AsyncAnswer.parse(answer, response.body or b"")

    async def invoke_async(
        self,
        endpoint_name: str,
        *,
        input_location: str | None = None,
        body: bytes | None = None,
        input: bytes | str | os.PathLike[str] | None = None,
        input_prefix: str | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        inference_id: str | None = None,
        request_ttl_seconds: int | None = None,
        invocation_timeout_seconds: int | None = None,
        s3_output_path_extension: str | None = None,
        filename: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> AsyncInferenceJob:
        """InvokeEndpointAsync; returns a handle whose ``await handle.wait()`` gives the output.

        Give one input: ``input_location`` (an ``s3://`` URI), ``body`` (at most 128,000 bytes,
        sent inline), or ``input`` (bytes, or a file path) with an ``input_prefix`` to upload it
        under. Every parameter is validated before any upload.
        """
        return await _jobs.submit_async(
            self._s3, self._invoke_async_call, locals(), input=input, input_prefix=input_prefix, extra=extra
        )

    def invoke_bidirectional(
        self,
        endpoint_name: str,
        *,
        target_variant: str | None = None,
        model_invocation_path: str | None = None,
        model_query_string: str | None = None,
        input: Iterable[Data] | AsyncIterable[Data] | None = None,
        deadline: float | None = None,
        endpoint_url: str | None = None,
    ) -> DuplexCall:
        """Open a full-duplex session (InvokeEndpointWithBidirectionalStream, HTTP/2).

        ``async with client.invoke_bidirectional(...) as session``: ``await session.send(...)``
        and ``async for part in session`` at the same time; ``input`` (an iterable or async
        iterable) is sent by a task instead. See :meth:`sagestream.Client.invoke_bidirectional`
        for ``endpoint_url``.
        """
        from sagestream._duplex import DuplexCall, open_session_async

        _params.duplex_params(
            endpoint_name,
            target_variant=target_variant,
            model_invocation_path=model_invocation_path,
            model_query_string=model_query_string,
        )

        async def start() -> AsyncDuplexSession:
            bridge, hub = await self._ready()
            return await open_session_async(
                bridge,
                hub,
                endpoint_name,
                target_variant=target_variant,
                model_invocation_path=model_invocation_path,
                model_query_string=model_query_string,
                input=input,
                deadline=deadline,
                endpoint_url=endpoint_url or self.duplex_endpoint_url,
            )

        return DuplexCall(start)
