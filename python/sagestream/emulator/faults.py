"""Per-request knobs read from CustomAttributes: fault injection, output format, pacing.

CustomAttributes is a free-form string the service forwards to the model; the emulator's
models read ``key=value`` pairs separated by ``;`` (unknown keys are ignored, so the
attributes of real containers pass through untouched)::

    fault=model-stream-error;after=3;code=StreamBroken
    fault=error-frame;after=2;code=Throttled;message=slow down
    format=sse;tokens=50;delay_ms=20
    parts=100000;part_size=100;delay_ms=0
    echo_attributes=1
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from .protocol import EmulatorError, model_error

#: Every ``fault=`` value.
FAULTS = (
    "model-stream-error",
    "internal-stream-failure",
    "error-frame",
    "model-error",
    "throttle",
    "unavailable",
    "internal-failure",
    "dependency",
    "cut",
    "stall",
)
#: ``fault=`` values answered as an HTTP error before any output.
HTTP_FAULTS = ("model-error", "throttle", "unavailable", "internal-failure", "dependency")
#: ``fault=`` values that act inside a response stream.
STREAM_FAULTS = ("model-stream-error", "internal-stream-failure", "error-frame", "cut", "stall")
FORMATS = ("text", "sse", "jsonl", "json")
#: The longest demo answer, in tokens (the ``tokens=`` knob, or a length the prompt asks for).
MAX_TOKENS = 1_000_000
#: ModelStreamError's ErrorCode values, each with the message the service sends with it.
STREAM_ERROR_MESSAGES = {
    "ModelInvocationTimeExceeded": "Model invocation time exceeded while streaming the response.",
    "StreamBroken": "The model's response stream broke while streaming the response.",
}
STREAM_ERROR_CODES = tuple(STREAM_ERROR_MESSAGES)
#: The ``:error-code`` of an ``error-frame`` fault without ``code=``.
ERROR_FRAME_CODE = "InternalError"
_ERROR_FRAME_CODE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


class KnobError(ValueError):
    """A knob with an invalid value: the model rejects the request (ModelError, status 400)."""


@dataclass
class Knobs:
    """The parsed knobs of one request."""

    fault: str | None = None
    after: int = 0
    #: ModelStreamError's ErrorCode, or the ``:error-code`` of an error frame.
    code: str = "ModelInvocationTimeExceeded"
    status: int = 500
    message: str | None = None
    seconds: float = 5.0
    format: str | None = None
    tokens: int | None = None
    delay: float | None = None
    parts: int | None = None
    part_size: int = 100
    session_close: bool = False
    #: ``echo_attributes=1``: the demo and echo models answer the request's CustomAttributes.
    echo_attributes: bool = False


def default_stream_error_message(code: str) -> str:
    """The message of a ModelStreamError with ErrorCode ``code``."""
    return STREAM_ERROR_MESSAGES.get(code, "The model failed while streaming the response.")


def raise_http_fault(knobs: Knobs, endpoint: str, region: str) -> None:
    """Raise the HTTP error an ``HTTP_FAULTS`` knob asks for (nothing for other knobs)."""
    fault = knobs.fault
    if fault == "model-error":
        raise model_error(endpoint, region, knobs.status, knobs.message or "Injected model error")
    if fault == "throttle":
        raise EmulatorError(
            429, "ModelNotReadyException", knobs.message or "Model is not ready to serve requests."
        )
    if fault == "unavailable":
        raise EmulatorError(
            503, "ServiceUnavailable", knobs.message or "The service is unavailable. Try again later."
        )
    if fault == "internal-failure":
        raise EmulatorError(
            500, "InternalFailure", knobs.message or "An internal failure occurred. Try again later."
        )
    if fault == "dependency":
        raise EmulatorError(
            530,
            "InternalDependencyException",
            knobs.message or "An internal dependency failed. Try again later.",
        )


def parse_attributes(value: str | None) -> dict[str, str]:
    """``a=1;b=2`` → ``{"a": "1", "b": "2"}``; items without ``=`` are ignored."""
    out: dict[str, str] = {}
    if not value:
        return out
    for item in value.split(";"):
        key, sep, val = item.strip().partition("=")
        if sep and key:
            out[key.strip().lower()] = val.strip()
    return out


_Number = TypeVar("_Number", int, float)


def _number(
    attrs: dict[str, str], key: str, kind: type[_Number], low: _Number, high: _Number
) -> _Number | None:
    """The knob ``key`` as an ``int`` or a ``float`` from ``low`` to ``high``, or None when not set."""
    if key not in attrs:
        return None
    try:
        value = kind(attrs[key])
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise KnobError(f"CustomAttributes {key}={attrs[key]!r}: expected {expected}") from None
    if not low <= value <= high:
        raise KnobError(f"CustomAttributes {key}={value}: expected {low}..{high}")
    return value


def parse_knobs(custom_attributes: str | None) -> Knobs:
    """Read the emulator's knobs; raises KnobError on a bad value."""
    attrs = parse_attributes(custom_attributes)
    knobs = Knobs()
    fault = attrs.get("fault")
    if fault is not None:
        if fault not in FAULTS:
            raise KnobError(f"CustomAttributes fault={fault!r}: expected one of {', '.join(FAULTS)}")
        knobs.fault = fault
    knobs.after = _number(attrs, "after", int, 0, 10_000_000) or 0
    if knobs.fault == "error-frame":
        knobs.code = attrs.get("code", ERROR_FRAME_CODE)
        if _ERROR_FRAME_CODE_RE.fullmatch(knobs.code) is None:
            raise KnobError(
                f"CustomAttributes code={knobs.code!r}: expected a letter, then up to 63 letters, "
                "digits, '_', '.' or '-'"
            )
    elif "code" in attrs:
        if attrs["code"] not in STREAM_ERROR_CODES:
            raise KnobError(
                f"CustomAttributes code={attrs['code']!r}: expected {' or '.join(STREAM_ERROR_CODES)}"
            )
        knobs.code = attrs["code"]
    status = _number(attrs, "status", int, 100, 599)
    if status is not None:
        knobs.status = status
    knobs.message = attrs.get("message")
    seconds = _number(attrs, "seconds", float, 0.0, 3600.0)
    if seconds is not None:
        knobs.seconds = seconds
    fmt = attrs.get("format")
    if fmt is not None:
        if fmt not in FORMATS:
            raise KnobError(f"CustomAttributes format={fmt!r}: expected one of {', '.join(FORMATS)}")
        knobs.format = fmt
    knobs.tokens = _number(attrs, "tokens", int, 0, MAX_TOKENS)
    delay_ms = _number(attrs, "delay_ms", float, 0.0, 60_000.0)
    if delay_ms is not None:
        knobs.delay = delay_ms / 1000.0
    knobs.parts = _number(attrs, "parts", int, 0, 100_000_000)
    part_size = _number(attrs, "part_size", int, 0, 16 * 1024 * 1024)
    if part_size is not None:
        knobs.part_size = part_size
    session = attrs.get("session")
    if session is not None:
        if session != "close":
            raise KnobError(f"CustomAttributes session={session!r}: expected close")
        knobs.session_close = True
    echo = attrs.get("echo_attributes")
    if echo is not None:
        if echo not in ("0", "1"):
            raise KnobError(f"CustomAttributes echo_attributes={echo!r}: expected 0 or 1")
        knobs.echo_attributes = echo == "1"
    return knobs
