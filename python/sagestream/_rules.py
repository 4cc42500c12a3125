"""The SageMaker Runtime service's rules on single values, written once.

A :class:`Rule` carries the constraints of one shape of botocore's ``sagemaker-runtime``
2017-05-13 service model (its ``min`` / ``max`` and, verbatim, its Java-syntax ``pattern``) and
the Python expression the *whole* value must match. Where the service is stricter than its
model (CustomAttributes must be visible US-ASCII, an id's first character must be ASCII too),
the rule says so in ``stricter``: an explicit, commented override of the model.

Both sides of the wire read these rules: :meth:`Rule.check` turns a broken rule into a
:class:`~sagestream.exceptions.ParamValidationError` before anything is sent, and the emulator
answers :meth:`Rule.violation` with the service's ``ValidationError`` body. Which member of
which operation a rule constrains, under which header, is the operation table's
(:mod:`sagestream.service`); ``tests/test_rules.py`` checks both against the model botocore ships.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sagestream.exceptions import ParamValidationError

__all__ = [
    "ACCEPT",
    "ASYNC_BODY",
    "BODY",
    "CONTENT_TYPE",
    "CUSTOM_ATTRIBUTES",
    "DEFAULT_INVOCATION_TIMEOUT_SECONDS",
    "DEFAULT_REQUEST_TTL_SECONDS",
    "ENABLE_EXPLANATIONS",
    "ENDPOINT_NAME",
    "FILENAME",
    "INFERENCE_COMPONENT_NAME",
    "INFERENCE_ID",
    "INPUT_LOCATION",
    "INVOCATION_TIMEOUT_SECONDS",
    "MAX_ASYNC_BODY_BYTES",
    "MAX_BODY_BYTES",
    "MODEL_INVOCATION_PATH",
    "MODEL_QUERY_STRING",
    "NEW_SESSION",
    "PREFIX_AWARE_ID",
    "REQUEST_TTL_SECONDS",
    "S3_OUTPUT_PATH_EXTENSION",
    "S3_PREFIX",
    "SESSION_ID",
    "SESSION_ID_OR_NEW",
    "SIGNING_NAME",
    "TARGET_CONTAINER_HOSTNAME",
    "TARGET_MODEL",
    "TARGET_VARIANT",
    "Rule",
    "Violation",
    "header_safe",
    "python_pattern",
]

#: SigV4 signing name of the service.
SIGNING_NAME = "sagemaker"
#: InvokeEndpoint / InvokeEndpointWithResponseStream request payload limit (6 MiB).
MAX_BODY_BYTES = 6_291_456
#: InvokeEndpointAsync's inline body limit (128,000 bytes).
MAX_ASYNC_BODY_BYTES = 128_000
#: The SessionId that asks InvokeEndpoint to open a stateful session.
NEW_SESSION = "NEW_SESSION"
#: InvokeEndpointAsync's defaults when the request does not set them, from the SageMaker Runtime
#: API reference (also in botocore's model documentation): "RequestTTLSeconds ... The default is
#: 6 hours, or 21,600 seconds." "InvocationTimeoutSeconds ... The default is 15 minutes, or 900
#: seconds." https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpointAsync.html
DEFAULT_REQUEST_TTL_SECONDS = 21_600
DEFAULT_INVOCATION_TIMEOUT_SECONDS = 900

_HEADER_UNSAFE = ("\r", "\n", "\0")
#: How many taken strings a rule remembers (``Rule._taken``).
_TAKEN_MAX = 1024

ViolationKind = Literal["type", "min_length", "max_length", "pattern", "min_value", "max_value", "choice"]
RuleType = Literal["string", "integer", "boolean", "blob"]


@dataclass(frozen=True)
class Violation:
    """How a value breaks a rule: ``kind``, and the limit or offending character involved."""

    rule: Rule
    kind: ViolationKind
    value: object
    #: The length or value bound for the length and range kinds.
    limit: int | None = None
    #: For a character rule, the first character outside it and its index.
    char: str | None = None
    index: int | None = None
    #: True when the value passes the service model's pattern but not the service's
    #: stricter rule (``Rule.stricter``).
    strict_only: bool = False


@dataclass(frozen=True)
class Rule:
    """The constraints of one parameter (one shape of the service model)."""

    #: The shape member name, e.g. ``"InferenceId"``.
    member: str
    type: RuleType
    #: Length bounds (strings, blobs) or value bounds (integers), as in the model.
    min: int | None = None
    max: int | None = None
    #: The model's pattern, verbatim (Java regex syntax); quoted in the service's messages.
    pattern: str | None = None
    #: What the whole value must match (Python syntax, used with ``fullmatch``).
    regex: re.Pattern[str] | None = None
    #: The rule in words, for messages: "letters, digits and hyphens, ...".
    describe: str = ""
    #: For rules on single characters: the class every character must belong to. Messages
    #: then name the first character outside it.
    chars: re.Pattern[str] | None = None
    #: How the service is stricter than the model's pattern, in the service's words
    #: ("Member must consist of visible US-ASCII characters"); None when it is not.
    stricter: str | None = None
    #: The model's pattern in Python syntax, kept only where ``stricter`` is set, to tell a value
    #: the model accepts from one it refuses too.
    model_regex: re.Pattern[str] | None = None
    #: The model marks the value sensitive: the service does not repeat it in messages.
    sensitive: bool = False
    #: The model's enum: the only values allowed (None: any).
    choices: tuple[str, ...] | None = None
    #: Values the pattern would take that this rule refuses with a message of its own.
    refused: Mapping[str, str] = field(default_factory=dict)
    #: Strings this rule has taken already. A gateway sends the same endpoint names, content
    #: types and attributes call after call; the check is a pure function of the value, so a
    #: value taken once is taken without its regular expressions again (bounded: emptied when
    #: full). Dict reads and writes are atomic under the GIL, so threads may share it.
    _taken: dict[str, None] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @property
    def wire_name(self) -> str:
        """The member as the service names it in messages (``inferenceId``)."""
        return self.member[0].lower() + self.member[1:]

    def violation(self, value: object) -> Violation | None:
        """The first way ``value`` breaks this rule, or None when it complies."""
        if self.type in ("integer", "boolean"):
            return self._scalar_violation(value)
        if self.type == "blob":
            if not isinstance(value, (bytes, bytearray, memoryview)):
                return Violation(self, "type", value)
        elif not isinstance(value, str):
            return Violation(self, "type", value)
        size = len(value)
        if self.min is not None and size < self.min:
            return Violation(self, "min_length", value, self.min)
        if self.max is not None and size > self.max:
            return Violation(self, "max_length", value, self.max)
        if not isinstance(value, str):
            return None
        if self.choices is not None and value not in self.choices:
            return Violation(self, "choice", value)
        if self.chars is not None:
            for index, char in enumerate(value):
                if self.chars.fullmatch(char) is None:
                    strict_only = self._model_accepts(value)
                    return Violation(self, "pattern", value, None, char, index, strict_only)
        if self.regex is not None and self.regex.fullmatch(value) is None:
            return Violation(self, "pattern", value, strict_only=self._model_accepts(value))
        return None

    def _scalar_violation(self, value: object) -> Violation | None:
        if self.type == "boolean":
            return None if isinstance(value, bool) else Violation(self, "type", value)
        if isinstance(value, bool) or not isinstance(value, int):
            return Violation(self, "type", value)
        if self.min is not None and value < self.min:
            return Violation(self, "min_value", value, self.min)
        if self.max is not None and value > self.max:
            return Violation(self, "max_value", value, self.max)
        return None

    def _model_accepts(self, value: str) -> bool:
        """Whether the value passes the model's own pattern (asked once ours failed)."""
        return self.model_regex is not None and self.model_regex.fullmatch(value) is not None

    # --- the client's side: a ParamValidationError before anything is sent ------------------

    def check(self, value: object, name: str | None = None) -> Any:
        """``value`` when it satisfies this rule (a blob as ``bytes``, or a binary file); else a
        :class:`~sagestream.exceptions.ParamValidationError` naming ``name`` (the member)."""
        if value.__class__ is str and value in self._taken:
            return value
        name = name or self.member
        if value is None:
            raise ParamValidationError(f"{name} is required")
        if self.type == "blob":
            return self._blob(value, name)
        if isinstance(value, str) and value in self.refused:
            raise _fail(name, value, self.refused[value])
        violation = self.violation(value)
        if violation is not None:
            if violation.kind == "type":
                kind = {"integer": "an int", "boolean": "a bool"}.get(self.type, "a str")
                raise ParamValidationError(f"{name} must be {kind}, got {type(value).__name__}")
            raise _fail(name, value, self.explain(violation))
        if isinstance(value, str):
            if not header_safe(value):
                raise _fail(name, value, "must not contain CR, LF or NUL")
            if value.__class__ is str:
                if len(self._taken) >= _TAKEN_MAX:
                    self._taken.clear()
                self._taken[value] = None
        return value

    def explain(self, violation: Violation) -> str:
        """The broken rule in words, for a ParamValidationError."""
        value = violation.value
        if violation.kind == "min_length":
            if isinstance(value, str) and not value:
                return "must not be empty"
            return f"is {len(value)} characters, at least {violation.limit} needed"  # type: ignore[arg-type]
        if violation.kind == "max_length":
            return f"is {len(value)} characters, at most {violation.limit} allowed"  # type: ignore[arg-type]
        if violation.kind in ("min_value", "max_value"):
            return f"must be between {self.min} and {self.max} seconds"
        if violation.kind == "choice":
            return f"must be one of {', '.join(self.choices or ())}"
        if violation.char is not None:
            return f"character {violation.char!r} at index {violation.index} is not {self.describe}"
        if isinstance(value, str) and not value:
            return "must not be empty"
        return f"must be {self.describe or f'a match of {self.pattern}'}"

    def _blob(self, value: object, name: str) -> Any:
        """A payload: ``str`` as UTF-8, bytes-like as ``bytes``, a binary file as it is (its
        remaining size checked when it can be told)."""
        if isinstance(value, str):
            data: bytes = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        elif hasattr(value, "read"):
            size = _remaining_size(value)
            if size is not None and self.max is not None and size > self.max:
                raise ParamValidationError(f"{name} is {size} bytes, at most {self.max} allowed")
            return value
        else:
            raise ParamValidationError(
                f"{name} must be bytes, str or a binary file object, got {type(value).__name__}"
            )
        if self.max is not None and len(data) > self.max:
            raise ParamValidationError(f"{name} is {len(data)} bytes, at most {self.max} allowed")
        return data

    @classmethod
    def from_shape(cls, member: str, shape: Any) -> Rule:
        """The rule of a member botocore's installed model has and this table does not yet:
        its type, bounds, enum and pattern (translated by :func:`python_pattern`)."""
        types: dict[str, RuleType] = {"string": "string", "integer": "integer", "long": "integer"}
        types.update(boolean="boolean", blob="blob")
        kind = types.get(shape.type_name)
        if kind is None:
            raise ParamValidationError(f"{member} is a {shape.type_name}: only scalar members can be sent")
        metadata = shape.metadata
        pattern = metadata.get("pattern")
        enum = getattr(shape, "enum", None) or None
        return cls(
            member,
            kind,
            min=metadata.get("min"),
            max=metadata.get("max"),
            pattern=pattern,
            regex=python_pattern(pattern) if pattern else None,
            sensitive=bool(metadata.get("sensitive")),
            choices=tuple(enum) if enum else None,
        )


