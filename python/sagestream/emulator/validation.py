"""The service's ``ValidationError`` answers, from the rules table in :mod:`sagestream._rules`.

Messages follow the service's wording ("1 validation error detected: Value 'x' at
'inferenceId' failed to satisfy constraint: ..."); every broken rule of a request is reported
in one answer, joined by "; ", and sensitive values (CustomAttributes, Body) are not repeated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagestream import service

from .protocol import EmulatorError, validation_error

__all__ = [
    "body_too_large",
    "check_async_input",
    "check_endpoint_name",
    "check_headers",
    "violation_message",
]


def violation_message(violation: service.Violation) -> str:
    """One violation in the service's words."""
    rule = violation.rule
    where = (
        f"Value at '{rule.wire_name}'"
        if rule.sensitive
        else f"Value '{violation.value}' at '{rule.wire_name}'"
    )
    if violation.kind == "min_length":
        constraint = f"Member must have length greater than or equal to {violation.limit}"
    elif violation.kind == "max_length":
        constraint = f"Member must have length less than or equal to {violation.limit}"
    elif violation.kind == "min_value":
        constraint = f"Member must have value greater than or equal to {violation.limit}"
    elif violation.kind == "max_value":
        constraint = f"Member must have value less than or equal to {violation.limit}"
    elif violation.strict_only and rule.stricter is not None:
        constraint = rule.stricter
    else:
        constraint = f"Member must satisfy regular expression pattern: {rule.pattern}"
    return f"{where} failed to satisfy constraint: {constraint}"


def _detected(messages: list[str]) -> EmulatorError:
    count = len(messages)
    plural = "error" if count == 1 else "errors"
    return validation_error(f"{count} validation {plural} detected: " + "; ".join(messages))


def check_endpoint_name(name: str) -> None:
    """The endpoint name from the request's path."""
    violation = service.ENDPOINT_NAME.violation(name)
    if violation is not None:
        raise _detected([violation_message(violation)])


def check_headers(op: service.Operation, headers: Mapping[str, str]) -> dict[str, Any]:
    """Every header member of ``op`` present in ``headers``, checked: member → value.

    Integer members come back as ``int``. All broken rules are reported in one ValidationError.
    """
    messages: list[str] = []
    values: dict[str, Any] = {}
    for member, entry in op.members.items():
        if entry.location != "header":
            continue
        raw = headers.get(entry.wire_name)
        if raw is None:
            if entry.required:
                messages.append(
                    f"Value null at '{entry.rule.wire_name}' failed to satisfy constraint: "
                    "Member must not be null"
                )
            continue
        value: Any = raw
        if entry.rule.type == "integer":
            try:
                value = int(raw)
            except ValueError:
                raise validation_error(
                    f"Value '{raw}' at '{entry.rule.wire_name}' is not a valid integer."
                ) from None
        violation = entry.rule.violation(value)
        if violation is not None:
            messages.append(violation_message(violation))
        else:
            values[member] = value
    if messages:
        raise _detected(messages)
    return values


def body_too_large(limit: int = service.MAX_BODY_BYTES) -> EmulatorError:
    """ValidationError for a body over ``limit`` (the body is sensitive: no value)."""
    return _detected(
        [
            "Value at 'body' failed to satisfy constraint: Member must have length less than "
            f"or equal to {limit}"
        ]
    )


def check_async_input(values: Mapping[str, Any], body: bytes) -> None:
    """InvokeEndpointAsync's input: an InputLocation or an inline Body, exactly one."""
    if ("InputLocation" in values) == bool(body):
        raise validation_error("Body and InputLocation are mutually exclusive: provide exactly one of them.")
