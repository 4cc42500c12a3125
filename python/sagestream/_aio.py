"""The asyncio client: botocore builds, signs and judges the requests; aiohttp carries the bytes.

Why this split: aiobotocore re-implements botocore's client on top of aiohttp and therefore pins
botocore to a narrow range; any botocore upgrade of the user's breaks it. Here the user's own
botocore client for ``sagemaker-runtime`` (and ``s3`` for async invocations) does what it already
does well, through its own machinery:

* endpoint resolution (the endpoint ruleset), request serialization, the ``before-call`` and
  ``request-created`` events, and so SigV4 signing with the client's credentials;
* error parsing with the operation's response parser, modeled error fields included;
* the retry policy of the client's ``Config`` (legacy, standard or adaptive mode, max_attempts,
  the retry quota), by emitting the same ``before-send`` and ``needs-retry`` events botocore's
  endpoint emits and sleeping the delay it answers with ``asyncio.sleep`` (adaptive mode's rate
  limiter waits in a worker thread).

Only the HTTP transport is replaced: one ``aiohttp.ClientSession`` per :class:`AsyncClient`
(connection pooling, Config's connect and read timeouts, proxies, TLS verification), and the
response body goes straight from aiohttp's reads into the Rust frame decoder.

Nothing blocks the event loop: the boto3 session and botocore clients are created in a worker
thread (reading profiles, resolving the credential chain), and a request is built and signed in
a worker thread whenever the credentials may need a refresh (IMDS, SSO, assume-role); otherwise
the cached frozen credentials sign inline in microseconds.
"""

from __future__ import annotations

import asyncio
import collections
import os
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, cast

import aiohttp
import botocore.exceptions as bexc
from botocore.awsrequest import AWSResponse
from botocore.compress import maybe_compress_request
from botocore.httpchecksum import apply_request_checksum, resolve_checksum_context
from yarl import URL

from sagestream import _params
from sagestream._client import InvokeResult, parse_new_session
from sagestream._connwatch import watch_connection
from sagestream._core import PayloadDecoder
from sagestream._stream import StreamMetrics
from sagestream._transport import botocore_errors
from sagestream.exceptions import (
    ConnectionLostError,
    DeadlineExceededError,
    ReadTimeoutError,
    SageStreamError,
    ServiceError,
    service_error_from_response,
)

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

    from sagestream._async_inference import AsyncInvocationAsync
    from sagestream.reassembly import ServerSentEvent

__all__ = ["AsyncClient", "AsyncResponseStream"]

STREAM_OPERATION = "InvokeEndpointWithResponseStream"
INVOKE_OPERATION = "InvokeEndpoint"
ASYNC_OPERATION = "InvokeEndpointAsync"


def _record(metrics: StreamMetrics, now: float, parts: list[bytes]) -> None:
    """``StreamMetrics.update`` for all the parts of one read at once (no gap inside a read)."""
    last = metrics.last_part_at
    if last is None:
        metrics.time_to_first_part = now - metrics.started
    elif now - last > metrics.max_gap:
        metrics.max_gap = now - last
    metrics.last_part_at = now
    metrics.parts += len(parts)
    metrics.bytes += sum(map(len, parts))


# --- the HTTP side ---------------------------------------------------------------------------


