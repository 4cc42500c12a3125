"""Wire format of the emulated service: error responses and event stream frames.

The error bodies and headers follow what botocore's rest-json parser reads: the error code
comes from the ``x-amzn-ErrorType`` header, the message from ``message`` / ``Message`` in the
JSON body, and the members of a modeled error shape (``ModelError``'s ``OriginalStatusCode``,
``OriginalMessage``, ``LogStreamArn``) from JSON keys named like the members.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from sagestream import eventstream

#: The account id the emulator pretends to run in (appears in messages and ARNs).
ACCOUNT_ID = "123456789012"
#: The production variant every endpoint has.
DEFAULT_VARIANT = "AllTraffic"

EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"

_PAYLOAD_HEADERS = [
    (":event-type", "PayloadPart"),
    (":content-type", "application/octet-stream"),
    (":message-type", "event"),
]


class EmulatorError(Exception):
    """An error answered as the service answers it: HTTP status, error code and JSON body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: dict[str, Any] | None = None,
        message_key: str = "Message",
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.message_key = message_key

    def body(self) -> dict[str, Any]:
        """The JSON document sent as the response body."""
        doc: dict[str, Any] = dict(self.fields)
        doc[self.message_key] = self.message
        return doc

    def response(self, request_id: str) -> web.Response:
        """The HTTP response carrying this error."""
        return web.Response(
            status=self.status,
            body=json.dumps(self.body()).encode(),
            headers={
                "x-amzn-ErrorType": self.code,
                "x-amzn-RequestId": request_id,
                "Content-Type": "application/json",
            },
        )


class S3StyleError(EmulatorError):
    """An error answered as S3 answers it (an XML document), for S3 clients that reached the
    runtime port by mistake."""

    def response(self, request_id: str) -> web.Response:
        """The HTTP response carrying this error."""
        return web.Response(
            status=self.status,
            body=s3_error_body(self.code, self.message, request_id),
            headers={"x-amz-request-id": request_id, "Content-Type": "application/xml"},
        )


def s3_error_body(code: str, message: str, request_id: str) -> bytes:
    """An S3 XML error document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{escape(request_id)}</RequestId></Error>"
    ).encode()


def validation_error(message: str) -> EmulatorError:
    """ValidationError (400)."""
    return EmulatorError(400, "ValidationError", message)


def model_error(endpoint: str, region: str, original_status: int, original_message: str) -> EmulatorError:
    """ModelError (424) worded like the service: the container answered ``original_status``."""
    kind = "client" if original_status < 500 else "server"
    log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
    message = (
        f"Received {kind} error ({original_status}) from primary with message "
        f'"{original_message}". See https://{region}.console.aws.amazon.com/cloudwatch/home?'
        f"region={region}#logEventViewer:group={log_group} in account {ACCOUNT_ID} "
        "for more information."
    )
    return EmulatorError(
        424,
        "ModelError",
        message,
        fields={
            "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
            "OriginalStatusCode": original_status,
            "OriginalMessage": original_message,
            "LogStreamArn": f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{log_group}",
        },
    )


def chunk(data: bytes) -> bytes:
    """``data`` framed as one HTTP/1.1 chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class FrameEncoder:
    """Encodes PayloadPart frames with the Rust encoder, fast for repeated payload sizes.

    Frames whose payloads have the same length share everything up to the payload (prelude,
    prelude CRC and headers), so the prefix is encoded once per length by ``eventstream.encode`` and
    the message CRC is continued over the payload with zlib.
    """

    _MAX_CACHED = 4096

    def __init__(self) -> None:
        self._prefixes: dict[int, tuple[bytes, int]] = {}

    def _prefix(self, size: int) -> tuple[bytes, int]:
        cached = self._prefixes.get(size)
        if cached is None:
            template = eventstream.encode(_PAYLOAD_HEADERS, bytes(size))
            prefix = template[: len(template) - size - 4]
            cached = (prefix, zlib.crc32(prefix))
            if len(self._prefixes) >= self._MAX_CACHED:
                self._prefixes.clear()
            self._prefixes[size] = cached
        return cached

    def payload_frame(self, payload: bytes) -> bytes:
        """One PayloadPart frame carrying ``payload``."""
        prefix, crc = self._prefix(len(payload))
        return b"%b%b%b" % (prefix, payload, struct.pack(">I", zlib.crc32(payload, crc)))

    def payload_chunks(self, payloads: list[bytes]) -> bytes:
        """PayloadPart frames, each in its own HTTP chunk, joined for one transport write."""
        out = []
        for payload in payloads:
            prefix, crc = self._prefix(len(payload))
            out.append(
                b"%x\r\n%b%b%b\r\n"
                % (
                    len(prefix) + len(payload) + 4,
                    prefix,
                    payload,
                    struct.pack(">I", zlib.crc32(payload, crc)),
                )
            )
        return b"".join(out)


def exception_frame(exception_type: str, message: str, error_code: str | None = None) -> bytes:
    """A ``:message-type: exception`` frame (ModelStreamError / InternalStreamFailure)."""
    doc: dict[str, str] = {"Message": message}
    if error_code is not None:
        doc["ErrorCode"] = error_code
    return eventstream.encode(
        [
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json.dumps(doc).encode(),
    )


def error_frame(code: str, message: str) -> bytes:
    """A ``:message-type: error`` frame: an unmodeled error, code and message in headers."""
    return eventstream.encode(
        [(":error-code", code), (":error-message", message), (":message-type", "error")], b""
    )
