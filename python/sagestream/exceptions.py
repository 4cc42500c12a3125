"""Every exception sagestream raises.

Hierarchy::

    SageStreamError
    ├── DecodeError (ValueError)              bad event stream bytes
    │   ├── ChecksumMismatchError             prelude or message CRC32 mismatch
    │   ├── FrameTooLargeError                headers > 128 KiB or payload > 24 MiB
    │   ├── TruncatedStreamError              the stream ended inside a frame
    │   └── InvalidFrameError                 bad lengths, header type, UTF-8 ...
    │       └── DuplicateHeaderError
    ├── ReassemblyError (DecodeError)        lines / SSE / JSON lines across payload parts
    │   └── LineTooLongError                  more unread bytes than the configured bound
    ├── ParamValidationError (ValueError)     a parameter the service would reject, caught before sending
    ├── ServiceError (botocore ClientError)   an error answered by the service
    │   ├── ValidationError (400), ModelError (424), ModelNotReadyException (429),
    │   │   InternalFailure (500), ServiceUnavailable (503), InternalDependencyException (530)
    │   │   (the bidirectional operation's InputValidationError, InternalServerError and
    │   │   ServiceUnavailableError subclass the first, fourth and fifth)
    │   └── StreamError (botocore EventStreamError)   an error frame inside the stream
    │       ├── ModelStreamError                      .error_code
    │       └── InternalStreamFailure
    ├── TransportError (ConnectionError)      the connection failed, or broke
    │   ├── ConnectError                      no connection to the endpoint (.kind)
    │   │   └── ConnectTimeoutError (TimeoutError)
    │   ├── ConnectionLostError
    │   ├── ReadTimeoutError (TimeoutError), DeadlineExceededError (TimeoutError)
    │   ├── MalformedResponseError            an answer that is not HTTP (never sent again)
    │   └── ResponseTooLargeError             a body larger than its ResponseLimits (.limit)
    ├── SigningError (ValueError)             a request that cannot be signed
    ├── InputClosedError                      a duplex session's input was closed already
    └── AsyncInferenceError
        ├── AsyncInferenceFailedError         the failure document of InvokeEndpointAsync
        └── AsyncInferenceTimeoutError (TimeoutError)

The Rust core raises the decode and reassembly errors and builds the stream errors through
``_stream_exception`` / ``_stream_error``, all in ``src/errors.rs``: the names used there must
match these.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from botocore.exceptions import ClientError
from botocore.exceptions import EventStreamError as _BotocoreEventStreamError

__all__ = [
    "SageStreamError",
    "DecodeError",
    "ChecksumMismatchError",
    "FrameTooLargeError",
    "TruncatedStreamError",
    "InvalidFrameError",
    "DuplicateHeaderError",
    "ReassemblyError",
    "LineTooLongError",
    "ParamValidationError",
    "ServiceError",
    "ValidationError",
    "ModelError",
    "ModelNotReadyException",
    "InternalFailure",
    "ServiceUnavailable",
    "InternalDependencyException",
    "StreamError",
    "ModelStreamError",
    "InternalStreamFailure",
    "TransportError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "ReadTimeoutError",
    "DeadlineExceededError",
    "MalformedResponseError",
    "ResponseTooLargeError",
    "SigningError",
    "ContentTypeWarning",
    "FallbackWarning",
    "InputClosedError",
    "InputValidationError",
    "InternalServerError",
    "ServiceUnavailableError",
    "AsyncInferenceError",
    "AsyncInferenceFailedError",
    "AsyncInferenceTimeoutError",
    "AsyncInferenceFailed",
    "AsyncInferenceTimeout",
    "service_error_from_response",
]

STREAM_OPERATION = "InvokeEndpointWithResponseStream"
DUPLEX_OPERATION = "InvokeEndpointWithBidirectionalStream"


class SageStreamError(Exception):
    """Root of every exception raised by sagestream."""


# --- bad bytes -------------------------------------------------------------------------------


class DecodeError(SageStreamError, ValueError):
    """The event stream bytes are invalid."""


class ChecksumMismatchError(DecodeError):
    """The CRC32 of a frame's prelude or of the whole frame does not match."""


