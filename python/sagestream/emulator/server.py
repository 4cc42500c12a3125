"""The emulator's HTTP server (aiohttp) and the ``Emulator`` handle tests and tools use.

aiohttp serves the three SageMaker Runtime operations; aiohttp is already the package's
async HTTP client, and its low-level access to the transport lets streams write each event
stream frame as its own HTTP chunk, in batches, without a per-frame await.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from . import faults as _faults
from .faults import KnobError, Knobs
from .models import (
    Model,
    ModelFailure,
    ModelNotReady,
    ModelReply,
    ModelRequest,
    ModelStreamBroken,
    bulk_reply,
    make_model,
)
from .protocol import (
    ACCOUNT_ID,
    DEFAULT_VARIANT,
    EVENTSTREAM_CONTENT_TYPE,
    EmulatorError,
    FrameEncoder,
    chunk,
    error_frame,
    exception_frame,
    model_error,
    validation_error,
)
from .s3 import EmbeddedS3, S3Store
from .sigv4 import verify

log = logging.getLogger("sagestream.emulator")

#: Documented default credentials (any SDK configured with these can call the emulator).
DEFAULT_ACCESS_KEY_ID = "sagestream"
DEFAULT_SECRET_ACCESS_KEY = "sagestream-secret"
DEFAULT_REGION = "us-east-1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: Where async invocation results and failures go unless configured.
DEFAULT_ASYNC_OUTPUT_PATH = "s3://sagestream-async/output"
DEFAULT_ASYNC_FAILURE_PATH = "s3://sagestream-async/failure"
#: How long a stateful session lives after it is created.
DEFAULT_SESSION_TTL = 20 * 60.0

SIGNING_NAME = "sagemaker"
MAX_BODY = 6 * 1024 * 1024
#: Async defaults of the service (RequestTTLSeconds, InvocationTimeoutSeconds).
DEFAULT_REQUEST_TTL = 21600
DEFAULT_INVOCATION_TIMEOUT = 900

_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
_COMPONENT_RE = re.compile(r"^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_PRINTABLE_RE = re.compile(r"^\S[\x20-\x7e]*$")
_SESSION_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
_INPUT_LOCATION_RE = re.compile(r"^(https|s3)://([^/]+)/?(.*)$")
_EXTENSION_RE = re.compile(r"^(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+$")
_FILENAME_RE = re.compile(r"^(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*$")
_CUSTOM_ATTRIBUTES_RE = re.compile(r"^[\x20-\x7e\t]*$")

_STREAM_FAULTS = ("model-stream-error", "internal-stream-failure", "error-frame", "cut", "stall")


@dataclass
class EmulatorConfig:
    """Everything the server needs to know."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    access_key_id: str = DEFAULT_ACCESS_KEY_ID
    secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY
    endpoints: Mapping[str, str] | None = None
    s3_endpoint_url: str | None = None
    embedded_s3: bool = False
    token_delay: float = 0.0
    async_output_path: str = DEFAULT_ASYNC_OUTPUT_PATH
    async_failure_path: str = DEFAULT_ASYNC_FAILURE_PATH
    async_max_concurrency: int = 4
    async_time_scale: float = 1.0
    session_ttl: float = DEFAULT_SESSION_TTL


@dataclass
class Stats:
    """Counters of what the server did."""

    requests: int = 0
    parts: int = 0
    bytes: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


def _validate_len(
    name: str, value: str | None, low: int, high: int, pattern: re.Pattern[str] | None = None
) -> None:
    """The service's length constraint on ``value`` (absent: nothing to check), then ``pattern``."""
    if value is None:
        return
    if len(value) < low:
        raise validation_error(
            f"1 validation error detected: Value at '{name}' failed to satisfy constraint: "
            f"Member must have length greater than or equal to {low}"
        )
    if len(value) > high:
        raise validation_error(
            f"1 validation error detected: Value at '{name}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {high}"
        )
    if pattern is not None:
        _validate_pattern(name, value, pattern)


def _validate_pattern(name: str, value: str | None, pattern: re.Pattern[str]) -> None:
    if value is not None and not pattern.match(value):
        raise validation_error(
            f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {pattern.pattern}"
        )


