"""InvokeEndpointWithBidirectionalStream in the emulator, over HTTP/2 (:mod:`.h2server`).

A session is answered as the service answers it: the request's SigV4 signature is checked on
its headers (payload hash ``STREAMING-AWS4-HMAC-SHA256-EVENTS`` when declared in
``x-amz-content-sha256``, as the Java and JavaScript SDKs send it, else the hash of an empty
payload, as the AWS SDK for Rust signs it), then its parameters, then the model session is
opened and the 200 goes out; from there on the input events are verified one by one (the
chunk-signature chain, :mod:`.eventsig`) and handed to the model while its output parts stream
back. A bad input event ends the stream with an ``InvalidSignatureException`` error event: the
403 of a request whose answer has already begun.

Faults and knobs come from ``X-Amzn-SageMaker-Model-Query-String`` (``fault=cut&after=2``), the
one free-form value of this operation, read as the ``;``-separated knobs of response streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import hashlib
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from multidict import CIMultiDict

from sagestream import eventstream, service

from . import faults as _faults
from .config import EmulatorConfig
from .duplex_models import ModelUnreachable, Part, Session, make_duplex_model
from .eventsig import ChainVerifier
from .guard import ConnectionGuard
from .h2server import H2Server, H2Stream, StreamGone
from .protocol import ACCOUNT_ID, DEFAULT_VARIANT, EVENTSTREAM_CONTENT_TYPE, EmulatorError, model_error
from .requestlog import RequestLog, RequestRecord
from .sigv4 import check_request
from .tlscert import LoopbackCertificate
from .validation import check_endpoint_name, check_headers

__all__ = ["DuplexServer"]

OPERATION = service.INVOKE_DUPLEX
_ROUTE = re.compile(r"/endpoints/([^/]+)/invocations-bidirectional-stream")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SM = "X-Amzn-SageMaker-"
#: The bidirectional operation's names for the errors of the other operations.
_CODES = {
    "ValidationError": "InputValidationError",
    "InternalFailure": "InternalServerError",
    "ServiceUnavailable": "ServiceUnavailableError",
}


def _duplex_error(exc: EmulatorError) -> EmulatorError:
    code = _CODES.get(exc.code)
    if code is None:
        return exc
    return EmulatorError(exc.status, code, exc.message, fields=exc.fields, message_key=exc.message_key)


def _payload_frame(part: Part) -> bytes:
    headers: list[tuple[str, Any]] = [
        (":event-type", "PayloadPart"),
        (":content-type", "application/octet-stream"),
    ]
    if part.data_type is not None:
        headers.append(("DataType", part.data_type))
    if part.completion_state is not None:
        headers.append(("CompletionState", part.completion_state))
    headers.append((":message-type", "event"))
    return eventstream.encode(headers, part.data)


def _exception_frame(kind: str, message: str, error_code: str | None = None) -> bytes:
    doc = {"Message": message, **({"ErrorCode": error_code} if error_code else {})}
    headers = [
        (":exception-type", kind),
        (":content-type", "application/json"),
        (":message-type", "exception"),
    ]
    return eventstream.encode(headers, json.dumps(doc).encode())


def _error_frame(code: str, message: str) -> bytes:
    return eventstream.encode(
        [(":error-code", code), (":error-message", message), (":message-type", "error")], b""
    )


def _inner_part(payload: bytes) -> Part:
    decoder = eventstream.Decoder()
    messages = decoder.feed(payload)
    decoder.close()
    if len(messages) != 1:
        raise EmulatorError(400, "InputValidationError", "An input event must hold exactly one message.")
    headers = messages[0].headers
    if headers.get(":event-type") != "PayloadPart":
        raise EmulatorError(
            400, "InputValidationError", f"Unknown input event type {headers.get(':event-type')!r}."
        )
    data_type = headers.get("DataType")
    state = headers.get("CompletionState")
    return Part(
        messages[0].payload,
        data_type if isinstance(data_type, str) else None,
        state if isinstance(state, str) else None,
    )


class DuplexServer:
    """The bidirectional operation on its own ports: cleartext HTTP/2 (prior knowledge) and,
    with ``config.duplex_tls``, TLS with a generated certificate (ALPN ``h2``)."""

    def __init__(
        self, config: EmulatorConfig, request_log: RequestLog, guard: ConnectionGuard | None = None
    ) -> None:
        self.config = config
        self.request_log = request_log
        self._guard = guard
        self._models, self._default = config.models(make_duplex_model)
        self._plain = H2Server(self._handle, guard=guard)
        self._tls: H2Server | None = None
        self.certificate: LoopbackCertificate | None = None
        #: Why the TLS port is not served although asked for.
        self.tls_problem: str | None = None
        self.sessions = 0

    async def start(self) -> None:
        """Listen on the configured ports (0: a free one each)."""
        host = self.config.host
        await self._plain.start(host, self.config.duplex_port)
        if self.config.duplex_tls:
            try:
                self.certificate = LoopbackCertificate(host)
            except RuntimeError as exc:  # no 'cryptography': cleartext only, and say why
                self.tls_problem = str(exc)
                return
            self._tls = H2Server(
                self._handle, ssl_context=self.certificate.server_context(["h2"]), guard=self._guard
            )
            await self._tls.start(host, self.config.duplex_tls_port)

    async def stop(self) -> None:
        """Stop listening and close every session."""
        await self._plain.stop()
        if self._tls is not None:
            await self._tls.stop()
        if self.certificate is not None:
            self.certificate.cleanup()

    def _url(self, scheme: str, port: int) -> str:
        host = self.config.host
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def connections(self) -> int:
        """HTTP/2 connections accepted so far, over both ports."""
        return self._plain.accepted + (self._tls.accepted if self._tls is not None else 0)

    @property
    def port(self) -> int:
        """The cleartext HTTP/2 port."""
        return self._plain.port

    @property
    def calmed(self) -> int:
        """HTTP/2 connections sent GOAWAY ENHANCE_YOUR_CALM for a rapid-reset flood, both ports."""
        return self._plain.calmed + (self._tls.calmed if self._tls is not None else 0)

    @property
    def url(self) -> str:
        """``http://host:port`` of the cleartext HTTP/2 port."""
        return self._url("http", self._plain.port)

    @property
    def tls_url(self) -> str | None:
        """``https://localhost:port`` of the TLS port, or None."""
        return None if self._tls is None else f"https://localhost:{self._tls.port}"

    # --- one session ---------------------------------------------------------------------

    async def _answer(self, stream: H2Stream, request_id: str, exc: EmulatorError) -> None:
        exc = _duplex_error(exc)
        stream.respond(
            exc.status,
            [
                ("x-amzn-errortype", exc.code),
                ("x-amzn-requestid", request_id),
                ("content-type", "application/json"),
            ],
        )
        await stream.write(json.dumps(exc.body()).encode())
        stream.end()

    def _record(
        self, name: str | None, started: float, status: int, request_id: str, error: str | None
    ) -> None:
        self.request_log.append(
            RequestRecord(
                operation=OPERATION.name if name is not None else "Unknown",
                endpoint=name,
                started=started,
                ended=time.monotonic(),
                status=status,
                custom_attributes=None,
                request_id=request_id,
                error=error,
            )
        )

    def _admit(self, stream: H2Stream) -> tuple[str, str, dict[str, Any]]:
        """The endpoint, the seed signature and the checked parameters of a session."""
        path = stream.path
        split = urlsplit(path)
        match = _ROUTE.fullmatch(split.path)
        if stream.method != "POST" or match is None:
            raise EmulatorError(404, "UnknownOperationException", "", message_key="message")
        headers: dict[str, list[str]] = {}
        for key, value in stream.headers.items():
            if not key.startswith(":"):
                headers.setdefault(key, []).append(value)
        if "host" not in headers and ":authority" in stream.headers:
            headers["host"] = [stream.headers[":authority"]]
        signed = check_request(
            method="POST",
            raw_path=split.path,
            query_string=split.query,
            headers=headers,
            credentials={self.config.access_key_id: self.config.secret_access_key},
            region=self.config.region,
            service=service.SIGNING_NAME,
        )
        if signed.declared_hash is None:
            signed.check_signature(_EMPTY_SHA256)
        name = unquote(match.group(1))
        check_endpoint_name(name)
        values = check_headers(OPERATION, CIMultiDict((k, v[0]) for k, v in headers.items()))
        variant = values.get("TargetVariant")
        if variant is not None and variant != DEFAULT_VARIANT:
            raise EmulatorError(
                400,
                "InputValidationError",
                f"Variant {variant} does not exist. Valid variants are: {DEFAULT_VARIANT}.",
            )
        return name, signed.auth.signature, values

    async def _handle(self, stream: H2Stream) -> None:
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        name: str | None = None
        try:
            name, seed, values = self._admit(stream)
            model = self._models.get(name, self._default)
            if model is None:
                raise EmulatorError(
                    400, "InputValidationError", f"Endpoint {name} of account {ACCOUNT_ID} not found."
                )
            query = values.get("ModelQueryString")
            knobs = _faults.parse_knobs(";".join(f"{k}={v}" for k, v in parse_qsl(query or "")))
            _faults.raise_http_fault(knobs, name, self.config.region)
            session = await model.open(name, values.get("ModelInvocationPath"), query)
        except _faults.KnobError as exc:
            error = model_error(name or "", self.config.region, 400, str(exc))
            await self._answer(stream, request_id, error)
            self._record(name, started, error.status, request_id, error.code)
            return
        except ModelUnreachable as exc:
            error = model_error(name or "", self.config.region, 502, str(exc))
            await self._answer(stream, request_id, error)
            self._record(name, started, error.status, request_id, error.code)
            return
        except EmulatorError as exc:
            await self._answer(stream, request_id, exc)
            self._record(name, started, exc.status, request_id, _duplex_error(exc).code)
            return
        stream.respond(
            200,
            [
                ("content-type", EVENTSTREAM_CONTENT_TYPE),
                ("x-amzn-requestid", request_id),
                ("x-amzn-invoked-production-variant", values.get("TargetVariant", DEFAULT_VARIANT)),
            ],
        )
        self.sessions += 1
        verifier = ChainVerifier(
            seed, self.config.secret_access_key, self.config.region, service.SIGNING_NAME
        )
        outcome = await self._run(stream, session, verifier, knobs)
        self._record(name, started, 200, request_id, None if outcome == "ok" else outcome)

    async def _run(
        self, stream: H2Stream, session: Session, verifier: ChainVerifier, knobs: _faults.Knobs
    ) -> str:
        """Input and output at once; the outcome: ``ok`` or what ended the stream."""
        failed: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(self._read_input(stream, session, verifier, failed))
        writer = asyncio.create_task(self._write_output(stream, session, knobs))
        try:
            waiting: set[asyncio.Future[Any]] = {writer, failed, reader}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            while reader in done and writer not in done and failed not in done:
                if reader.exception() is not None:  # the client reset the stream
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StreamGone):
                        await writer
                    return "client-gone"
                rest: set[asyncio.Future[Any]] = {writer, failed}
                done, _ = await asyncio.wait(rest, return_when=asyncio.FIRST_COMPLETED)
            if failed in done:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, StreamGone):
                    await writer
                with contextlib.suppress(StreamGone):
                    await stream.write(failed.result())
                    stream.end()
                return "InvalidSignatureException"
            return writer.result()
        except StreamGone:
            return "client-gone"
        finally:
            for task in (reader, writer):
                task.cancel()
            try:
                await asyncio.gather(reader, writer, return_exceptions=True)
            finally:
                # Closed even when this handler is cancelled meanwhile (its connection lost).
                await session.close()

    async def _read_input(
        self, stream: H2Stream, session: Session, verifier: ChainVerifier, failed: asyncio.Future[bytes]
    ) -> None:
        try:
            while (data := await stream.read()) is not None:
                events = verifier.feed(data, _dt.datetime.now(_dt.timezone.utc))
                refused = verifier.failure
                for event in events:
                    if not event.end:
                        await session.receive(_inner_part(event.payload))
                    elif refused is None:  # an end followed by a refused event is no end
                        await session.end_input()
                if refused is not None:
                    raise refused
            verifier.close()
        except EmulatorError as exc:
            if not failed.done():
                failed.set_result(_error_frame(exc.code, exc.message))
        except ValueError as exc:  # the body is not an event stream
            if not failed.done():
                failed.set_result(_error_frame("InputValidationError", f"Malformed input event: {exc}"))

    async def _write_output(self, stream: H2Stream, session: Session, knobs: _faults.Knobs) -> str:
        fault = knobs.fault if knobs.fault in _faults.STREAM_FAULTS else None
        sent = 0
        try:
            while True:
                part = await session.output()
                if fault is not None and sent == knobs.after:
                    if fault == "stall":
                        await asyncio.sleep(knobs.seconds)
                        fault = None
                    else:
                        return await self._fire(stream, knobs, part)
                if part is None:
                    break
                await stream.write(_payload_frame(part))
                sent += 1
        except ModelUnreachable as exc:
            await stream.write(_exception_frame("ModelStreamError", str(exc), "StreamBroken"))
            stream.end()
            return "StreamBroken"
        stream.end()
        return "ok"

    async def _fire(self, stream: H2Stream, knobs: _faults.Knobs, part: Part | None) -> str:
        fault = str(knobs.fault)
        if fault == "cut":
            frame = _payload_frame(part or Part(b"x" * 64))
            stream.cut_connection(frame[: len(frame) // 2])
            return fault
        if fault == "error-frame":
            frame = _error_frame(knobs.code, knobs.message or "The stream failed.")
        elif fault == "model-stream-error":
            message = knobs.message or _faults.default_stream_error_message(knobs.code)
            frame = _exception_frame("ModelStreamError", message, knobs.code)
        else:
            message = knobs.message or "The stream processing failed because of an internal error."
            frame = _exception_frame("InternalStreamFailure", message)
        await stream.write(frame)
        stream.end()
        return fault
