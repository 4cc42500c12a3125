"""Request parameter validation, before anything is sent.

The rules themselves live in :mod:`sagestream._rules`, the one table the emulator answers by
too (botocore's ``sagemaker-runtime`` 2017-05-13 service model, plus the limits in the API
reference that the model does not encode); this module phrases them for callers. Checking
here turns a round trip and a generic ``ValidationError`` into an immediate
:class:`~sagestream.exceptions.ParamValidationError` naming the parameter.

The builders (:func:`stream_params`, :func:`invoke_params`, :func:`async_params`) turn
snake_case keyword arguments into the botocore API parameters of each operation.
"""

from __future__ import annotations

import io
import os
import re
from typing import IO, Any, TypeAlias

from sagestream import _rules
from sagestream.exceptions import ParamValidationError

__all__ = [
    "MAX_BODY_BYTES",
    "Body",
    "check_endpoint_name",
    "check_body",
    "check_content_type",
    "check_custom_attributes",
    "check_target_model",
    "check_target_variant",
    "check_target_container_hostname",
    "check_inference_id",
    "check_enable_explanations",
    "check_inference_component_name",
    "check_session_id",
    "check_invocation_timeout",
    "check_ttl",
    "check_filename",
    "check_s3_uri",
    "check_input_location",
    "check_s3_output_path_extension",
    "stream_params",
    "invoke_params",
    "async_params",
    "duplex_params",
]

#: InvokeEndpoint / InvokeEndpointWithResponseStream request payload limit (6 MiB).
MAX_BODY_BYTES = _rules.MAX_BODY_BYTES

Body: TypeAlias = bytes | bytearray | memoryview | str | IO[bytes]

# Not a service rule: ``input_prefix`` is where the client uploads an async input.
_S3_URI_RE = re.compile(r"s3://([^/]+)(/.*)?", re.DOTALL)


def _fail(name: str, value: object, rule: str) -> ParamValidationError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ParamValidationError(f"invalid {name} {shown}: {rule}")


def _require_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ParamValidationError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _explain(violation: _rules.Violation) -> str:
    """The broken rule in words, for a ParamValidationError."""
    rule = violation.rule
    value = violation.value
    if violation.kind == "min_length":
        if isinstance(value, str) and not value:
            return "must not be empty"
        return f"is {len(value)} characters, at least {violation.limit} needed"  # type: ignore[arg-type]
    if violation.kind == "max_length":
        return f"is {len(value)} characters, at most {violation.limit} allowed"  # type: ignore[arg-type]
    if violation.kind in ("min_value", "max_value"):
        return f"must be between {rule.min} and {rule.max} seconds"
    if violation.char is not None:
        return f"character {violation.char!r} at index {violation.index} is not {rule.describe}"
    if isinstance(value, str) and not value:
        return "must not be empty"
    return f"must be {rule.describe}"


def _check(rule: _rules.Rule, value: object, name: str | None = None) -> Any:
    """``value`` if it satisfies ``rule``; else a ParamValidationError naming ``name``."""
    name = name or rule.member
    violation = rule.violation(value)
    if violation is not None:
        if violation.kind == "type":
            kind = "an int" if rule.type == "integer" else "a str"
            raise ParamValidationError(f"{name} must be {kind}, got {type(value).__name__}")
        raise _fail(name, value, _explain(violation))
    if isinstance(value, str) and not _rules.header_safe(value):
        raise _fail(name, value, "must not contain CR, LF or NUL")
    return value


def check_endpoint_name(value: object, name: str = "EndpointName") -> str:
    """An endpoint name: 1-63 letters, digits and hyphens, no leading or trailing hyphen."""
    if value is None:
        raise ParamValidationError(f"{name} is required")
    result: str = _check(_rules.ENDPOINT_NAME, value, name)
    return result


def check_target_variant(value: object) -> str:
    """A production variant name: same rule as an endpoint name (1-63)."""
    result: str = _check(_rules.TARGET_VARIANT, value)
    return result


def check_target_container_hostname(value: object) -> str:
    """A container hostname in a multi-container endpoint (1-63)."""
    result: str = _check(_rules.TARGET_CONTAINER_HOSTNAME, value)
    return result


def check_inference_component_name(value: object) -> str:
    """An inference component name (1-63)."""
    result: str = _check(_rules.INFERENCE_COMPONENT_NAME, value)
    return result