def _validate_custom_attributes(value: str | None) -> None:
    """CustomAttributes: at most 1024 visible US-ASCII characters."""
    _validate_len("customAttributes", value, 0, 1024)
    if value is not None and not _CUSTOM_ATTRIBUTES_RE.match(value):
        raise validation_error(
            "1 validation error detected: Value at 'customAttributes' failed to satisfy constraint: "
            "Member must consist of visible US-ASCII characters"
        )


def _validate_ascii(name: str, value: str | None) -> None:
    if value is not None and not value.isascii():
        raise validation_error(
            f"1 validation error detected: Value at '{name}' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: \\p{ASCII}*"
        )


def _int_header(name: str, value: str | None, low: int, high: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise validation_error(f"Value '{value}' at '{name}' is not a valid integer.") from None
    if number < low:
        raise validation_error(
            f"1 validation error detected: Value '{number}' at '{name}' failed to satisfy constraint: "
            f"Member must have value greater than or equal to {low}"
        )
    if number > high:
        raise validation_error(
            f"1 validation error detected: Value '{number}' at '{name}' failed to satisfy constraint: "
            f"Member must have value less than or equal to {high}"
        )
    return number


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _join_uri(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class _Stream:
    """Writes one event stream response: each frame its own HTTP chunk, batches in one write."""

    def __init__(self, request: web.Request, response: web.StreamResponse, encoder: FrameEncoder) -> None:
        self._request = request
        self._response = response
        self._encoder = encoder
        self._writer: Any = None
        self._direct = False
        self.parts = 0
        self.bytes = 0

    async def start(self) -> None:
        self._response.enable_chunked_encoding()
        self._writer = await self._response.prepare(self._request)
        send_headers = getattr(self._writer, "send_headers", None)
        if send_headers is not None:
            send_headers()
            self._direct = True

    def _transport(self) -> asyncio.Transport:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        return transport

    async def write_parts(self, payloads: list[bytes]) -> None:
        if not payloads:
            return
        if self._direct:
            self._transport().write(self._encoder.payload_chunks(payloads))
            await self._writer.drain()
        else:
            for payload in payloads:
                await self._response.write(self._encoder.payload_frame(payload))
        self.parts += len(payloads)
        self.bytes += sum(len(p) for p in payloads)

    async def write_frame(self, frame: bytes) -> None:
        if self._direct:
            self._transport().write(chunk(frame))
            await self._writer.drain()
        else:
            await self._response.write(frame)

    async def cut(self, payload: bytes) -> None:
        """Send the chunk of ``payload``'s frame only half way, then abort the connection."""
        data = chunk(self._encoder.payload_frame(payload))
        if not self._direct:  # headers not yet out on old aiohttp versions
            await self._response.write(b"")
        transport = self._transport()
        transport.write(data[: len(data) // 2])
        # Let everything written so far reach the socket, then reset it mid-frame.
        deadline = time.monotonic() + 5.0
        while transport.get_write_buffer_size() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        transport.abort()

    async def finish(self) -> None:
        await self._response.write_eof()


class EmulatorServer:
    """The asyncio side of the emulator; run it with ``start()`` / ``stop()`` inside a loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self._models: dict[str, Model] = {}
        self._default_model: Model | None = None
        if config.endpoints is None:
            self._default_model = make_model("demo")
        else:
            for name, spec in config.endpoints.items():
                if name == "*":  # every other name
                    self._default_model = make_model(spec)
                    continue
                if not _NAME_RE.match(name) or len(name) > 63:
                    raise ValueError(f"invalid endpoint name {name!r}")
                self._models[name] = make_model(spec)
        self._encoder = FrameEncoder()
        self._sessions: dict[str, float] = {}
        self._runner: web.AppRunner | None = None
        self._async_sem: asyncio.Semaphore | None = None
        self._async_tasks: set[asyncio.Task[None]] = set()
        self._store: S3Store | None = None
        self._store_lock = threading.Lock()
        self.embedded_s3: EmbeddedS3 | None = None
        self.host = config.host
        self.port = config.port

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def s3_endpoint_url(self) -> str | None:
        """The S3 endpoint async invocations use (waits for the embedded one to listen)."""
        if self.config.s3_endpoint_url:
            return self.config.s3_endpoint_url
        if self.embedded_s3 is not None:
            return self.embedded_s3.url
        return None

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen (on ``sock`` if given) and start the embedded S3 server if configured."""
        if self.config.embedded_s3 and not self.config.s3_endpoint_url and self.embedded_s3 is None:
            self.embedded_s3 = EmbeddedS3(
                self.config.host,
                buckets=[self.config.async_output_path, self.config.async_failure_path],
                region=self.config.region,
                access_key_id=self.config.access_key_id,
                secret_access_key=self.config.secret_access_key,
            )
            self.embedded_s3.start()
        self._async_sem = asyncio.Semaphore(self.config.async_max_concurrency)
        app = web.Application(client_max_size=MAX_BODY * 4)
        app.router.add_post("/endpoints/{name}/invocations", self._invoke)
        app.router.add_post("/endpoints/{name}/invocations-response-stream", self._invoke_stream)
        app.router.add_post("/endpoints/{name}/async-invocations", self._invoke_async)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        if sock is None:
            sock = socket.create_server((self.config.host, self.config.port), reuse_port=False)
        sock.setblocking(False)
        site = web.SockSite(self._runner, sock, backlog=1024)
        await site.start()
        self.host, self.port = sock.getsockname()[:2]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening, cancel pending async invocations, close model clients."""
        for task in list(self._async_tasks):
            task.cancel()
        if self._async_tasks:
            await asyncio.gather(*self._async_tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        models = list(self._models.values())
        if self._default_model is not None:
            models.append(self._default_model)
        for model in models:
            await model.close()
        if self.embedded_s3 is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.embedded_s3.stop)

    # --- common request handling ---------------------------------------------------------

    async def _authenticate(self, request: web.Request, body: bytes) -> None:
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        verify(
            method=request.method,
            raw_path=request.rel_url.raw_path,
            query_string=request.rel_url.raw_query_string,
            headers=headers,
            body=body,
            credentials={self.config.access_key_id: self.config.secret_access_key},
            region=self.config.region,
            service=SIGNING_NAME,
        )

    def _model(self, name: str) -> Model:
        _validate_len("endpointName", name, 1, 63, _NAME_RE)
        model = self._models.get(name, self._default_model)
        if model is None:
            raise validation_error(f"Endpoint {name} of account {ACCOUNT_ID} not found.")
        return model

    def _common_headers(self, request: web.Request, *, streaming: bool) -> None:
        h = request.headers
        _validate_custom_attributes(h.get("X-Amzn-SageMaker-Custom-Attributes"))
        for name, header in (("contentType", "Content-Type"), ("accept", "Accept")):
            if streaming and header == "Accept":
                header = "X-Amzn-SageMaker-Accept"
            _validate_len(name, h.get(header), 0, 1024)
            _validate_ascii(name, h.get(header))
        for name, header in (
            ("targetVariant", "X-Amzn-SageMaker-Target-Variant"),
            ("targetContainerHostname", "X-Amzn-SageMaker-Target-Container-Hostname"),
        ):
            _validate_len(name, h.get(header), 0, 63, _NAME_RE)
        component = h.get("X-Amzn-SageMaker-Inference-Component")
        _validate_len("inferenceComponentName", component, 0, 63, _COMPONENT_RE)
        inference_id = h.get("X-Amzn-SageMaker-Inference-Id")
        _validate_len("inferenceId", inference_id, 1, 64, _PRINTABLE_RE)
        target_model = h.get("X-Amzn-SageMaker-Target-Model")
        _validate_len("targetModel", target_model, 1, 1024, _PRINTABLE_RE)
        variant = h.get("X-Amzn-SageMaker-Target-Variant")
        if variant is not None and variant != DEFAULT_VARIANT:
            raise validation_error(
                f"Variant {variant} does not exist. Valid variants are: {DEFAULT_VARIANT}."
            )

    def _knobs(self, request: web.Request, endpoint: str) -> Knobs:
        try:
            return _faults.parse_knobs(request.headers.get("X-Amzn-SageMaker-Custom-Attributes"))
        except KnobError as exc:
            raise model_error(endpoint, self.config.region, 400, str(exc)) from None

    def _http_fault(self, knobs: Knobs, endpoint: str) -> None:
        fault = knobs.fault
        if fault == "model-error":
            raise model_error(
                endpoint, self.config.region, knobs.status, knobs.message or "Injected model error"
            )
        if fault == "throttle":
            raise EmulatorError(
                429, "ModelNotReadyException", knobs.message or "Model is not ready to serve requests."
            )
        if fault == "unavailable":
            raise EmulatorError(
                503, "ServiceUnavailable", knobs.message or "The service is unavailable. Try again later."
            )
        if fault == "internal-failure":
            raise EmulatorError(
                500, "InternalFailure", knobs.message or "An internal failure occurred. Try again later."
            )
        if fault == "dependency":
            raise EmulatorError(
                530,
                "InternalDependencyException",
                knobs.message or "An internal dependency failed. Try again later.",
            )

    async def _call_model(self, model: Model, request: ModelRequest) -> ModelReply:
        if request.knobs.parts is not None:
            delay = request.knobs.delay or 0.0
            return bulk_reply(request.knobs.parts, request.knobs.part_size, delay)
        try:
            return await model.invoke(request)
        except ModelFailure as exc:
            raise model_error(request.endpoint, self.config.region, exc.status, exc.message) from None
        except ModelNotReady as exc:
            raise EmulatorError(429, "ModelNotReadyException", str(exc)) from None

    def _check_session(self, session_id: str | None, *, allow_new: bool) -> None:
        if session_id is None:
            return
        _validate_len("sessionId", session_id, 0, 256)
        if allow_new and session_id == "NEW_SESSION":
            return
        _validate_pattern("sessionId", session_id, _SESSION_RE)
        expires = self._sessions.get(session_id)
        if expires is None or expires < time.time():
            self._sessions.pop(session_id, None)
            raise validation_error(f"Session id {session_id} does not exist or has expired.")

    def _log(self, request: web.Request, status: int, started: float, extra: str = "") -> None:
        self.stats.requests += 1
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        if log.isEnabledFor(logging.INFO):
            log.info(
                '%s "%s %s" %d %.1fms%s',
                request.remote,
                request.method,
                request.path,
                status,
                (time.perf_counter() - started) * 1000,
                extra,
            )

    async def _prelude(self, request: web.Request, *, max_body: int | None = None) -> bytes:
        """The request body, once the signature is checked (and its size, for the invocations)."""
        body = await request.read()
        await self._authenticate(request, body)
        if max_body is not None and len(body) > max_body:
            raise validation_error(
                f"1 validation error detected: Value at 'body' failed to satisfy constraint: "
                f"Member must have length less than or equal to {max_body}"
            )
        return body

    def _model_request(
        self,
        request: web.Request,
        endpoint: str,
        body: bytes,
        knobs: Knobs,
        *,
        streaming: bool,
        accept: str | None,
    ) -> ModelRequest:
        h = request.headers
        forwarded = {
            k: v
            for k, v in h.items()
            if k.lower()
            in (
                "x-amzn-sagemaker-inference-id",
                "x-amzn-sagemaker-target-model",
                "x-amzn-sagemaker-session-id",
            )
        }
        return ModelRequest(
            endpoint=endpoint,
            body=body,
            content_type=h.get("Content-Type"),
            accept=accept,
            custom_attributes=h.get("X-Amzn-SageMaker-Custom-Attributes"),
            knobs=knobs,
            streaming=streaming,
            token_delay=self.config.token_delay,
            headers=forwarded,
        )

    # --- operations ----------------------------------------------------------------------

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        try:
            await self._prelude(request)
            error = EmulatorError(404, "UnknownOperationException", "", message_key="message")
        except EmulatorError as exc:
            error = exc
        self._log(request, error.status, started)
        return error.response(request_id)

    def _response_headers(self, request: web.Request, request_id: str, reply: ModelReply) -> dict[str, str]:
        headers = {
            "x-amzn-RequestId": request_id,
            "x-Amzn-Invoked-Production-Variant": request.headers.get(
                "X-Amzn-SageMaker-Target-Variant", DEFAULT_VARIANT
            ),
        }
        custom = reply.custom_attributes
        if custom is None:
            custom = request.headers.get("X-Amzn-SageMaker-Custom-Attributes")
        if custom:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom
        return headers

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        try:
            body = await self._prelude(request, max_body=MAX_BODY)
            self._common_headers(request, streaming=False)
            name = request.match_info["name"]
            model = self._model(name)
            session_id = request.headers.get("X-Amzn-SageMaker-Session-Id")
            self._check_session(session_id, allow_new=True)
            knobs = self._knobs(request, name)
            self._http_fault(knobs, name)
            model_request = self._model_request(
                request, name, body, knobs, streaming=False, accept=request.headers.get("Accept")
            )
            reply = await self._call_model(model, model_request)
            if knobs.fault == "stall":
                await asyncio.sleep(knobs.seconds)
            try:
                out = b"".join([b"".join(batch) async for batch in reply.parts])
            except ModelStreamBroken as exc:
                raise model_error(name, self.config.region, 500, str(exc)) from None
        except EmulatorError as exc:
            self._log(request, exc.status, started, f" {exc.code}")
            return exc.response(request_id)
        headers = self._response_headers(request, request_id, reply)
        headers["Content-Type"] = reply.content_type
        if session_id == "NEW_SESSION":
            new_id = str(uuid.uuid4())
            expires = time.time() + self.config.session_ttl
            self._sessions[new_id] = expires
            headers["X-Amzn-SageMaker-New-Session-Id"] = f"{new_id}; Expires={_iso(expires)}"
        elif session_id is not None and (knobs.session_close or _is_close_request(body)):
            self._sessions.pop(session_id, None)
            headers["X-Amzn-SageMaker-Closed-Session-Id"] = session_id
        if knobs.fault == "cut":
            response = web.StreamResponse(status=200, headers=headers)
            response.content_length = len(out)
            await response.prepare(request)
            await response.write(out[: len(out) // 2])
            transport = request.transport
            if transport is not None:
                transport.abort()
            self._log(request, 200, started, " cut")
            return response
        self.stats.bytes += len(out)
        self._log(request, 200, started)
        return web.Response(status=200, body=out, headers=headers)

    async def _invoke_stream(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        try:
            body = await self._prelude(request, max_body=MAX_BODY)
            self._common_headers(request, streaming=True)
            name = request.match_info["name"]
            model = self._model(name)
            self._check_session(request.headers.get("X-Amzn-SageMaker-Session-Id"), allow_new=False)
            knobs = self._knobs(request, name)
            self._http_fault(knobs, name)
            model_request = self._model_request(
                request,
                name,
                body,
                knobs,
                streaming=True,
                accept=request.headers.get("X-Amzn-SageMaker-Accept"),
            )
            reply = await self._call_model(model, model_request)
        except EmulatorError as exc:
            self._log(request, exc.status, started, f" {exc.code}")
            return exc.response(request_id)
        headers = self._response_headers(request, request_id, reply)
        headers["Content-Type"] = EVENTSTREAM_CONTENT_TYPE
        headers["X-Amzn-SageMaker-Content-Type"] = reply.content_type
        response = web.StreamResponse(status=200, headers=headers)
        stream = _Stream(request, response, self._encoder)
        outcome = "ok"
        try:
            await stream.start()
            outcome = await self._pump(stream, reply, knobs)
        except ModelStreamBroken as exc:
            outcome = "stream-broken"
            await stream.write_frame(exception_frame("ModelStreamError", str(exc), "StreamBroken"))
            await stream.finish()
        except (ConnectionError, asyncio.CancelledError):
            outcome = "client-gone"
            aclose = getattr(reply.parts, "aclose", None)
            if aclose is not None:
                await aclose()
        self.stats.parts += stream.parts
        self.stats.bytes += stream.bytes
        self._log(request, 200, started, f" parts={stream.parts} {outcome}")
        return response

    async def _pump(self, stream: _Stream, reply: ModelReply, knobs: Knobs) -> str:
        """Write the model's parts, firing a stream fault after ``knobs.after`` parts."""
        fault = knobs.fault if knobs.fault in _STREAM_FAULTS else None
        armed = fault is not None
        sent = 0
        async for batch in reply.parts:
            while batch:
                if armed and knobs.after - sent < len(batch):
                    room = knobs.after - sent
                    await stream.write_parts(batch[:room])
                    sent += room
                    batch = batch[room:]
                    armed = False
                    if await self._fire(stream, knobs, batch[0]):
                        await _aclose(reply)
                        return str(fault)
                    continue
                await stream.write_parts(batch)
                sent += len(batch)
                batch = []
        if armed and await self._fire(stream, knobs, b"x" * 64):
            return str(fault)
        await stream.finish()
        return "ok"

    async def _fire(self, stream: _Stream, knobs: Knobs, next_part: bytes) -> bool:
        """Inject the stream fault; True if the stream ends with it."""
        if knobs.fault == "stall":
            await asyncio.sleep(knobs.seconds)
            return False
        if knobs.fault == "cut":
            await stream.cut(next_part or b"x" * 64)
            return True
        if knobs.fault == "error-frame":
            frame = error_frame(knobs.code, knobs.message or "The stream failed.")
        elif knobs.fault == "model-stream-error":
            frame = exception_frame(
                "ModelStreamError",
                knobs.message or "Model invocation time exceeded while streaming the response.",
                knobs.code,
            )
        else:
            frame = exception_frame(
                "InternalStreamFailure",
                knobs.message or "The stream processing failed because of an internal error.",
            )
        await stream.write_frame(frame)
        await stream.finish()
        return True

    # --- async invocations ---------------------------------------------------------------

    def _s3(self) -> S3Store:
        with self._store_lock:
            if self._store is None:
                url = self.s3_endpoint_url
                if url is None:
                    raise EmulatorError(
                        500,
                        "InternalFailure",
                        "Async invocations need S3: start the emulator with embedded S3 "
                        "or --s3-endpoint-url.",
                    )
                self._store = S3Store(
                    url, self.config.region, self.config.access_key_id, self.config.secret_access_key
                )
            return self._store

    async def _invoke_async(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        h = request.headers
        try:
            await self._prelude(request)
            custom = h.get("X-Amzn-SageMaker-Custom-Attributes")
            _validate_custom_attributes(custom)
            for name, header in (
                ("contentType", "X-Amzn-SageMaker-Content-Type"),
                ("accept", "X-Amzn-SageMaker-Accept"),
            ):
                _validate_len(name, h.get(header), 0, 1024)
                _validate_ascii(name, h.get(header))
            inference_id = h.get("X-Amzn-SageMaker-Inference-Id")
            _validate_len("inferenceId", inference_id, 1, 64, _PRINTABLE_RE)
            input_location = h.get("X-Amzn-SageMaker-InputLocation")
            if input_location is None:
                raise validation_error(
                    "1 validation error detected: Value null at 'inputLocation' failed to satisfy "
                    "constraint: Member must not be null"
                )
            _validate_len("inputLocation", input_location, 1, 1024, _INPUT_LOCATION_RE)
            extension = h.get("X-Amzn-SageMaker-S3OutputPathExtension")
            _validate_len("s3OutputPathExtension", extension, 1, 512, _EXTENSION_RE)
            filename = h.get("X-Amzn-SageMaker-Filename")
            _validate_len("filename", filename, 1, 32, _FILENAME_RE)
            ttl = _int_header("requestTTLSeconds", h.get("X-Amzn-SageMaker-RequestTTLSeconds"), 60, 21600)
            timeout = _int_header(
                "invocationTimeoutSeconds", h.get("X-Amzn-SageMaker-InvocationTimeoutSeconds"), 1, 3600
            )
            name = request.match_info["name"]
            model = self._model(name)
            try:
                knobs = _faults.parse_knobs(custom)
            except KnobError:
                knobs = Knobs()
            if knobs.fault in ("unavailable", "internal-failure"):
                self._http_fault(knobs, name)
        except EmulatorError as exc:
            self._log(request, exc.status, started, f" {exc.code}")
            return exc.response(request_id)
        inference_id = inference_id or str(uuid.uuid4())
        output_uri = "s3://" + _join_uri(
            self.config.async_output_path.removeprefix("s3://"),
            extension or "",
            filename or f"{inference_id}.out",
        )
        failure_uri = "s3://" + _join_uri(
            self.config.async_failure_path.removeprefix("s3://"), extension or "", f"{inference_id}-error.out"
        )
        job = _AsyncJob(
            endpoint=name,
            model=model,
            inference_id=inference_id,
            input_location=input_location,
            output_uri=output_uri,
            failure_uri=failure_uri,
            content_type=h.get("X-Amzn-SageMaker-Content-Type"),
            accept=h.get("X-Amzn-SageMaker-Accept"),
            custom_attributes=custom,
            ttl=float(ttl if ttl is not None else DEFAULT_REQUEST_TTL),
            timeout=float(timeout if timeout is not None else DEFAULT_INVOCATION_TIMEOUT),
        )
        task = asyncio.ensure_future(self._run_async(job))
        self._async_tasks.add(task)
        task.add_done_callback(self._async_tasks.discard)
        self._log(request, 202, started, f" inference_id={inference_id}")
        return web.Response(
            status=202,
            body=json.dumps({"InferenceId": inference_id}).encode(),
            headers={
                "x-amzn-RequestId": request_id,
                "Content-Type": "application/json",
                "X-Amzn-SageMaker-OutputLocation": output_uri,
                "X-Amzn-SageMaker-FailureLocation": failure_uri,
            },
        )

    async def _run_async(self, job: _AsyncJob) -> None:
        loop = asyncio.get_running_loop()
        scale = self.config.async_time_scale
        queued = loop.time()
        assert self._async_sem is not None
        try:
            async with self._async_sem:
                if loop.time() - queued > job.ttl * scale:
                    await self._fail(
                        job,
                        "RequestExpired",
                        f"Request {job.inference_id} expired: it was not processed within "
                        f"RequestTTLSeconds={int(job.ttl)}.",
                    )
                    return
                try:
                    body = await loop.run_in_executor(None, lambda: self._s3().get(job.input_location))
                except Exception as exc:
                    await self._fail(
                        job,
                        "ValidationError",
                        f"Failed to download the input from {job.input_location}: {exc}",
                    )
                    return
                try:
                    content_type, output = await asyncio.wait_for(
                        self._async_model(job, body), timeout=job.timeout * scale
                    )
                except asyncio.TimeoutError:
                    await self._fail(
                        job,
                        "InvocationTimeout",
                        f"Inference {job.inference_id} did not complete within "
                        f"InvocationTimeoutSeconds={int(job.timeout)}.",
                    )
                    return
                except EmulatorError as exc:
                    await self._fail(job, exc.code, exc.message, exc.fields)
                    return
                await loop.run_in_executor(None, lambda: self._s3().put(job.output_uri, output, content_type))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("async invocation %s failed", job.inference_id)

    async def _async_model(self, job: _AsyncJob, body: bytes) -> tuple[str, bytes]:
        try:
            knobs = _faults.parse_knobs(job.custom_attributes)
        except KnobError as exc:
            raise model_error(job.endpoint, self.config.region, 400, str(exc)) from None
        if knobs.fault in ("model-error", "throttle", "dependency"):
            self._http_fault(knobs, job.endpoint)
        request = ModelRequest(
            endpoint=job.endpoint,
            body=body,
            content_type=job.content_type,
            accept=job.accept,
            custom_attributes=job.custom_attributes,
            knobs=knobs,
            streaming=False,
            token_delay=self.config.token_delay,
        )
        reply = await self._call_model(job.model, request)
        if knobs.fault == "stall":
            await asyncio.sleep(knobs.seconds)
        if knobs.fault in ("model-stream-error", "internal-stream-failure", "error-frame", "cut"):
            await _aclose(reply)
            raise EmulatorError(500, "ModelError", "The model failed while producing the response.")
        out = b"".join([b"".join(batch) async for batch in reply.parts])
        return reply.content_type, out

    async def _fail(
        self, job: _AsyncJob, code: str, message: str, fields: dict[str, Any] | None = None
    ) -> None:
        doc = {**(fields or {}), "InferenceId": job.inference_id, "ErrorCode": code, "Message": message}
        data = json.dumps(doc).encode()
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self._s3().put(job.failure_uri, data, "application/json")
        )


@dataclass
class _AsyncJob:
    endpoint: str
    model: Model
    inference_id: str
    input_location: str
    output_uri: str
    failure_uri: str
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    ttl: float
    timeout: float


async def _aclose(reply: ModelReply) -> None:
    aclose = getattr(reply.parts, "aclose", None)
    if aclose is not None:
        await aclose()


def _is_close_request(body: bytes) -> bool:
    """A stateful-session close request body: ``{"requestType": "CLOSE"}``."""
    if not body.startswith(b"{") or b"CLOSE" not in body:
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and str(doc.get("requestType", "")).upper() == "CLOSE"


class Emulator:
    """A local SageMaker Runtime endpoint, served from a background thread.

    ``endpoints`` maps endpoint names to models (``"demo"``, ``"echo"`` or a container URL
    ``"http://host:port"``); ``None`` serves every name with the demo model. ``port=0`` picks
    a free port. Use as a context manager, or call ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        region: str = DEFAULT_REGION,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
        endpoints: Mapping[str, str] | None = None,
        s3_endpoint_url: str | None = None,
        embedded_s3: bool = False,
        token_delay: float = 0.0,
        *,
        async_output_path: str = DEFAULT_ASYNC_OUTPUT_PATH,
        async_failure_path: str = DEFAULT_ASYNC_FAILURE_PATH,
        async_max_concurrency: int = 4,
        async_time_scale: float = 1.0,
        session_ttl: float = DEFAULT_SESSION_TTL,
    ) -> None:
        self.config = EmulatorConfig(
            host=host,
            port=port,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            endpoints=dict(endpoints) if endpoints is not None else None,
            s3_endpoint_url=s3_endpoint_url,
            embedded_s3=embedded_s3,
            token_delay=token_delay,
            async_output_path=async_output_path,
            async_failure_path=async_failure_path,
            async_max_concurrency=async_max_concurrency,
            async_time_scale=async_time_scale,
            session_ttl=session_ttl,
        )
        self.server = EmulatorServer(self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    host = property(lambda self: self.server.host, doc="The address it listens on.")
    port = property(lambda self: self.server.port, doc="The port it listens on.")
    region = property(lambda self: self.config.region, doc="The region clients must sign for.")
    access_key_id = property(lambda self: self.config.access_key_id, doc="The accepted access key id.")
    secret_access_key = property(lambda self: self.config.secret_access_key, doc="Its secret key.")

    @property
    def url(self) -> str:
        """``http://host:port``: the endpoint URL for SDK clients."""
        return self.server.url

    @property
    def s3_endpoint_url(self) -> str | None:
        """The S3 endpoint (embedded or given) async invocations use, or None."""
        return self.server.s3_endpoint_url

    @property
    def stats(self) -> Stats:
        """Request, part and byte counters."""
        return self.server.stats

    def cpu_time(self) -> float:
        """CPU seconds the server thread has used so far (Linux; 0.0 elsewhere)."""
        thread = self._thread
        if thread is None or thread.ident is None or not hasattr(time, "pthread_getcpuclockid"):
            return 0.0
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except OSError:
            return 0.0

    def start(self) -> Emulator:
        """Start serving; returns once the socket listens."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.server.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="sagestream-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving (and the embedded S3 server)."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        self._loop = None

    def __enter__(self) -> Emulator:
        return self.start() if self._thread is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def boto3_client(self, service_name: str = "sagemaker-runtime", **client_kwargs: Any) -> Any:
        """A stock boto3 client for ``"sagemaker-runtime"`` or ``"s3"`` wired to this emulator."""
        import boto3

        session = boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )
        if service_name == "s3":
            client_kwargs.setdefault("endpoint_url", self.s3_endpoint_url)
        else:
            client_kwargs.setdefault("endpoint_url", self.url)
        return session.client(service_name, **client_kwargs)
