"""Request parameters named as boto3 names them, turned into sagestream's keyword arguments.

Frameworks and their users give SageMaker's optional request parameters by boto3's names
(langchain-aws's ``endpoint_kwargs``, Strands' ``additional_args``); the clients take
snake_case keywords. sagestream's own names are accepted too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["call_parameters"]

# The streaming operation has no TargetModel / EnableExplanations.
_STREAM = {
    "ContentType": "content_type",
    "Accept": "accept",
    "CustomAttributes": "custom_attributes",
    "TargetVariant": "target_variant",
    "TargetContainerHostname": "target_container_hostname",
    "InferenceId": "inference_id",
    "InferenceComponentName": "inference_component_name",
    "SessionId": "session_id",
}
_INVOKE = {**_STREAM, "TargetModel": "target_model", "EnableExplanations": "enable_explanations"}
_STREAM_NAMES = frozenset(_STREAM.values())
_INVOKE_NAMES = frozenset(_INVOKE.values())


def call_parameters(given: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
    """``invoke_stream`` (``stream``) or ``invoke`` keywords of boto3-named ``given`` (None values
    dropped); TypeError names a parameter the operation does not have."""
    names, known = (_STREAM, _STREAM_NAMES) if stream else (_INVOKE, _INVOKE_NAMES)
    params: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        name = names.get(key, key if key in known else None)
        if name is None:
            operation = "InvokeEndpointWithResponseStream" if stream else "InvokeEndpoint"
            raise TypeError(f"{key!r} is not a parameter of {operation}")
        params[name] = value
    return params
