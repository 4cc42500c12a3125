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
    "check_body",
    "check_content_type",
    "check_custom_attributes",
    "check_deadline",
    "check_enable_explanations",
    "check_endpoint_name",
    "check_filename",
    "check_inference_component_name",
    "check_inference_id",
    "check_input_location",
    "check_invocation_timeout",
    "check_s3_output_path_extension",
    "check_s3_uri",
    "check_session_id",
    "check_target_container_hostname",
    "check_target_model",
    "check_target_variant",
    "check_ttl",
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


def _checker(rule: _rules.Rule) -> Callable[[object], Any]:
    def check(value: object) -> Any:
        return rule.check(value)

    check.__doc__ = f"``value`` if it satisfies the {rule.member} rule (sagestream.service)."
    return check


check_target_variant = _checker(_rules.TARGET_VARIANT)
check_target_container_hostname = _checker(_rules.TARGET_CONTAINER_HOSTNAME)
check_inference_component_name = _checker(_rules.INFERENCE_COMPONENT_NAME)
check_inference_id = _checker(_rules.INFERENCE_ID)
check_target_model = _checker(_rules.TARGET_MODEL)
check_enable_explanations = _checker(_rules.ENABLE_EXPLANATIONS)
check_custom_attributes = _checker(_rules.CUSTOM_ATTRIBUTES)
check_invocation_timeout = _checker(_rules.INVOCATION_TIMEOUT_SECONDS)
check_ttl = _checker(_rules.REQUEST_TTL_SECONDS)
check_filename = _checker(_rules.FILENAME)
check_s3_output_path_extension = _checker(_rules.S3_OUTPUT_PATH_EXTENSION)
check_input_location = _checker(_rules.INPUT_LOCATION)
check_body = _checker(_rules.BODY)


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