def check_session_id(value: object, *, allow_new: bool = True) -> str:
    """A stateful session id (≤ 256), or ``NEW_SESSION`` where a session may be opened.

    InvokeEndpointWithResponseStream accepts only an existing id (``allow_new=False``).
    """
    value = _require_str("SessionId", value)
    if value == _rules.NEW_SESSION and not allow_new:
        raise _fail(
            "SessionId",
            value,
            "a streaming request needs an existing session id;"
            " open one with invoke(session_id='NEW_SESSION')",
        )
    result: str = _check(_rules.SESSION_ID_OR_NEW if allow_new else _rules.SESSION_ID, value)
    return result


def check_inference_id(value: object) -> str:
    """An inference id: 1-64 printable US-ASCII characters, not starting with a space."""
    result: str = _check(_rules.INFERENCE_ID, value)
    return result


def check_target_model(value: object) -> str:
    """A multi-model endpoint's model path: 1-1024 printable US-ASCII characters."""
    result: str = _check(_rules.TARGET_MODEL, value)
    return result


def check_enable_explanations(value: object) -> str:
    """A SageMaker Clarify explanation expression: 1-64 characters on one line."""
    result: str = _check(_rules.ENABLE_EXPLANATIONS, value)
    return result


def check_content_type(value: object, name: str = "ContentType") -> str:
    """A MIME type for ContentType / Accept: US-ASCII, at most 1024 characters."""
    result: str = _check(_rules.ACCEPT if name == "Accept" else _rules.CONTENT_TYPE, value, name)
    return result


def check_custom_attributes(value: object) -> str:
    """CustomAttributes: at most 1024 visible US-ASCII characters (RFC 7230 field value)."""
    result: str = _check(_rules.CUSTOM_ATTRIBUTES, value)
    return result


def check_invocation_timeout(value: object) -> int:
    """InvocationTimeoutSeconds: 1-3600."""
    result: int = _check(_rules.INVOCATION_TIMEOUT_SECONDS, value)
    return result


def check_ttl(value: object) -> int:
    """RequestTTLSeconds: 60-21600 (6 hours)."""
    result: int = _check(_rules.REQUEST_TTL_SECONDS, value)
    return result


def check_filename(value: object) -> str:
    """Filename of the async output: 1-32 characters, at most one dot, starting alphanumeric."""
    result: str = _check(_rules.FILENAME, value)
    return result


def check_s3_output_path_extension(value: object) -> str:
    """S3OutputPathExtension: 1-512 characters of ``[a-zA-Z0-9!_.*'()/-]``, not a URI."""
    result: str = _check(_rules.S3_OUTPUT_PATH_EXTENSION, value)
    return result


def check_s3_uri(value: object, name: str = "S3Uri") -> str:
    """An ``s3://bucket/key`` URI of 1-1024 characters."""
    value = _require_str(name, value)
    if not 1 <= len(value) <= 1024:
        raise _fail(name, value, f"is {len(value)} characters, must be 1 to 1024")
    if _S3_URI_RE.fullmatch(value) is None:
        raise _fail(name, value, "must be an s3://bucket/key URI")
    return value


def check_input_location(value: object) -> str:
    """InputLocation: an ``s3://`` (or ``https://``) URI of 1-1024 characters."""
    if value is None:
        raise ParamValidationError("InputLocation is required")
    result: str = _check(_rules.INPUT_LOCATION, value)
    return result


def check_body(value: object) -> bytes | IO[bytes]:
    """A request body of at most 6,291,456 bytes; ``str`` is encoded as UTF-8.

    Returns bytes, or the file object itself (its remaining size checked when it is seekable).
    """
    if value is None:
        raise ParamValidationError("Body is required")
    if isinstance(value, str):
        data: bytes = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif hasattr(value, "read"):
        size = _remaining_size(value)
        if size is not None and size > MAX_BODY_BYTES:
            raise ParamValidationError(f"Body is {size} bytes, at most {MAX_BODY_BYTES} allowed")
        return value  # type: ignore[return-value]
    else:
        raise ParamValidationError(
            f"Body must be bytes, str or a binary file object, got {type(value).__name__}"
        )
    if len(data) > MAX_BODY_BYTES:
        raise ParamValidationError(f"Body is {len(data)} bytes, at most {MAX_BODY_BYTES} allowed")
    return data


