"""The emulator's HTTP server (aiohttp): the three SageMaker Runtime operations, routed.

aiohttp is already the package's async HTTP client, and its low-level access to the transport
lets streams write each event stream frame as its own HTTP chunk, in batches, without a
per-frame await. Requests come in through :mod:`.intake` (SigV4 on the headers, then the
body), are validated by the rules table (:mod:`.validation`), served by a model
(:mod:`.models`, :mod:`.demo`) and written out (:mod:`.writer`, :mod:`.jobs` for async
invocations). Connections are bounded by :mod:`.guard`; every request is recorded in
:mod:`.requestlog`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sagestream import service
from sagestream.extras import SERVE_INSTALL

from . import faults as _faults
from .catalog import make_model
from .config import EmulatorConfig, log
from .duplex import DuplexServer
from .faults import KnobError, Knobs
from .guard import ConnectionGuard
from .intake import BodyTimeout, authenticate, read_body
from .jobs import AsyncJob, AsyncJobs
from .models import (
    Model,
    ModelReply,
    ModelRequest,
    ModelStreamBroken,
    aclose_reply,
    call_model,
    join_reply,
)
from .protocol import (
    ACCOUNT_ID,
    DEFAULT_VARIANT,
    EVENTSTREAM_CONTENT_TYPE,
    EmulatorError,
    FrameEncoder,
    exception_frame,
    model_error,
    validation_error,
)
from .requestlog import RequestLog, RequestRecord
from .s3 import EmbeddedS3, S3Store, moto_available
from .sessions import Sessions, is_close_request
from .validation import check_async_input, check_endpoint_name, check_headers
from .writer import EventStreamWriter, pump

__all__ = ["MAX_INVOKE_REPLY_BYTES", "EmulatorServer", "Stats"]

#: An InvokeEndpoint answer holds at most this many bytes (the request body's bound); a longer
#: one is a ModelError that points to the streaming operation.
MAX_INVOKE_REPLY_BYTES = service.MAX_BODY_BYTES
_SM = "X-Amzn-SageMaker-"


@dataclass
class Stats:
    """Counters of what the server did."""

    requests: int = 0
    parts: int = 0
    bytes: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


@dataclass
class _Call:
    """One request in progress, for its log line and record."""

    operation: str
    endpoint: str | None
    request_id: str
    started: float
    custom_attributes: str | None = None
    prefix_aware_id: str | None = None


def _join_uri(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class EmulatorServer:
    """The asyncio side of the emulator; run it with ``start()`` / ``stop()`` inside a loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.request_log = RequestLog(config.request_log_size)
        self._models, self._default_model = config.models(make_model)
        self._encoder = FrameEncoder()
        self._sessions = Sessions(config.session_ttl)
        self._runner: web.AppRunner | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._guard = ConnectionGuard(
            idle_timeout=config.idle_timeout, max_connections=config.max_connections
        )
        self._jobs = AsyncJobs(config, self._s3)
        self._store: S3Store | None = None
        self._store_lock = threading.Lock()
        self.embedded_s3: EmbeddedS3 | None = None
        #: Why async invocations cannot run, when the emulator has no S3.
        self.s3_problem: str | None = None
        self.host = config.host
        self.port = config.port
        #: InvokeEndpointWithBidirectionalStream, on its own HTTP/2 port(s).
        self.duplex = DuplexServer(config, self.request_log, self._guard)

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def s3_endpoint_url(self) -> str | None:
        """The S3 endpoint async invocations use (waits for the embedded one to listen)."""
        if self.config.s3_endpoint_url:
            return self.config.s3_endpoint_url
        if self.embedded_s3 is not None:
            return self.embedded_s3.url
        return None

    @property
    def s3_buckets(self) -> list[str]:
        """The buckets the emulator created in its embedded S3."""
        return list(self.embedded_s3.buckets) if self.embedded_s3 is not None else []

    @property
    def guard(self) -> ConnectionGuard:
        """The connection bounds (open connections, how many were closed and why)."""
        return self._guard

    def _start_s3(self) -> None:
        config = self.config
        if config.s3_endpoint_url or not config.embedded_s3 or self.embedded_s3 is not None:
            if not config.s3_endpoint_url and not config.embedded_s3:
                self.s3_problem = "the emulator was started without S3"
            return
        if not moto_available():
            self.s3_problem = f"the embedded S3 needs moto: {SERVE_INSTALL}"
            return
        embedded = EmbeddedS3(
            buckets=[
                *config.s3_buckets,
                config.async_input_path,
                config.async_output_path,
                config.async_failure_path,
            ],
            region=config.region,
            access_key_id=config.access_key_id,
            secret_access_key=config.secret_access_key,
            idle_timeout=config.idle_timeout,
            port=config.s3_port,
        )
        embedded.start()  # OSError when its port is taken: the emulator does not start
        self.embedded_s3 = embedded

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen (on ``sock`` if given) and start the embedded S3 server if configured."""
        self._start_s3()
        app = web.Application(middlewares=[self._guard.middleware])
        app.router.add_post(service.INVOKE.route("{name}"), self._invoke)
        app.router.add_post(service.INVOKE_STREAM.route("{name}"), self._invoke_stream)
        app.router.add_post(service.INVOKE_ASYNC.route("{name}"), self._invoke_async)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=self.config.idle_timeout
        )
        await self._runner.setup()
        assert self._runner.server is not None
        if sock is None:
            sock = socket.create_server((self.config.host, self.config.port), reuse_port=False)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        self._tcp = await loop.create_server(self._guard.wrap(self._runner.server), sock=sock, backlog=1024)
        self.host, self.port = sock.getsockname()[:2]
        await self.duplex.start()

    @property
    def url(self) -> str:
        """``http://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening, cancel pending async invocations, close model clients."""
        await self._jobs.stop()
        await self.duplex.stop()
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        self._guard.close()
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

    def _call(self, request: web.Request, op: str) -> _Call:
        return _Call(
            operation=op,
            endpoint=request.match_info.get("name"),
            request_id=str(uuid.uuid4()),
            started=time.monotonic(),
            custom_attributes=request.headers.get(_SM + "Custom-Attributes"),
            prefix_aware_id=request.headers.get(_SM + "Prefix-Aware-Id"),
        )

    def _finish(
        self, request: web.Request, call: _Call, status: int, error: str | None = None, extra: str = ""
    ) -> None:
        ended = time.monotonic()
        self.stats.requests += 1
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        self.request_log.append(
            RequestRecord(
                operation=call.operation,
                endpoint=call.endpoint,
                started=call.started,
                ended=ended,
                status=status,
                custom_attributes=call.custom_attributes,
                request_id=call.request_id,
                error=error,
                prefix_aware_id=call.prefix_aware_id,
            )
        )
        if log.isEnabledFor(logging.INFO):
            note = f" {error}" if error else ""
            log.info(
                '%s "%s %s" %d %.1fms%s%s',
                request.remote,
                request.method,
                request.path,
                status,
                (ended - call.started) * 1000,
                note,
                extra,
            )

    def _error(self, request: web.Request, call: _Call, exc: EmulatorError) -> web.Response:
        self._finish(request, call, exc.status, exc.code)
        return exc.response(call.request_id)

    def _timed_out(self, request: web.Request, call: _Call, exc: BodyTimeout) -> web.Response:
        """A body that trickled in too slowly: 408, and the connection is closed."""
        self._finish(request, call, 408, "RequestTimeout")
        return web.Response(
            status=408,
            text=json.dumps({"message": str(exc)}),
            content_type="application/json",
            headers={"x-amzn-RequestId": call.request_id, "Connection": "close"},
        )

    def _s3_url_if_known(self) -> str | None:
        if self.config.s3_endpoint_url:
            return self.config.s3_endpoint_url
        return self.embedded_s3.url_if_ready if self.embedded_s3 is not None else None

    async def _admit(self, request: web.Request, op: service.Operation) -> tuple[bytes, dict[str, Any]]:
        """The body and checked header values of a signed, valid request for ``op``."""
        signed = authenticate(
            request,
            credentials={self.config.access_key_id: self.config.secret_access_key},
            region=self.config.region,
            s3_url=self._s3_url_if_known(),
        )
        body_member = op.members.get("Body")
        limit = body_member.rule.max if body_member is not None else None
        body = await read_body(
            request, signed, limit=limit or service.MAX_BODY_BYTES, timeout=self.config.body_timeout
        )
        check_endpoint_name(request.match_info["name"])
        values = check_headers(op, request.headers)
        variant = values.get("TargetVariant")
        if variant is not None and variant != DEFAULT_VARIANT:
            raise validation_error(
                f"Variant {variant} does not exist. Valid variants are: {DEFAULT_VARIANT}."
            )
        return body, values

    def _model(self, name: str) -> Model:
        model = self._models.get(name, self._default_model)
        if model is None:
            raise validation_error(f"Endpoint {name} of account {ACCOUNT_ID} not found.")
        return model

    def _knobs(self, custom_attributes: str | None, endpoint: str) -> Knobs:
        try:
            return _faults.parse_knobs(custom_attributes)
        except KnobError as exc:
            raise model_error(endpoint, self.config.region, 400, str(exc)) from None

    def _model_request(
        self, name: str, body: bytes, knobs: Knobs, values: dict[str, Any], *, streaming: bool
    ) -> ModelRequest:
        forwarded = {
            _SM + header: values[member]
            for member, header in (
                ("InferenceId", "Inference-Id"),
                ("TargetModel", "Target-Model"),
                ("SessionId", "Session-Id"),
            )
            if member in values
        }
        return ModelRequest(
            endpoint=name,
            body=body,
            content_type=values.get("ContentType"),
            accept=values.get("Accept"),
            custom_attributes=values.get("CustomAttributes"),
            knobs=knobs,
            streaming=streaming,
            token_delay=self.config.token_delay,
            headers=forwarded,
        )

    def _response_headers(self, call: _Call, values: dict[str, Any], reply: ModelReply) -> dict[str, str]:
        headers = {
            "x-amzn-RequestId": call.request_id,
            "x-Amzn-Invoked-Production-Variant": values.get("TargetVariant", DEFAULT_VARIANT),
        }
        # The service answers CustomAttributes only when the model set them.
        if reply.custom_attributes:
            headers[_SM + "Custom-Attributes"] = reply.custom_attributes
        return headers

    # --- operations ----------------------------------------------------------------------

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        call = self._call(request, "Unknown")
        try:
            signed = authenticate(
                request,
                credentials={self.config.access_key_id: self.config.secret_access_key},
                region=self.config.region,
                s3_url=self._s3_url_if_known(),
            )
            await read_body(request, signed, timeout=self.config.body_timeout)
            error = EmulatorError(404, "UnknownOperationException", "", message_key="message")
        except EmulatorError as exc:
            error = exc
        except BodyTimeout as exc:
            return self._timed_out(request, call, exc)
        return self._error(request, call, error)

    async def _run_model(
        self, request: web.Request, op: service.Operation
    ) -> tuple[bytes, dict[str, Any], Knobs, ModelReply]:
        """Admit an InvokeEndpoint (or streaming) request, check its session and knobs (an HTTP
        fault raises here), call the model: the body, header values, knobs and the reply."""
        body, values = await self._admit(request, op)
        name = request.match_info["name"]
        model = self._model(name)
        self._sessions.check(values.get("SessionId"))
        knobs = self._knobs(values.get("CustomAttributes"), name)
        _faults.raise_http_fault(knobs, name, self.config.region)
        model_request = self._model_request(name, body, knobs, values, streaming=op is service.INVOKE_STREAM)
        return body, values, knobs, await call_model(model, model_request, self.config.region)

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        call = self._call(request, service.INVOKE.name)
        region = self.config.region
        name = request.match_info["name"]
        try:
            body, values, knobs, reply = await self._run_model(request, service.INVOKE)
            session_id = values.get("SessionId")
            if knobs.fault == "stall":
                await asyncio.sleep(knobs.seconds)
            hint = ": use InvokeEndpointWithResponseStream for longer answers"
            out = await join_reply(reply, MAX_INVOKE_REPLY_BYTES, name, region, hint)
        except EmulatorError as exc:
            return self._error(request, call, exc)
        except BodyTimeout as exc:
            return self._timed_out(request, call, exc)
        headers = self._response_headers(call, values, reply)
        headers["Content-Type"] = reply.content_type
        if session_id == service.NEW_SESSION:
            headers[_SM + "New-Session-Id"] = self._sessions.open()
        elif session_id is not None and (knobs.session_close or is_close_request(body)):
            self._sessions.close(session_id)
            headers[_SM + "Closed-Session-Id"] = session_id
        if knobs.fault == "cut":
            response = web.StreamResponse(status=200, headers=headers)
            response.content_length = len(out)
            await response.prepare(request)
            await response.write(out[: len(out) // 2])
            if request.transport is not None:
                request.transport.abort()
            self._finish(request, call, 200, "cut")
            return response
        self.stats.bytes += len(out)
        self._finish(request, call, 200)
        return web.Response(status=200, body=out, headers=headers)

    async def _invoke_stream(self, request: web.Request) -> web.StreamResponse:
        call = self._call(request, service.INVOKE_STREAM.name)
        try:
            _, values, knobs, reply = await self._run_model(request, service.INVOKE_STREAM)
        except EmulatorError as exc:
            return self._error(request, call, exc)
        except BodyTimeout as exc:
            return self._timed_out(request, call, exc)
        headers = self._response_headers(call, values, reply)
        headers["Content-Type"] = EVENTSTREAM_CONTENT_TYPE
        headers[_SM + "Content-Type"] = reply.content_type
        response = web.StreamResponse(status=200, headers=headers)
        stream = EventStreamWriter(request, response, self._encoder)
        outcome = "ok"
        try:
            await stream.start()
            outcome = await pump(stream, reply, knobs)
        except ModelStreamBroken as exc:
            outcome = "StreamBroken"
            await stream.write_frame(exception_frame("ModelStreamError", str(exc), "StreamBroken"))
            await stream.finish()
        except (ConnectionError, asyncio.CancelledError):
            outcome = "client-gone"
            await aclose_reply(reply)
        self.stats.parts += stream.parts
        self.stats.bytes += stream.bytes
        self._finish(request, call, 200, None if outcome == "ok" else outcome, f" parts={stream.parts}")
        return response

    def _s3(self) -> S3Store:
        with self._store_lock:
            if self._store is None:
                url = self.s3_endpoint_url
                if url is None:
                    raise RuntimeError(f"async invocations need S3: {self.s3_problem}")
                self._store = S3Store(
                    url, self.config.region, self.config.access_key_id, self.config.secret_access_key
                )
            return self._store

    async def _require_s3(self, name: str) -> None:
        """Refuse an async invocation at once when there is no S3 to run it with."""
        problem = self.s3_problem
        embedded = self.embedded_s3
        if problem is None and embedded is not None:
            try:  # waits for the embedded S3 to listen (it starts with the emulator)
                await asyncio.get_running_loop().run_in_executor(None, lambda: embedded.url)
            except RuntimeError as exc:
                problem = str(exc)
        if problem is not None:
            raise validation_error(
                f"Endpoint {name} of account {ACCOUNT_ID} is not configured for asynchronous "
                f"inference: {problem}. Start the emulator with its embedded S3 (the 'serve' extra: "
                f"{SERVE_INSTALL}) or with --s3-endpoint-url URL."
            )

    async def _invoke_async(self, request: web.Request) -> web.StreamResponse:
        call = self._call(request, service.INVOKE_ASYNC.name)
        config = self.config
        try:
            body, values = await self._admit(request, service.INVOKE_ASYNC)
            check_async_input(values, body)
            name = request.match_info["name"]
            model = self._model(name)
            await self._require_s3(name)
            try:
                knobs = _faults.parse_knobs(values.get("CustomAttributes"))
            except KnobError:  # the model rejects it when the job runs
                knobs = Knobs()
            if knobs.fault in ("unavailable", "internal-failure"):
                _faults.raise_http_fault(knobs, name, config.region)
        except EmulatorError as exc:
            return self._error(request, call, exc)
        except BodyTimeout as exc:
            return self._timed_out(request, call, exc)
        inference_id = values.get("InferenceId") or str(uuid.uuid4())
        extension = values.get("S3OutputPathExtension") or ""
        output_uri = "s3://" + _join_uri(
            config.async_output_path.removeprefix("s3://"),
            extension,
            values.get("Filename") or f"{inference_id}.out",
        )
        failure_uri = "s3://" + _join_uri(
            config.async_failure_path.removeprefix("s3://"), extension, f"{inference_id}-error.out"
        )
        ttl = values.get("RequestTTLSeconds", service.DEFAULT_REQUEST_TTL_SECONDS)
        timeout = values.get("InvocationTimeoutSeconds", service.DEFAULT_INVOCATION_TIMEOUT_SECONDS)
        self._jobs.submit(
            AsyncJob(
                endpoint=name,
                model=model,
                inference_id=inference_id,
                input_location=values.get("InputLocation"),
                body=None if "InputLocation" in values else body,
                output_uri=output_uri,
                failure_uri=failure_uri,
                content_type=values.get("ContentType"),
                accept=values.get("Accept"),
                custom_attributes=values.get("CustomAttributes"),
                ttl=float(ttl),
                timeout=float(timeout),
            )
        )
        self._finish(request, call, 202, extra=f" inference_id={inference_id}")
        return web.Response(
            status=202,
            body=json.dumps({"InferenceId": inference_id}).encode(),
            headers={
                "x-amzn-RequestId": call.request_id,
                "Content-Type": "application/json",
                _SM + "OutputLocation": output_uri,
                _SM + "FailureLocation": failure_uri,
            },
        )
