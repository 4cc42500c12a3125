"""What the spans of calls and of jobs share: error descriptions, content, the context."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode

from sagestream.otel import _conventions as c

if TYPE_CHECKING:
    from sagestream.otel._calls import Call

__all__ = ["CONTENT_LIMIT", "describe_error", "error_code", "error_type", "job_context", "last_call", "text"]

#: At most this much of a body is put on a span when content capture is on.
CONTENT_LIMIT = 16_384

#: The span of the job whose InvokeEndpointAsync call is being made (its parent).
job_context: ContextVar[Context | None] = ContextVar("sagestream_job_context", default=None)
#: The last call started in this context (the drop-in skips botocore calls it is waiting for).
last_call: ContextVar[Call | None] = ContextVar("sagestream_last_call", default=None)


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