def check_deadline(value: float | None) -> float | None:
    """An overall stream deadline: ``None`` or a positive number of seconds."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
    ):
        raise ParamValidationError(f"deadline must be a positive number of seconds, got {value!r}")
    return value


def _remaining_size(fileobj: Any) -> int | None:
    try:
        position = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(position)
        return int(end - position)
    except (AttributeError, OSError, ValueError):
        pass
    try:
        return os.fstat(fileobj.fileno()).st_size - int(fileobj.tell())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _member(op: _rules.Operation, member: str, value: object) -> Any:
    """``value`` checked by the rule ``op`` gives ``member``."""
    if member == "EndpointName":
        return check_endpoint_name(value)
    if member == "Body":
        return check_body(value)
    if member == "InputLocation":
        return check_input_location(value)
    if member == "SessionId":
        return check_session_id(value, allow_new=op.members[member].rule is _rules.SESSION_ID_OR_NEW)
    return _check(op.members[member].rule, value)


def _build(op: _rules.Operation, values: dict[str, object]) -> dict[str, Any]:
    """The botocore parameters of ``op``: required members always, the others when set."""
    params: dict[str, Any] = {}
    for member, value in values.items():
        if value is not None or op.members[member].required:
            params[member] = _member(op, member, value)
    return params


def stream_params(
    endpoint_name: str,
    body: Body,
    *,
    content_type: str | None = None,
    accept: str | None = None,
    custom_attributes: str | None = None,
    target_variant: str | None = None,
    target_container_hostname: str | None = None,
    inference_id: str | None = None,
    inference_component_name: str | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """botocore parameters for InvokeEndpointWithResponseStream, validated."""
    return _build(
        _rules.INVOKE_STREAM,
        {
            "EndpointName": endpoint_name,
            "Body": body,
            "ContentType": content_type,
            "Accept": accept,
            "CustomAttributes": custom_attributes,
            "TargetVariant": target_variant,
            "TargetContainerHostname": target_container_hostname,
            "InferenceId": inference_id,
            "InferenceComponentName": inference_component_name,
            "SessionId": session_id,
        },
    )


def invoke_params(
    endpoint_name: str,
    body: Body,
    *,
    content_type: str | None = None,
    accept: str | None = None,
    custom_attributes: str | None = None,
    target_model: str | None = None,
    target_variant: str | None = None,
    target_container_hostname: str | None = None,
    inference_id: str | None = None,
    enable_explanations: str | None = None,
    inference_component_name: str | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """botocore parameters for InvokeEndpoint, validated."""
    return _build(
        _rules.INVOKE,
        {
            "EndpointName": endpoint_name,
            "Body": body,
            "ContentType": content_type,
            "Accept": accept,
            "CustomAttributes": custom_attributes,
            "TargetModel": target_model,
            "TargetVariant": target_variant,
            "TargetContainerHostname": target_container_hostname,
            "InferenceId": inference_id,
            "EnableExplanations": enable_explanations,
            "InferenceComponentName": inference_component_name,
            "SessionId": session_id,
        },
    )


def async_params(
    endpoint_name: str,
    input_location: str,
    *,
    content_type: str | None = None,
    accept: str | None = None,
    custom_attributes: str | None = None,
    inference_id: str | None = None,
    request_ttl_seconds: int | None = None,
    invocation_timeout_seconds: int | None = None,
    s3_output_path_extension: str | None = None,
    filename: str | None = None,
) -> dict[str, Any]:
    """botocore parameters for InvokeEndpointAsync, validated."""
    return _build(
        _rules.INVOKE_ASYNC,
        {
            "EndpointName": endpoint_name,
            "InputLocation": input_location,
            "ContentType": content_type,
            "Accept": accept,
            "CustomAttributes": custom_attributes,
            "InferenceId": inference_id,
            "RequestTTLSeconds": request_ttl_seconds,
            "InvocationTimeoutSeconds": invocation_timeout_seconds,
            "S3OutputPathExtension": s3_output_path_extension,
            "Filename": filename,
        },
    )


def duplex_params(
    endpoint_name: str,
    *,
    target_variant: str | None = None,
    model_invocation_path: str | None = None,
    model_query_string: str | None = None,
) -> dict[str, Any]:
    """Parameters of InvokeEndpointWithBidirectionalStream, validated."""
    return _build(
        _rules.INVOKE_DUPLEX,
        {
            "EndpointName": endpoint_name,
            "TargetVariant": target_variant,
            "ModelInvocationPath": model_invocation_path,
            "ModelQueryString": model_query_string,
        },
    )
