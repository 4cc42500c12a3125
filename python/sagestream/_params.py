"""The clients' own parameter checks, and the names the table's checks had before it.

The service's rules and the operations' members live in :mod:`sagestream.service` (on
:mod:`sagestream._rules`); a call validates its keywords with :meth:`Operation.params
<sagestream.service.Operation.params>`. Here: what is the client's rather than the service's
(``deadline``, the S3 prefix an async input is uploaded to), and the per-member functions and
builders of earlier releases, each one line on the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any, TypeAlias

from sagestream import _rules, service
from sagestream.exceptions import ParamValidationError

__all__ = [
    "MAX_BODY_BYTES",
    "Body",
    "async_params",
    "check_content_type",
    "check_deadline",
    "check_endpoint_name",
    "check_s3_uri",
    "check_session_id",
    "duplex_params",
    "invoke_params",
    "stream_params",
]

#: InvokeEndpoint / InvokeEndpointWithResponseStream request payload limit (6 MiB).
MAX_BODY_BYTES = _rules.MAX_BODY_BYTES

Body: TypeAlias = bytes | bytearray | memoryview | str | IO[bytes]


def check_deadline(value: float | None) -> float | None:
    """An overall call deadline: ``None`` or a positive number of seconds."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
    ):
        raise ParamValidationError(f"deadline must be a positive number of seconds, got {value!r}")
    return value


def check_s3_uri(value: object, name: str = "S3Uri") -> str:
    """An ``s3://bucket/key`` URI of 1-1024 characters."""
    result: str = _rules.S3_PREFIX.check(value, name)
    return result


# --- the names of earlier releases, on the table -----------------------------------------------

#: Earlier releases' names that are not ``check_`` + the member's keyword.
_EARLIER_NAMES = {
    "check_ttl": "request_ttl_seconds",
    "check_invocation_timeout": "invocation_timeout_seconds",
}


def __getattr__(name: str) -> Callable[[object], Any]:
    """``check_<keyword>`` of earlier releases (``check_target_variant``, ``check_body``...):
    the check of that member's rule in the operation table, named by the member."""
    keyword = _EARLIER_NAMES.get(name) or name.removeprefix("check_")
    members = (op.by_keyword.get(keyword) for op in service.OPERATIONS.values())
    member = next((m for m in members if m is not None), None) if name.startswith("check_") else None
    if member is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    rule = member.rule

    def check(value: object) -> Any:
        return rule.check(value)

    check.__name__ = name
    check.__doc__ = f"``value`` if it satisfies the {rule.member} rule (sagestream.service)."
    return check


def check_endpoint_name(value: object, name: str = "EndpointName") -> str:
    """An endpoint name: 1-63 letters, digits and hyphens, no leading or trailing hyphen."""
    result: str = _rules.ENDPOINT_NAME.check(value, name)
    return result


def check_content_type(value: object, name: str = "ContentType") -> str:
    """A MIME type for ContentType / Accept: US-ASCII, at most 1024 characters."""
    result: str = (_rules.ACCEPT if name == "Accept" else _rules.CONTENT_TYPE).check(value, name)
    return result


def check_session_id(value: object, *, allow_new: bool = True) -> str:
    """A stateful session id (≤ 256), or ``NEW_SESSION`` where a session may be opened."""
    result: str = (_rules.SESSION_ID_OR_NEW if allow_new else _rules.SESSION_ID).check(value)
    return result


def stream_params(endpoint_name: str, body: Body, **options: Any) -> dict[str, Any]:
    """botocore parameters for InvokeEndpointWithResponseStream, validated."""
    return service.INVOKE_STREAM.params({"endpoint_name": endpoint_name, "body": body, **options})


def invoke_params(endpoint_name: str, body: Body, **options: Any) -> dict[str, Any]:
    """botocore parameters for InvokeEndpoint, validated."""
    return service.INVOKE.params({"endpoint_name": endpoint_name, "body": body, **options})


def async_params(endpoint_name: str, input_location: str, **options: Any) -> dict[str, Any]:
    """botocore parameters for InvokeEndpointAsync (input in S3), validated."""
    values = {"endpoint_name": endpoint_name, "input_location": input_location, **options}
    return service.INVOKE_ASYNC.params(values)


def duplex_params(endpoint_name: str, **options: Any) -> dict[str, Any]:
    """Parameters of InvokeEndpointWithBidirectionalStream, validated."""
    return service.INVOKE_DUPLEX.params({"endpoint_name": endpoint_name, **options})