def _fail(name: str, value: object, rule: str) -> ParamValidationError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ParamValidationError(f"invalid {name} {shown}: {rule}")


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


def header_safe(value: str) -> bool:
    """No CR, LF or NUL: the value can travel as an HTTP header without changing meaning."""
    return not any(c in value for c in _HEADER_UNSAFE)


def python_pattern(pattern: str) -> re.Pattern[str] | None:
    """A model's Java pattern as Python, with Java's meaning of each construct it uses (None
    when it uses one Python has no spelling for)."""
    translated = (
        pattern.replace("\\p{ASCII}", "\\x00-\\x7f")
        .replace("\\p{Print}", "\\x20-\\x7e")
        .replace("\\A", "")
        .replace("\\z", "")
        # Java's \S is anything but [ \t\n\x0B\f\r] (non-ASCII characters included).
        .replace("\\S", "[^ \\t\\n\\x0b\\x0c\\r]")
    )
    # Bare class shorthands were written without brackets in the model: \p{ASCII}*.
    translated = re.sub(r"^\\x00-\\x7f\*$", "[\\\\x00-\\\\x7f]*", translated)
    try:
        return re.compile(_java_dots(translated))
    except re.error:
        return None


def _java_dots(pattern: str) -> str:
    """Java's "." outside a character class: any character but a line terminator."""
    out, in_class, escaped = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "." and not in_class:
            out.append("[^\\n\\r\\x85\\u2028\\u2029]")
            continue
        out.append(char)
    return "".join(out)