class _BodyStub:
    """The ``raw`` of a botocore ``AWSResponse`` built from bytes already read."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


class _Reply:
    """One HTTP answer: status, headers, the parsed dict, and the open aiohttp response."""

    __slots__ = ("body", "headers", "parsed", "response", "status")

    def __init__(
        self,
        status: int,
        headers: Any,
        parsed: dict[str, Any] | None,
        response: aiohttp.ClientResponse,
        body: bytes | None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.parsed = parsed
        self.response = response
        self.body = body


def _pre_response_error(exc: BaseException, url: str) -> Exception:
    """Map an aiohttp failure before any response byte to the botocore exception botocore raises.

    These are the exceptions botocore's retry rules know (connection errors are retryable), and
    what a boto3 user already catches from the sync client for the same failure.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return cast(Exception, bexc.ConnectTimeoutError(endpoint_url=url, error=exc))
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return cast(Exception, bexc.ReadTimeoutError(endpoint_url=url, error=exc))
    if isinstance(exc, aiohttp.ClientSSLError):
        return cast(Exception, bexc.SSLError(endpoint_url=url, error=exc))
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return cast(Exception, bexc.ProxyConnectionError(proxy_url=url, error=exc))
    if isinstance(exc, aiohttp.ClientConnectorError):
        return cast(Exception, bexc.EndpointConnectionError(endpoint_url=url, error=exc))
    return cast(Exception, bexc.ConnectionClosedError(endpoint_url=url, error=exc))


def _mid_stream_error(exc: BaseException, what: str) -> Exception:
    """Map an aiohttp failure while reading a response body to a sagestream TransportError."""
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return ReadTimeoutError(f"no bytes arrived within the read timeout while reading {what}")
    return ConnectionLostError(f"the connection was lost while reading {what}: {exc}")


def _ssl_for(verify: Any) -> ssl.SSLContext | bool:
    """The TLS setting of botocore's ``verify`` (loading CA files blocks: call off the loop)."""
    if verify is False:
        return False
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return ssl.create_default_context()


def _needs_refresh(credentials: Any) -> bool:
    """Whether signing might refresh the credentials (a blocking call: IMDS, STS, SSO...)."""
    if credentials is None:
        return True  # signing raises NoCredentialsError; harmless in a thread
    refresh_needed = getattr(credentials, "refresh_needed", None)
    if refresh_needed is None:
        return False
    try:
        return bool(refresh_needed())
    except Exception:
        return True


