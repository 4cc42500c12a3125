"""Request parameter validation, before anything is sent.

Each rule below is one SageMaker Runtime enforces (botocore's ``sagemaker-runtime`` 2017-05-13
service model, plus the limits in the API reference that the model does not encode). Checking
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
]

#: InvokeEndpoint / InvokeEndpointWithResponseStream request payload limit (6 MiB).
MAX_BODY_BYTES = 6_291_456

Body: TypeAlias = bytes | bytearray | memoryview | str | IO[bytes]

# Patterns from the service model (Java regex syntax there; equivalent Python here). The model's
# patterns are anchored only at the start for some shapes; the service matches the whole value.
_NAME_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")  # EndpointName, TargetVariant, hostname
_COMPONENT_RE = re.compile(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?")
_SESSION_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
# `\A\S[\p{Print}]*\z`: \p{Print} is printable US-ASCII in Java's default mode.
_PRINTABLE_ID_RE = re.compile(r"[\x21-\x7e][\x20-\x7e]*")
_FILENAME_RE = re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9\-_.]*")
_S3_OUTPUT_EXT_RE = re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+")
_INPUT_LOCATION_RE = re.compile(r"(https|s3)://([^/]+)/?(.*)", re.DOTALL)
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


def _check_name(name: str, value: object, pattern: re.Pattern[str], max_len: int, rule: str) -> str:
    value = _require_str(name, value)
    if not value:
        raise _fail(name, value, "must not be empty")
    if len(value) > max_len:
        raise _fail(name, value, f"is {len(value)} characters, at most {max_len} allowed")
    if pattern.fullmatch(value) is None:
        raise _fail(name, value, rule)
    return value


_ALNUM_HYPHEN = "letters, digits and hyphens, starting and ending with a letter or digit"


def check_endpoint_name(value: object, name: str = "EndpointName") -> str:
    """An endpoint name: 1-63 letters, digits and hyphens, no leading or trailing hyphen."""
    if value is None:
        raise ParamValidationError(f"{name} is required")
    return _check_name(name, value, _NAME_RE, 63, _ALNUM_HYPHEN)


def check_target_variant(value: object) -> str:
    """A production variant name: same rule as an endpoint name (1-63)."""
    return _check_name("TargetVariant", value, _NAME_RE, 63, _ALNUM_HYPHEN)


def check_target_container_hostname(value: object) -> str:
    """A container hostname in a multi-container endpoint (1-63)."""
    return _check_name("TargetContainerHostname", value, _NAME_RE, 63, _ALNUM_HYPHEN)


def check_inference_component_name(value: object) -> str:
    """An inference component name (1-63)."""
    return _check_name("InferenceComponentName", value, _COMPONENT_RE, 63, _ALNUM_HYPHEN)


def check_session_id(value: object, *, allow_new: bool = True) -> str:
    """A stateful session id (≤ 256), or ``NEW_SESSION`` where a session may be opened.

    InvokeEndpointWithResponseStream accepts only an existing id (``allow_new=False``).
    """
    value = _require_str("SessionId", value)
    if value == "NEW_SESSION":
        if allow_new:
            return value
        raise _fail(
            "SessionId",
            value,
            "a streaming request needs an existing session id;"
            " open one with invoke(session_id='NEW_SESSION')",
        )
    return _check_name("SessionId", value, _SESSION_RE, 256, _ALNUM_HYPHEN)


def _check_printable_id(name: str, value: object, max_len: int) -> str:
    value = _require_str(name, value)
    if not value:
        raise _fail(name, value, "must not be empty")
    if len(value) > max_len:
        raise _fail(name, value, f"is {len(value)} characters, at most {max_len} allowed")
    if _PRINTABLE_ID_RE.fullmatch(value) is None:
        raise _fail(name, value, "must be printable US-ASCII and must not start with whitespace")
    return value


def check_inference_id(value: object) -> str:
    """An inference id: 1-64 printable US-ASCII characters, not starting with a space."""
    return _check_printable_id("InferenceId", value, 64)


def check_target_model(value: object) -> str:
    """A multi-model endpoint's model path: 1-1024 printable US-ASCII characters."""
    return _check_printable_id("TargetModel", value, 1024)


def check_enable_explanations(value: object) -> str:
    """A SageMaker Clarify explanation expression: 1-64 characters."""
    value = _require_str("EnableExplanations", value)
    if not 1 <= len(value) <= 64:
        raise _fail("EnableExplanations", value, "must be 1 to 64 characters")
    if any(c in value for c in "\r\n\0"):
        raise _fail("EnableExplanations", value, "must not contain CR, LF or NUL")
    return value


def _check_ascii_header(name: str, value: object, max_len: int = 1024) -> str:
    value = _require_str(name, value)
    if len(value) > max_len:
        raise _fail(name, value, f"is {len(value)} characters, at most {max_len} allowed")
    if not value.isascii():
        raise _fail(name, value, "must be US-ASCII")
    if any(c in value for c in "\r\n\0"):
        raise _fail(name, value, "must not contain CR, LF or NUL")
    return value


def check_content_type(value: object, name: str = "ContentType") -> str:
    """A MIME type for ContentType / Accept: US-ASCII, at most 1024 characters."""
    return _check_ascii_header(name, value)


