"""What the spans of calls and of jobs share: the scope (tracer, instruments, the common
attributes), error descriptions, content, the context."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode

from sagestream.otel import _conventions as c
from sagestream.otel._metrics import Instruments

__all__ = ["CONTENT_LIMIT", "Scope", "describe_error", "error_code", "error_type", "job_context", "text"]

#: At most this much of a body is put on a span when content capture is on.
CONTENT_LIMIT = 16_384

#: The span of the job whose InvokeEndpointAsync call is being made (its parent).
job_context: ContextVar[Context | None] = ContextVar("sagestream_job_context", default=None)


class Scope:
    """What every span and metric of one ``instrument()`` shares: its tracer, its instruments,
    its choices, and the attributes every signal of a call carries."""

    def __init__(
        self,
        tracer: trace.Tracer,
        instruments: Instruments,
        mode: c.Mode,
        *,
        operation_name: str,
        capture_content: bool,
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.mode = mode
        self.operation_name = operation_name
        self.capture_content = capture_content
        self._servers: dict[str, tuple[str | None, int | None]] = {}

    def server(self, url: str | None) -> tuple[str | None, int | None]:
        """``server.address`` and ``server.port`` of an endpoint URL (cached)."""
        if url is None:
            return None, None
        known = self._servers.get(url)
        if known is None:
            parts = urlsplit(url)
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
            known = self._servers[url] = (parts.hostname, port)
        return known

    def common(
        self, operation_name: str, model: str | None, method: str, server: str | None
    ) -> dict[str, Any]:
        """The attributes every signal of a call carries (the metrics' dimensions)."""
        address, port = self.server(server)
        attributes: dict[str, Any] = {
            c.GEN_AI_OPERATION_NAME: operation_name,
            self.mode.provider_key: c.PROVIDER,
            c.RPC_METHOD: method,
        }
        if model:
            attributes[c.GEN_AI_REQUEST_MODEL] = model
        if address:
            attributes[c.SERVER_ADDRESS] = address
            if port:
                attributes[c.SERVER_PORT] = port
        return attributes


def error_type(error: BaseException) -> str:
    """``error.type``: the canonical name of the exception's class (``ModelError``...)."""
    return type(error).__qualname__


def error_code(error: BaseException) -> str | None:
    """The service's code of an error, when it has one (``ModelStreamError``'s ErrorCode first)."""
    code = getattr(error, "error_code", None)
    if isinstance(code, str) and code:
        return code
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        value = response.get("Error", {}).get("Code")
        if value:
            return str(value)
    return None


def text(data: bytes | bytearray | memoryview) -> str:
    """A body as span content: UTF-8 (invalid bytes replaced), at most :data:`CONTENT_LIMIT`."""
    return bytes(data[:CONTENT_LIMIT]).decode("utf-8", "replace")


def describe_error(span: trace.Span, error: BaseException) -> None:
    """Put ``error`` on ``span``: its type, code, request id, status; the exception itself."""
    span.set_attribute(c.ERROR_TYPE, error_type(error))
    code = error_code(error)
    if code:
        span.set_attribute(c.SAGEMAKER_ERROR_CODE, code)
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        metadata = response.get("ResponseMetadata") or {}
        if metadata.get("RequestId"):
            span.set_attribute(c.AWS_REQUEST_ID, metadata["RequestId"])
        if metadata.get("HTTPStatusCode"):
            span.set_attribute(c.HTTP_RESPONSE_STATUS_CODE, int(metadata["HTTPStatusCode"]))
    if isinstance(error, Exception):
        span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:1024]))