class _Transport:
    """Send botocore-built requests over one aiohttp session; shared by every operation."""

    def __init__(self, config: Any, tls: ssl.SSLContext | bool) -> None:
        limit = 0  # like botocore's non-blocking urllib3 pool: extra connections when busy
        user_options = getattr(config, "_user_provided_options", {})
        if "max_pool_connections" in user_options:
            limit = int(config.max_pool_connections)
        connector = aiohttp.TCPConnector(limit=limit, ssl=tls)
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None,
            sock_connect=float(config.connect_timeout) if config.connect_timeout else None,
            sock_read=float(config.read_timeout) if config.read_timeout else None,
        )
        self.proxies: dict[str, str] = dict(getattr(config, "proxies", None) or {})
        self.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type", "Accept"),
        )

    async def close(self) -> None:
        await self.session.close()

    def _proxy_for(self, url: str) -> str | None:
        if not self.proxies:
            return None
        scheme = url.split(":", 1)[0]
        return self.proxies.get(scheme)

    async def call(
        self,
        client: Any,
        operation_name: str,
        api_params: dict[str, Any],
        *,
        stream: bool = False,
    ) -> _Reply:
        """Run one operation through the client's own machinery; retry before the first byte.

        Returns the reply of a successful call (``parsed`` is None when ``stream``, with the
        response left open), or of an error answer when ``stream`` (parsed, body read). Raises
        the botocore exception of a transport failure once the retries are spent.
        """
        operation_model, request_dict = self._build(client, operation_name, api_params)
        endpoint = client._endpoint
        emitter = client.meta.events
        service_id = client._service_model.service_id.hyphenize()
        retry_event = f"needs-retry.{service_id}.{operation_name}"
        send_event = f"before-send.{service_id}.{operation_name}"
        # adaptive mode's client-side rate limiter is a before-send handler that sleeps until
        # its token bucket allows the request: run the handlers off the loop then.
        blocking_send_hooks = (client.meta.config.retries or {}).get("mode") == "adaptive"
        context = request_dict["context"]
        attempts = 1
        while True:
            endpoint._update_retries_context(context, attempts)
            if _needs_refresh(client._request_signer._credentials):
                prepared = await asyncio.to_thread(endpoint.create_request, request_dict, operation_model)
            else:
                prepared = endpoint.create_request(request_dict, operation_model)
            if blocking_send_hooks:
                answers = await asyncio.to_thread(emitter.emit, send_event, request=prepared)
            else:
                answers = emitter.emit(send_event, request=prepared)
            if _first_answer(answers) is not None:
                raise NotImplementedError(
                    f"a {send_event} handler answered the request in place of the network; "
                    "sagestream.AsyncClient sends every request itself (use the sync Client)"
                )
            reply: _Reply | None = None
            caught: Exception | None = None
            try:
                reply = await self._send(client, prepared, operation_model, context, stream=stream)
            except asyncio.CancelledError:
                raise
            except aiohttp.ClientError as exc:
                caught = _pre_response_error(exc, prepared.url)
            except (asyncio.TimeoutError, OSError) as exc:
                caught = _pre_response_error(exc, prepared.url)
            response_arg = None
            if reply is not None:
                http = AWSResponse(prepared.url, reply.status, reply.headers, _BodyStub(reply.body or b""))
                response_arg = (http, reply.parsed if reply.parsed is not None else {})
            delay = _first_answer(
                emitter.emit(
                    retry_event,
                    response=response_arg,
                    endpoint=endpoint,
                    operation=operation_model,
                    attempts=attempts,
                    caught_exception=caught,
                    request_dict=request_dict,
                )
            )
            if delay is None or delay is False:
                break
            if reply is not None:
                reply.response.close()
            await asyncio.sleep(float(delay))
            attempts += 1
        if caught is not None:
            raise caught
        assert reply is not None
        if reply.parsed is not None and "ResponseMetadata" in reply.parsed:
            reply.parsed["ResponseMetadata"]["RetryAttempts"] = attempts - 1
        return reply

    def _build(
        self, client: Any, operation_name: str, api_params: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """botocore's ``_make_api_call`` up to the point where it would send (no I/O)."""
        operation_model = client._service_model.operation_model(operation_name)
        config = client.meta.config
        request_context = {
            "client_region": client.meta.region_name,
            "client_config": config,
            "has_streaming_input": operation_model.has_streaming_input,
            "auth_type": operation_model.resolved_auth_type,
            "unsigned_payload": operation_model.unsigned_payload,
            "auth_options": client._service_model.metadata.get("auth"),
        }
        api_params = client._emit_api_params(
            api_params=api_params, operation_model=operation_model, context=request_context
        )
        endpoint_url, additional_headers, properties = client._resolve_endpoint_ruleset(
            operation_model, api_params, request_context
        )
        if properties:
            request_context["endpoint_properties"] = properties
        request_dict = client._convert_to_request_dict(
            api_params=api_params,
            operation_model=operation_model,
            endpoint_url=endpoint_url,
            context=request_context,
            headers=additional_headers,
        )
        resolve_checksum_context(request_dict, operation_model, api_params)
        service_id = client._service_model.service_id.hyphenize()
        _, answer = client.meta.events.emit_until_response(
            f"before-call.{service_id}.{operation_name}",
            model=operation_model,
            params=request_dict,
            request_signer=client._request_signer,
            context=request_context,
        )
        if answer is not None:  # botocore's Stubber, for one, answers here
            raise NotImplementedError(
                f"a before-call.{service_id}.{operation_name} handler answered the call in place "
                "of the service; sagestream.AsyncClient sends every request itself"
            )
        maybe_compress_request(config, request_dict, operation_model)
        apply_request_checksum(request_dict)
        return operation_model, request_dict

    async def _send(
        self, client: Any, prepared: Any, operation_model: Any, context: dict[str, Any], *, stream: bool
    ) -> _Reply:
        headers = {
            k: (v.decode("utf-8") if isinstance(v, bytes) else str(v)) for k, v in prepared.headers.items()
        }
        body = prepared.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, bytes | bytearray):
            body = await asyncio.to_thread(_read_all, body)
        response = await self.session.request(
            prepared.method,
            URL(prepared.url, encoded=True),
            headers=headers,
            data=body,
            proxy=self._proxy_for(prepared.url),
            allow_redirects=False,
        )
        watch_connection(response)
        status = response.status
        if stream and status < 300:
            return _Reply(status, response.headers, None, response, None)
        try:
            data = await response.read()
        except BaseException:
            response.close()
            raise
        response.release()
        response_dict = {
            "headers": response.headers,
            "status_code": status,
            "body": data,
            "context": context,
        }
        parser = client._response_parser
        parsed = parser.parse(response_dict, operation_model.output_shape)
        if status >= 300:
            _add_modeled_error_fields(client, parser, response_dict, parsed)
        elif operation_model.has_streaming_output:
            # A streaming blob payload (InvokeEndpoint's Body): the bytes as read.
            parsed[operation_model.output_shape.serialization["payload"]] = data
        return _Reply(status, response.headers, parsed, response, data)