def check_custom_attributes(value: object) -> str:
    """CustomAttributes: at most 1024 visible US-ASCII characters (RFC 7230 field value)."""
    value = _require_str("CustomAttributes", value)
    if len(value) > 1024:
        raise _fail("CustomAttributes", value, f"is {len(value)} characters, at most 1024 allowed")
    for index, char in enumerate(value):
        if not (" " <= char <= "~" or char == "\t"):
            raise _fail(
                "CustomAttributes",
                value,
                f"character {char!r} at index {index} is not visible US-ASCII",
            )
    return value


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamValidationError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise _fail(name, value, f"must be between {low} and {high} seconds")
    return value


def check_invocation_timeout(value: object) -> int:
    """InvocationTimeoutSeconds: 1-3600."""
    return _check_int("InvocationTimeoutSeconds", value, 1, 3600)


def check_ttl(value: object) -> int:
    """RequestTTLSeconds: 60-21600 (6 hours)."""
    return _check_int("RequestTTLSeconds", value, 60, 21600)


def check_filename(value: object) -> str:
    """Filename of the async output: 1-32 characters, at most one dot, starting alphanumeric."""
    value = _require_str("Filename", value)
    if not 1 <= len(value) <= 32:
        raise _fail("Filename", value, f"is {len(value)} characters, must be 1 to 32")
    if _FILENAME_RE.fullmatch(value) is None:
        raise _fail(
            "Filename",
            value,
            "must start with a letter or digit, use letters, digits, '-', '_' and at most one '.'",
        )
    return value


def check_s3_output_path_extension(value: object) -> str:
    """S3OutputPathExtension: 1-512 characters of ``[a-zA-Z0-9!_.*'()/-]``, not a URI."""
    value = _require_str("S3OutputPathExtension", value)
    if not 1 <= len(value) <= 512:
        raise _fail("S3OutputPathExtension", value, "must be 1 to 512 characters")
    if _S3_OUTPUT_EXT_RE.fullmatch(value) is None:
        raise _fail(
            "S3OutputPathExtension",
            value,
            "must be a relative path of letters, digits and !_.*'()/- (not an s3: or https: URI)",
        )
    return value


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
    value = _require_str("InputLocation", value)
    if not 1 <= len(value) <= 1024:
        raise _fail("InputLocation", value, f"is {len(value)} characters, must be 1 to 1024")
    if _INPUT_LOCATION_RE.fullmatch(value) is None:
        raise _fail("InputLocation", value, "must be an s3://bucket/key (or https://) URI")
    return value


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


def _put(params: dict[str, Any], key: str, value: object, check: Any) -> None:
    if value is not None:
        params[key] = check(value)


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
    params: dict[str, Any] = {
        "EndpointName": check_endpoint_name(endpoint_name),
        "Body": check_body(body),
    }
    _put(params, "ContentType", content_type, check_content_type)
    _put(params, "Accept", accept, lambda v: check_content_type(v, "Accept"))
    _put(params, "CustomAttributes", custom_attributes, check_custom_attributes)
    _put(params, "TargetVariant", target_variant, check_target_variant)
    _put(params, "TargetContainerHostname", target_container_hostname, check_target_container_hostname)
    _put(params, "InferenceId", inference_id, check_inference_id)
    _put(params, "InferenceComponentName", inference_component_name, check_inference_component_name)
    _put(params, "SessionId", session_id, lambda v: check_session_id(v, allow_new=False))
    return params


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
    params: dict[str, Any] = {
        "EndpointName": check_endpoint_name(endpoint_name),
        "Body": check_body(body),
    }
    _put(params, "ContentType", content_type, check_content_type)
    _put(params, "Accept", accept, lambda v: check_content_type(v, "Accept"))
    _put(params, "CustomAttributes", custom_attributes, check_custom_attributes)
    _put(params, "TargetModel", target_model, check_target_model)
    _put(params, "TargetVariant", target_variant, check_target_variant)
    _put(params, "TargetContainerHostname", target_container_hostname, check_target_container_hostname)
    _put(params, "InferenceId", inference_id, check_inference_id)
    _put(params, "EnableExplanations", enable_explanations, check_enable_explanations)
    _put(params, "InferenceComponentName", inference_component_name, check_inference_component_name)
    _put(params, "SessionId", session_id, check_session_id)
    return params


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
    params: dict[str, Any] = {
        "EndpointName": check_endpoint_name(endpoint_name),
        "InputLocation": check_input_location(input_location),
    }
    _put(params, "ContentType", content_type, check_content_type)
    _put(params, "Accept", accept, lambda v: check_content_type(v, "Accept"))
    _put(params, "CustomAttributes", custom_attributes, check_custom_attributes)
    _put(params, "InferenceId", inference_id, check_inference_id)
    _put(params, "RequestTTLSeconds", request_ttl_seconds, check_ttl)
    _put(params, "InvocationTimeoutSeconds", invocation_timeout_seconds, check_invocation_timeout)
    _put(params, "S3OutputPathExtension", s3_output_path_extension, check_s3_output_path_extension)
    _put(params, "Filename", filename, check_filename)
    return params