class FrameTooLargeError(DecodeError):
    """A frame claims headers over 128 KiB or a payload over 24 MiB (refused on the prelude)."""


class TruncatedStreamError(DecodeError):
    """The stream ended inside a frame."""


class InvalidFrameError(DecodeError):
    """A frame is malformed: lengths that do not add up, a bad header type, invalid UTF-8."""


class DuplicateHeaderError(InvalidFrameError):
    """A header name appears twice in one frame."""


class ReassemblyError(DecodeError):
    """Payload parts cannot be reassembled into lines, SSE events or JSON values.

    ``offset`` is the stream offset of the bad byte (invalid UTF-8) or of the start of the bad
    line or event; ``line_number`` the 1-based number of an invalid JSON line.
    """

    offset: int | None = None
    line_number: int | None = None

    def __init__(
        self, message: str = "", *, offset: int | None = None, line_number: int | None = None
    ) -> None:
        super().__init__(message)
        self.offset = offset
        self.line_number = line_number


class LineTooLongError(ReassemblyError):
    """A line or event grew past the bound on unread bytes without ending (``limit`` bytes)."""

    limit: int | None = None

    def __init__(
        self,
        message: str = "",
        *,
        offset: int | None = None,
        line_number: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(message, offset=offset, line_number=line_number)
        self.limit = limit


class ParamValidationError(SageStreamError, ValueError):
    """A request parameter breaks a rule the service enforces; nothing was sent."""


# --- service errors --------------------------------------------------------------------------


class ServiceError(SageStreamError, ClientError):
    """An error returned by SageMaker Runtime (or the emulator).

    A subclass of botocore's ``ClientError`` with the same ``response`` and ``operation_name``,
    so existing ``except ClientError`` code keeps working.
    """

    #: The service's error code this class stands for: the name of each class of this module,
    #: unless it says otherwise (a subclass defined elsewhere keeps its base's).
    code: ClassVar[str] = ""
    #: The HTTP status of the code, when the answer does not say (``class X(ServiceError, status=...)``).
    status_code_default: ClassVar[int | None] = None

    def __init_subclass__(cls, *, status: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__ and cls.__module__ == __name__:
            cls.code = cls.__name__
        if status is not None:
            cls.status_code_default = status

    def __init__(self, error_response: dict[str, Any], operation_name: str) -> None:
        super().__init__(error_response, operation_name)

    def __reduce__(self) -> Any:
        # botocore's ClientError.__reduce__ names ClientError itself, losing the subclass.
        return (self.__class__, (self.response, self.operation_name))

    @property
    def error(self) -> dict[str, Any]:
        err = self.response.get("Error", {})
        return err if isinstance(err, dict) else {}

    @property
    def error_code(self) -> str:
        return str(self.error.get("Code") or self.code or "Unknown")

    @property
    def message(self) -> str:
        return str(self.error.get("Message") or self.response.get("Message") or "")

    @property
    def status_code(self) -> int | None:
        meta = self.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
        return int(status) if status is not None else self.status_code_default


class ValidationError(ServiceError, status=400):
    """400: the request is invalid (unknown endpoint, bad parameter...)."""


class ModelError(ServiceError, status=424):
    """424: the model container returned an error."""

    @property
    def original_status_code(self) -> int | None:
        value = self.response.get("OriginalStatusCode")
        return int(value) if value is not None else None

    @property
    def original_message(self) -> str | None:
        value = self.response.get("OriginalMessage")
        return str(value) if value is not None else None

    @property
    def log_stream_arn(self) -> str | None:
        value = self.response.get("LogStreamArn")
        return str(value) if value is not None else None


class ModelNotReadyException(ServiceError, status=429):
    """429: the model is not ready to take requests (throttled)."""


class InternalFailure(ServiceError, status=500):
    """500: an internal failure of the service."""


class ServiceUnavailable(ServiceError, status=503):
    """503: the service is unavailable."""


class InternalDependencyException(ServiceError, status=530):
    """530: an internal dependency of the service failed."""


class StreamError(ServiceError, _BotocoreEventStreamError):
    """An error frame inside the response stream; every payload before it was delivered."""

    code = ""  # a kind of error, not one of the service's codes

    @property
    def payload(self) -> bytes:
        raw = self.response.get("_payload", b"")
        return raw if isinstance(raw, bytes) else b""


class ModelStreamError(StreamError):
    """The model stream failed; ``error_code`` is ``ModelInvocationTimeExceeded`` or ``StreamBroken``."""

    @property
    def error_code(self) -> str:
        value = self.response.get("ErrorCode") or self.error.get("ErrorCode")
        return str(value) if value is not None else ""


class InternalStreamFailure(StreamError):
    """The stream failed inside the service."""


class InputValidationError(ValidationError):
    """400 from the bidirectional operation: the request is invalid."""


class InternalServerError(InternalFailure):
    """500 from the bidirectional operation."""


class ServiceUnavailableError(ServiceUnavailable):
    """503 from the bidirectional operation."""


_SERVICE_ERRORS: dict[str, type[ServiceError]] = {
    cls.code: cls
    for cls in (
        InputValidationError,
        InternalServerError,
        ServiceUnavailableError,
        ValidationError,
        ModelError,
        ModelNotReadyException,
        InternalFailure,
        ServiceUnavailable,
        InternalDependencyException,
        ModelStreamError,
        InternalStreamFailure,
    )
}


def service_error_from_response(error_response: dict[str, Any], operation_name: str) -> ServiceError:
    """The typed exception for a parsed botocore error response (unknown codes → ServiceError)."""
    code = str(error_response.get("Error", {}).get("Code", ""))
    cls = _SERVICE_ERRORS.get(code, ServiceError)
    return cls(error_response, operation_name)


def _stream_error_class(code: str) -> type[StreamError]:
    """The class of an in-stream error with this code: its own, or ``StreamError``."""
    cls = _SERVICE_ERRORS.get(code)
    if cls is None or not issubclass(cls, StreamError):
        return StreamError
    return cls


def _stream_exception(exception_type: str, payload: bytes) -> StreamError:
    """Build the exception for a ``:message-type: exception`` frame (called from Rust)."""
    fields: dict[str, Any] = {}
    try:
        decoded = json.loads(payload) if payload else {}
        if isinstance(decoded, dict):
            fields = decoded
    except ValueError:
        fields = {}
    message = fields.get("Message", fields.get("message"))
    if message is None:
        message = payload.decode("utf-8", "replace")
    error: dict[str, Any] = {"Code": exception_type, "Message": str(message)}
    response: dict[str, Any] = {"Error": error, **fields, "_payload": payload}
    if "ErrorCode" in fields:
        error["ErrorCode"] = fields["ErrorCode"]
    return _stream_error_class(exception_type)(response, STREAM_OPERATION)


def _stream_error(code: str, message: str) -> StreamError:
    """Build the exception for a ``:message-type: error`` frame (called from Rust).

    A header the frame lacks is ``""``, as botocore's parser reads it.
    """
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
    return _stream_error_class(code)(response, STREAM_OPERATION)


def _answer_error(status: int, headers: dict[str, str], body: bytes) -> ServiceError:
    """The typed error of a rest-json error answer (called from Rust for the bidirectional
    operation, which botocore has no model of): the code from ``x-amzn-ErrorType`` (or the
    body's ``__type`` / ``code``), the message and modeled fields from the JSON body."""
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    code = headers.get("x-amzn-errortype") or str(document.get("__type") or document.get("code") or "")
    code = code.split(":", 1)[0].rsplit("#", 1)[-1] or f"HTTP{status}"
    message = document.get("message", document.get("Message"))
    if message is None:
        message = body.decode("utf-8", "replace")
    fields = {k: v for k, v in document.items() if k not in ("message", "Message", "__type", "code")}
    response: dict[str, Any] = {
        **fields,
        "Error": {"Code": code, "Message": str(message)},
        "ResponseMetadata": {
            "RequestId": headers.get("x-amzn-requestid"),
            "HTTPStatusCode": status,
            "HTTPHeaders": dict(headers),
        },
    }
    return service_error_from_response(response, DUPLEX_OPERATION)


# --- transport -------------------------------------------------------------------------------


class TransportError(SageStreamError, ConnectionError):
    """The connection could not be made, or failed (no retry is safe once the answer began)."""


class ConnectError(TransportError):
    """No connection to the endpoint, after the retries the client's config allows.

    ``kind`` says why: ``"unreachable"`` (name not resolved, connection refused or reset),
    ``"tls"`` (handshake or certificate), ``"proxy"`` (the proxy refused or was unreachable),
    ``"timeout"`` (see :class:`ConnectTimeoutError`).
    """

    def __init__(self, message: str, kind: str = "unreachable") -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> Any:
        return (type(self), (self.args[0] if self.args else "", self.kind))


class ConnectTimeoutError(ConnectError, TimeoutError):
    """No connection within the connect timeout."""

    def __init__(self, message: str, kind: str = "timeout") -> None:
        super().__init__(message, kind)


class ConnectionLostError(TransportError):
    """The connection was closed or reset before the stream ended."""


class ReadTimeoutError(TransportError, TimeoutError):
    """No bytes arrived within the read timeout."""


class DeadlineExceededError(TransportError, TimeoutError):
    """The stream did not finish within its overall deadline."""


class MalformedResponseError(TransportError):
    """The server answered with a status line or headers that are not valid HTTP (too many or
    too long, a bad status, conflicting lengths, not HTTP/1.x at all); the message names what.
    The server had the request, so it is never sent again."""


class ResponseTooLargeError(TransportError):
    """A body read into memory was larger than its bound (``limit``, in bytes: see
    :class:`sagestream.ResponseLimits`); the connection was closed, and the request is not sent
    again."""

    def __init__(self, message: str, limit: int = 0) -> None:
        super().__init__(message)
        self.limit = limit

    def __reduce__(self) -> Any:
        return (type(self), (self.args[0] if self.args else "", self.limit))


class ContentTypeWarning(UserWarning):
    """``.sse()`` or ``.json_lines()`` was asked of a stream whose content type says it holds no
    such thing (a ``text/plain`` answer, say): the items may never come."""


class FallbackWarning(UserWarning):
    """A client's calls take botocore's own path rather than the request path (several times
    the CPU per call): the message names the reason and what to do. Said once per client."""


class SigningError(SageStreamError, ValueError):
    """The request cannot be signed as it is."""


class InputClosedError(SageStreamError):
    """A duplex session's input was closed already (``close_input()``), or could not be sent."""


# --- asynchronous inference ------------------------------------------------------------------


class AsyncInferenceError(SageStreamError):
    """Base of InvokeEndpointAsync result errors."""

    #: The keyword arguments a subclass takes and keeps as attributes of the same name: what
    #: it is pickled with, besides its message.
    _keywords: ClassVar[tuple[str, ...]] = ()

    def __reduce__(self) -> Any:
        keywords = {name: getattr(self, name) for name in self._keywords}
        return (_rebuild_async_error, (type(self), self.args[0] if self.args else "", keywords))


def _rebuild_async_error(
    cls: type[AsyncInferenceError], message: str, keywords: dict[str, Any]
) -> AsyncInferenceError:
    return cls(message, **keywords)


class AsyncInferenceFailedError(AsyncInferenceError):
    """The asynchronous inference failed; ``failure`` holds the failure document's bytes."""

    _keywords = ("failure", "failure_location")

    def __init__(self, message: str, *, failure: bytes = b"", failure_location: str = "") -> None:
        super().__init__(message)
        self.failure = failure
        self.failure_location = failure_location


class AsyncInferenceTimeoutError(AsyncInferenceError, TimeoutError):
    """Neither the output nor the failure object appeared in time."""

    _keywords = ("output_location", "failure_location")

    def __init__(self, message: str, *, output_location: str = "", failure_location: str = "") -> None:
        super().__init__(message)
        self.output_location = output_location
        self.failure_location = failure_location


#: The names of one release before.
AsyncInferenceFailed = AsyncInferenceFailedError
AsyncInferenceTimeout = AsyncInferenceTimeoutError