def _read_all(fileobj: IO[bytes]) -> bytes:
    return fileobj.read()


def _first_answer(responses: list[tuple[Any, Any]]) -> Any:
    for _, answer in responses:
        if answer is not None:
            return answer
    return None


def _add_modeled_error_fields(client: Any, parser: Any, response_dict: dict[str, Any], parsed: Any) -> None:
    # botocore's Endpoint._add_modeled_error_fields: ModelError's OriginalStatusCode & co.
    code = parsed.get("Error", {}).get("Code")
    if code is None:
        return
    shape = client._service_model.shape_for_error_code(code)
    if shape is not None:
        parsed.update(parser.parse(response_dict, shape))


# --- results ---------------------------------------------------------------------------------


# --- the stream ------------------------------------------------------------------------------


class AsyncResponseStream:
    """The payload parts of one InvokeEndpointWithResponseStream answer, as ``bytes``.

    ``async with client.invoke_stream(...) as s: async for part in s``. Each part is yielded as
    soon as its frame is complete. An error frame raises ``ModelStreamError`` /
    ``InternalStreamFailure`` after every earlier part; a lost connection or a read timeout raises
    a :class:`~sagestream.TransportError`; a stream cut inside a frame raises
    ``TruncatedStreamError``. Cancelling the consuming task closes the connection at once.
    """

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        parsed_headers: dict[str, Any],
        *,
        started: float | None = None,
        deadline: float | None = None,
    ) -> None:
        self._response: aiohttp.ClientResponse | None = response
        self._content = response.content
        self._decoder = PayloadDecoder()
        self._pending: collections.deque[bytes] = collections.deque()
        #: The error to raise once ``_pending`` is delivered.
        self._error: BaseException | None = None
        self._done = False
        self._deadline_handle: asyncio.TimerHandle | None = None
        self._deadline_hit = False
        self.content_type: str | None = parsed_headers.get("ContentType")
        self.invoked_production_variant: str | None = parsed_headers.get("InvokedProductionVariant")
        self.custom_attributes: str | None = parsed_headers.get("CustomAttributes")
        #: botocore-style ``ResponseMetadata`` (request id, status, headers, retries).
        self.response_metadata: dict[str, Any] = parsed_headers.get("ResponseMetadata", {})
        #: The HTTP response headers (lower-case names).
        self.headers: dict[str, str] = dict(self.response_metadata.get("HTTPHeaders") or {})
        #: Time to first part, parts, bytes, duration, largest gap (``time.monotonic()`` seconds).
        self.metrics = StreamMetrics(started=time.monotonic() if started is None else started)
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._deadline_handle = loop.call_later(max(0.0, deadline), self._on_deadline, deadline)

    @property
    def request_id(self) -> str | None:
        """The service's request id."""
        value = self.response_metadata.get("RequestId")
        return str(value) if value is not None else None

    def _on_deadline(self, seconds: float) -> None:
        self._deadline_handle = None
        if self._done:
            return
        self._deadline_hit = True
        self._content.set_exception(DeadlineExceededError("the stream did not finish within its deadline"))

    def __aiter__(self) -> AsyncResponseStream:
        return self

    async def __anext__(self) -> bytes:
        pending = self._pending
        if pending:
            return pending.popleft()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        decoder = self._decoder
        while not self._done:
            try:
                # An error frame (or bad bytes) that came in the same read as earlier parts is
                # raised now that those parts were delivered, without waiting for another read.
                decoder.feed(b"")
                data = await self._content.readany()
            except asyncio.CancelledError:
                self._end(clean=False)
                raise
            except DeadlineExceededError as exc:
                return self._fail(exc)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                return self._fail(_mid_stream_error(exc, "the response stream"))
            except BaseException:
                self._end(clean=False)
                raise
            if not data:
                try:
                    decoder.close()  # TruncatedStreamError, or an error held back
                except BaseException:
                    self._end(clean=False)
                    raise
                self._end(clean=True)
                raise StopAsyncIteration
            try:
                parts = decoder.feed(data)
            except BaseException:
                self._end(clean=False)
                raise
            if parts:
                _record(self.metrics, time.monotonic(), parts)
                if len(parts) > 1:
                    pending.extend(parts[1:])
                return parts[0]
        raise StopAsyncIteration

    def _fail(self, error: BaseException) -> bytes:
        """End the stream with ``error``, after the parts of the bytes aiohttp had received.

        Once its payload has an exception, aiohttp raises it before handing out what it still
        buffers (a malformed chunk after good ones in one read, say), so those bytes are taken
        from its buffer and decoded here. An error frame or bad bytes among them came first on
        the wire and is the one raised.
        """
        parts: list[bytes] = []
        buffer = getattr(self._content, "_buffer", None)
        if buffer:
            data = b"".join(buffer)[getattr(self._content, "_buffer_offset", 0) :]
            buffer.clear()
            try:
                parts = self._decoder.feed(data)
                self._decoder.feed(b"")  # raises an error held back after those parts
            except SageStreamError as held:
                error = held
        self._end(clean=False)
        if not parts:
            raise error from None
        _record(self.metrics, time.monotonic(), parts)
        self._pending.extend(parts[1:])
        self._error = error
        return parts[0]

    def _end(self, *, clean: bool) -> None:
        """Stop: a cleanly finished body gives its connection back to the pool, else close it."""
        self._done = True
        self.metrics.finish(time.monotonic())
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()
            self._deadline_handle = None
        response, self._response = self._response, None
        if response is not None:
            if clean:
                response.release()
            else:
                response.close()

    def close(self) -> None:
        """Close the connection now (parts not yet read are dropped); idempotent."""
        self._pending.clear()
        self._end(clean=False)

    async def aclose(self) -> None:
        """Same as :meth:`close` (for ``contextlib.aclosing``)."""
        self.close()

    async def __aenter__(self) -> AsyncResponseStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once the stream ended or was closed."""
        return self._done

    def lines(self, **kwargs: Any) -> AsyncIterator[str]:
        """Text lines reassembled across parts (UTF-8 safe); see ``sagestream.reassembly``."""
        from sagestream.reassembly import aiter_lines

        return aiter_lines(self, **kwargs)

    def sse(self, **kwargs: Any) -> AsyncIterator[ServerSentEvent]:
        """Server-sent events reassembled across parts, per the WHATWG rules."""
        from sagestream.reassembly import aiter_sse

        return aiter_sse(self, **kwargs)

    def json_lines(self, **kwargs: Any) -> AsyncIterator[Any]:
        """One decoded JSON value per line."""
        from sagestream.reassembly import aiter_json_lines

        return aiter_json_lines(self, **kwargs)


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


# --- the client ------------------------------------------------------------------------------


class AsyncClient:
    """The asyncio twin of :class:`sagestream.Client`.

    ``session`` (a ``boto3.Session``), ``region_name``, ``endpoint_url`` and ``config`` (a
    ``botocore.config.Config``: timeouts, retries, max_pool_connections, proxies) mean what they
    mean for boto3. ``s3_endpoint_url`` is the S3 endpoint used by :meth:`invoke_async`.
    ``verify`` is botocore's: ``False`` skips TLS certificate checks, a path names a CA bundle.
    Without a session, ``aws_access_key_id`` & co. build one.

    Use it as ``async with AsyncClient() as client`` or call :meth:`close` when done. The
    botocore clients and credentials are set up in a worker thread on first use.
    """

    def __init__(
        self,
        session: boto3.Session | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        config: Config | None = None,
        *,
        s3_endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        verify: bool | str | None = None,
    ) -> None:
        self._session: Any = session
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
        self._s3: Any = None
        self._transport: _Transport | None = None
        self._tls: ssl.SSLContext | bool = True
        self._setup_lock = threading.Lock()
        self._closed = False

    # set-up ----------------------------------------------------------------------------------

    def _make_runtime(self) -> Any:
        with self._setup_lock:
            if self._runtime is None:
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
                if self._config is None:
                    self._config = self._runtime.meta.config
                self._tls = _ssl_for(getattr(self._runtime._endpoint.http_session, "_verify", True))
            return self._runtime

    def _make_s3(self) -> Any:
        self._make_runtime()
        with self._setup_lock:
            if self._s3 is None:
                self._s3 = self._session.client(
                    "s3",
                    region_name=self._region_name or self._runtime.meta.region_name,
                    endpoint_url=self._s3_endpoint_url,
                    config=self._config,
                    verify=self._verify,
                )
            return self._s3

    async def _ready(self) -> tuple[Any, _Transport]:
        if self._closed:
            raise RuntimeError("this AsyncClient is closed")
        runtime = self._runtime
        if runtime is None:
            runtime = await asyncio.to_thread(self._make_runtime)
        transport = self._transport
        if transport is not None and transport.loop is not asyncio.get_running_loop():
            raise RuntimeError(
                "this AsyncClient belongs to another event loop; create one client per event loop"
            )
        if transport is None:
            transport = self._transport = _Transport(runtime.meta.config, self._tls)
        return runtime, transport

    async def _s3_ready(self) -> tuple[Any, _Transport]:
        _, transport = await self._ready()
        s3 = self._s3
        if s3 is None:
            s3 = await asyncio.to_thread(self._make_s3)
        return s3, transport

    async def close(self) -> None:
        """Close the HTTP connections. Open streams are closed too."""
        self._closed = True
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()

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

    # operations ------------------------------------------------------------------------------

    async def _call(self, operation_name: str, params: dict[str, Any]) -> dict[str, Any]:
        runtime, transport = await self._ready()
        with botocore_errors(operation_name):
            reply = await transport.call(runtime, operation_name, params)
        parsed = reply.parsed or {}
        if reply.status >= 300:
            raise service_error_from_response(parsed, operation_name)
        return parsed

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
        deadline: float | None = None,
    ) -> _StreamCall:
        """Start InvokeEndpointWithResponseStream.

        Use as ``async with client.invoke_stream(...) as stream`` or ``stream = await
        client.invoke_stream(...)``. Parameters are validated before anything is sent
        (:class:`~sagestream.ParamValidationError`). ``deadline`` bounds the whole stream in
        seconds (:class:`~sagestream.DeadlineExceededError`), besides Config's read timeout
        between reads.
        """
        params = _params.stream_params(
            endpoint_name,
            body,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_id=inference_id,
            inference_component_name=inference_component_name,
            session_id=session_id,
        )
        _params.check_deadline(deadline)

        async def start() -> AsyncResponseStream:
            started = time.monotonic()
            runtime, transport = await self._ready()
            call = transport.call(runtime, STREAM_OPERATION, params, stream=True)
            with botocore_errors(STREAM_OPERATION):
                if deadline is None:
                    reply = await call
                else:
                    try:
                        reply = await asyncio.wait_for(call, deadline)
                    except asyncio.TimeoutError:
                        raise DeadlineExceededError(
                            f"no answer within the {deadline:g} s deadline of the stream"
                        ) from None
            if reply.status >= 300:
                raise service_error_from_response(reply.parsed or {}, STREAM_OPERATION)
            headers = _stream_headers(runtime, reply)
            remaining = None if deadline is None else deadline - (time.monotonic() - started)
            return AsyncResponseStream(reply.response, headers, started=started, deadline=remaining)

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
    ) -> InvokeResult:
        """InvokeEndpoint: the whole answer at once (``session_id="NEW_SESSION"`` opens a session)."""
        params = _params.invoke_params(
            endpoint_name,
            body,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            target_model=target_model,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_id=inference_id,
            enable_explanations=enable_explanations,
            inference_component_name=inference_component_name,
            session_id=session_id,
        )
        response = await self._call(INVOKE_OPERATION, params)
        new_id, expires = parse_new_session(response.get("NewSessionId"))
        return InvokeResult(
            body=response.get("Body", b""),
            content_type=response.get("ContentType"),
            invoked_production_variant=response.get("InvokedProductionVariant"),
            custom_attributes=response.get("CustomAttributes"),
            new_session_id=new_id,
            new_session_expires=expires,
            closed_session_id=response.get("ClosedSessionId"),
            response_metadata=dict(response.get("ResponseMetadata") or {}),
        )

    async def invoke_async(
        self,
        endpoint_name: str,
        *,
        input_location: str | None = None,
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
    ) -> AsyncInvocationAsync:
        """InvokeEndpointAsync; returns a handle whose ``await handle.wait()`` gives the output.

        Give ``input_location`` (an ``s3://`` URI), or ``input`` (bytes, or a file path) with an
        ``input_prefix`` to upload it under. Every parameter is validated before any upload.
        """
        from sagestream._async_inference import start_invocation_async

        return await start_invocation_async(
            self,
            endpoint_name,
            input_location=input_location,
            input=input,
            input_prefix=input_prefix,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            inference_id=inference_id,
            request_ttl_seconds=request_ttl_seconds,
            invocation_timeout_seconds=invocation_timeout_seconds,
            s3_output_path_extension=s3_output_path_extension,
            filename=filename,
        )

    # S3, for async invocations -----------------------------------------------------------------

    async def _s3_call(self, operation_name: str, params: dict[str, Any]) -> _Reply:
        """One S3 call; returns the reply (raises the typed error of any answer but 2xx/404)."""
        s3, transport = await self._s3_ready()
        stream = operation_name == "GetObject"
        with botocore_errors(operation_name):
            reply = await transport.call(s3, operation_name, params, stream=stream)
        if stream and reply.status < 300:
            try:
                reply.body = await reply.response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                reply.response.close()
                raise _mid_stream_error(exc, f"s3://{params['Bucket']}/{params['Key']}") from None
            except BaseException:
                reply.response.close()
                raise
            reply.response.release()
        elif reply.status >= 300 and reply.status != 404:
            raise ServiceError(reply.parsed or {}, operation_name)
        return reply


def _stream_headers(runtime: Any, reply: _Reply) -> dict[str, Any]:
    """The response's modeled headers (ContentType, InvokedProductionVariant, CustomAttributes)."""
    operation_model = runtime._service_model.operation_model(STREAM_OPERATION)
    out: dict[str, Any] = {}
    headers = reply.headers
    for name, member in operation_model.output_shape.members.items():
        if member.serialization.get("location") == "header":
            value = headers.get(member.serialization.get("name", name))
            if value is not None:
                out[name] = value
    out["ResponseMetadata"] = {
        "RequestId": headers.get("x-amzn-RequestId"),
        "HTTPStatusCode": reply.status,
        "HTTPHeaders": {k.lower(): v for k, v in headers.items()},
    }
    return out
