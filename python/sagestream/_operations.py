"""The three operations, written once for both clients: what each call's answer becomes.

Parameters are validated and named by the operation table (:mod:`sagestream.service`); requests
are built from it and sent by :mod:`sagestream._call`; here the answers become results — the
same whichever client, and whichever path (the request path or botocore's own) carried them.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Any

from sagestream.exceptions import ServiceError
from sagestream.service import INVOKE, INVOKE_ASYNC, INVOKE_STREAM, Operation, snake

__all__ = [
    "ASYNC_OPERATION",
    "INVOKE_OPERATION",
    "STREAM_OPERATION",
    "AsyncAnswer",
    "InvokeResult",
    "StreamInfo",
    "parse_new_session",
]

STREAM_OPERATION = INVOKE_STREAM.name
INVOKE_OPERATION = INVOKE.name
ASYNC_OPERATION = INVOKE_ASYNC.name


def parse_new_session(value: str | None) -> tuple[str | None, _dt.datetime | None]:
    """Split ``X-Amzn-SageMaker-New-Session-Id`` (``<id>; Expires=<ISO time>``)."""
    if not value:
        return None, None
    session_id, _, rest = value.partition(";")
    expires: _dt.datetime | None = None
    for attribute in rest.split(";"):
        name, _, raw = attribute.strip().partition("=")
        if name.strip().lower() == "expires" and raw.strip():
            text = raw.strip()
            if text.endswith("Z"):
                text = text[:-1] + "+00:00"
            try:
                expires = _dt.datetime.fromisoformat(text)
            except ValueError:
                expires = None
    return session_id.strip() or None, expires


def _outputs(operation: Operation, answer: dict[str, Any]) -> dict[str, Any]:
    """The result fields of an answer's header members (the table's ``outputs``), by keyword."""
    values = {snake(key): answer.get(key) for key in operation.outputs}
    values["response_metadata"] = dict(answer.get("ResponseMetadata") or {})
    return values


@dataclass
class InvokeResult:
    """The answer of InvokeEndpoint."""

    body: bytes
    content_type: str | None = None
    invoked_production_variant: str | None = None
    custom_attributes: str | None = None
    #: With ``session_id="NEW_SESSION"``: the id of the session the endpoint opened.
    new_session_id: str | None = None
    #: When the new session expires, if the service said.
    new_session_expires: _dt.datetime | None = None
    #: The id of a session the request closed.
    closed_session_id: str | None = None
    response_metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding)

    @classmethod
    def of(cls, answer: dict[str, Any], body: bytes) -> InvokeResult:
        """The result of a parsed botocore-style answer (``ContentType``, ``NewSessionId``...)."""
        values = _outputs(INVOKE, answer)
        new_id, expires = parse_new_session(values.pop("new_session_id"))
        return cls(body, new_session_id=new_id, new_session_expires=expires, **values)


@dataclass(frozen=True)
class StreamInfo:
    """What the headers of a stream's answer say (the same for both clients)."""

    content_type: str | None
    invoked_production_variant: str | None
    custom_attributes: str | None
    response_metadata: dict[str, Any]

    @classmethod
    def of(cls, answer: dict[str, Any]) -> StreamInfo:
        """From a botocore-style answer (``ContentType``, ..., ``ResponseMetadata``)."""
        return cls(**_outputs(INVOKE_STREAM, answer))

    @property
    def headers(self) -> dict[str, str]:
        """The HTTP response headers (lower-case names)."""
        return dict(self.response_metadata.get("HTTPHeaders") or {})

    @property
    def request_id(self) -> str | None:
        """The service's request id."""
        value = self.response_metadata.get("RequestId")
        return str(value) if value is not None else None


@dataclass(frozen=True)
class AsyncAnswer:
    """The 202 answer of InvokeEndpointAsync."""

    inference_id: str
    output_location: str
    failure_location: str

    @classmethod
    def of(cls, answer: dict[str, Any]) -> AsyncAnswer:
        """From a botocore-style answer (``InferenceId``, ``OutputLocation``, ...)."""
        return cls(
            inference_id=str(answer["InferenceId"]),
            output_location=str(answer["OutputLocation"]),
            failure_location=str(answer.get("FailureLocation") or ""),
        )

    @classmethod
    def parse(cls, output_headers: dict[str, Any], body: bytes) -> AsyncAnswer:
        """From the answer's headers (already named) and its JSON body."""
        try:
            document = json.loads(body) if body else {}
        except ValueError:
            document = {}
        if not isinstance(document, dict) or "InferenceId" not in document:
            raise ServiceError(
                {"Error": {"Code": "InvalidResponse", "Message": f"no InferenceId in {body[:200]!r}"}},
                ASYNC_OPERATION,
            )
        return cls.of({**output_headers, "InferenceId": document["InferenceId"]})