# The model's patterns in Java syntax, as the service quotes them; ``regex`` is the same rule in
# Python, matched against the whole value (the model anchors some patterns only at the start,
# and the service still refuses "chat\n").
_NAME_PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9])*"
_NAME_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_ALNUM_HYPHEN = "letters, digits and hyphens, starting and ending with a letter or digit"
_ASCII_CHAR = re.compile(r"[\x00-\x7f]")
_VISIBLE_ASCII_CHAR = re.compile(r"[\t\x20-\x7e]")
_PRINTABLE_ID_PATTERN = "\\A\\S[\\p{Print}]*\\z"
# Java's \S also matches non-ASCII characters, but the service refuses an id starting with one.
_PRINTABLE_ID_RE = re.compile(r"[\x21-\x7e][\x20-\x7e]*")
# The model's own reading: Java's \S is anything but [ \t\n\x0B\f\r], \p{Print} printable ASCII.
_PRINTABLE_ID_MODEL_RE = re.compile(r"[^ \t\n\x0b\x0c\r][\x20-\x7e]*")

ENDPOINT_NAME = Rule(
    "EndpointName", "string", max=63, pattern=_NAME_PATTERN, regex=_NAME_RE, describe=_ALNUM_HYPHEN
)
BODY = Rule("Body", "blob", max=MAX_BODY_BYTES, sensitive=True)
#: InvokeEndpointAsync's inline input (2026): at most 128,000 bytes, instead of InputLocation.
ASYNC_BODY = replace(BODY, max=MAX_ASYNC_BODY_BYTES)
CONTENT_TYPE = Rule(
    "ContentType", "string", max=1024, pattern="\\p{ASCII}*", chars=_ASCII_CHAR, describe="US-ASCII"
)
ACCEPT = replace(CONTENT_TYPE, member="Accept")
CUSTOM_ATTRIBUTES = Rule(
    "CustomAttributes",
    "string",
    max=1024,
    pattern="\\p{ASCII}*",
    chars=_VISIBLE_ASCII_CHAR,
    describe="visible US-ASCII",
    # Stricter than the model: the value travels as an HTTP field value (RFC 7230).
    stricter="Member must consist of visible US-ASCII characters",
    model_regex=re.compile(r"[\x00-\x7f]*"),
    sensitive=True,
)
INFERENCE_ID = Rule(
    "InferenceId",
    "string",
    min=1,
    max=64,
    pattern=_PRINTABLE_ID_PATTERN,
    regex=_PRINTABLE_ID_RE,
    describe="printable US-ASCII, not starting with whitespace",
    # Stricter than the model: its \S also takes a non-ASCII first character; the service does not.
    stricter="Member must consist of printable US-ASCII characters",
    model_regex=_PRINTABLE_ID_MODEL_RE,
)
TARGET_MODEL = replace(INFERENCE_ID, member="TargetModel", max=1024)
#: A routing hint for endpoints whose RoutingStrategy is PREFIX_AWARE (2026): requests with the
#: same prompt prefix and id go to the same instance. The model's pattern is InferenceId's; as
#: for InferenceId, sagestream and the emulator also want its first character in US-ASCII, the
#: only characters a header value carries as they are.
PREFIX_AWARE_ID = replace(INFERENCE_ID, member="PrefixAwareId")
TARGET_VARIANT = Rule(
    "TargetVariant", "string", max=63, pattern=_NAME_PATTERN, regex=_NAME_RE, describe=_ALNUM_HYPHEN
)
TARGET_CONTAINER_HOSTNAME = replace(TARGET_VARIANT, member="TargetContainerHostname")
ENABLE_EXPLANATIONS = Rule(
    "EnableExplanations",
    "string",
    min=1,
    max=64,
    pattern=".*",
    # Java's "." is any character but a line terminator.
    regex=re.compile("[^\n\r\x85\u2028\u2029]*"),
    describe="one line of text",
)
INFERENCE_COMPONENT_NAME = Rule(
    "InferenceComponentName",
    "string",
    max=63,
    pattern="^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?$",
    regex=re.compile(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?"),
    describe=_ALNUM_HYPHEN,
)
SESSION_ID_OR_NEW = Rule(
    "SessionId",
    "string",
    max=256,
    pattern="^(NEW_SESSION)$|^[a-zA-Z0-9](-*[a-zA-Z0-9])*$",
    regex=re.compile(r"NEW_SESSION|[a-zA-Z0-9](-*[a-zA-Z0-9])*"),
    describe=f"{NEW_SESSION}, or {_ALNUM_HYPHEN}",
)
#: InvokeEndpointWithResponseStream's: an existing session only.
SESSION_ID = Rule(
    "SessionId",
    "string",
    max=256,
    pattern="^[a-zA-Z0-9](-*[a-zA-Z0-9])*$",
    regex=_NAME_RE,
    describe=_ALNUM_HYPHEN,
    refused={
        NEW_SESSION: "a streaming request needs an existing session id;"
        " open one with invoke(session_id='NEW_SESSION')"
    },
)
INPUT_LOCATION = Rule(
    "InputLocation",
    "string",
    min=1,
    max=1024,
    pattern="^(https|s3)://([^/]+)/?(.*)$",
    regex=re.compile(r"(https|s3)://([^/]+)/?(.*)"),
    describe="an s3://bucket/key (or https://) URI",
)
S3_OUTPUT_PATH_EXTENSION = Rule(
    "S3OutputPathExtension",
    "string",
    min=1,
    max=512,
    pattern="^(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+$",
    regex=re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+"),
    describe="a relative path of letters, digits and !_.*'()/- (not an s3: or https: URI)",
)
FILENAME = Rule(
    "Filename",
    "string",
    min=1,
    max=32,
    pattern="^(?!.*\\..*\\.)[a-zA-Z0-9][a-zA-Z0-9-_\\.]*$",
    regex=re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9\-_.]*"),
    describe="a letter or digit, then letters, digits, '-', '_' and at most one '.'",
)
REQUEST_TTL_SECONDS = Rule("RequestTTLSeconds", "integer", min=60, max=21_600)
INVOCATION_TIMEOUT_SECONDS = Rule("InvocationTimeoutSeconds", "integer", min=1, max=3600)

# --- InvokeEndpointWithBidirectionalStream (service "SageMaker Runtime HTTP2") --------------
# botocore has no model of this operation; the limits are those of the service's API reference.

MODEL_INVOCATION_PATH = Rule(
    "ModelInvocationPath",
    "string",
    max=100,
    pattern="^[\\x21-\\x7E]*$",
    chars=re.compile(r"[\x21-\x7e]"),
    describe="visible US-ASCII without spaces",
)
MODEL_QUERY_STRING = Rule(
    "ModelQueryString",
    "string",
    max=2048,
    pattern="^[\\x20-\\x7E]*$",
    chars=re.compile(r"[\x20-\x7e]"),
    describe="printable US-ASCII",
)

# --- the clients' own ----------------------------------------------------------------------

#: Not a service rule: where a client uploads an async inference's input (``input_prefix``).
S3_PREFIX = Rule(
    "S3Uri",
    "string",
    min=1,
    max=1024,
    regex=re.compile(r"s3://([^/]+)(/.*)?", re.DOTALL),
    describe="an s3://bucket/key URI",
)
