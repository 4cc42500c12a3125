"""The SageMaker Runtime service's rules, written once.

One table serves both sides of the wire: :mod:`sagestream._params` turns a broken rule into a
:class:`~sagestream.exceptions.ParamValidationError` before anything is sent, and the emulator
answers the same rule with the service's ``ValidationError`` body. Each :class:`Rule` carries the
constraints of botocore's ``sagemaker-runtime`` 2017-05-13 service model (its ``min`` / ``max``
and, verbatim, its Java-syntax ``pattern``) and the Python expression the *whole* value must
match. Where the service is stricter than its model (CustomAttributes must be visible US-ASCII,
an id's first character must be ASCII too), the rule says so in ``stricter``.
``tests/test_rules.py`` checks the table against the model botocore ships.

Also here: operation names, HTTP routes, the header of each parameter per operation, and the
service's defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "ACCEPT",
    "ASYNC_BODY",
    "ASYNC_INPUTS",
    "BODY",
    "BOTOCORE_SINCE",
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
    "INVOKE",
    "INVOKE_ASYNC",
    "INVOKE_DUPLEX",
    "INVOKE_STREAM",
    "MAX_ASYNC_BODY_BYTES",
    "MAX_BODY_BYTES",
    "MODEL_INVOCATION_PATH",
    "MODEL_QUERY_STRING",
    "NEW_SESSION",
    "OPERATIONS",
    "PREFIX_AWARE_ID",
    "REQUEST_TTL_SECONDS",
    "S3_OUTPUT_PATH_EXTENSION",
    "SESSION_ID",
    "SESSION_ID_OR_NEW",
    "SIGNING_NAME",
    "TARGET_CONTAINER_HOSTNAME",
    "TARGET_MODEL",
    "TARGET_VARIANT",
    "Member",
    "Operation",
    "Rule",
    "Violation",
    "header_safe",
]

#: SigV4 signing name of the service.
SIGNING_NAME = "sagemaker"
#: InvokeEndpoint / InvokeEndpointWithResponseStream request payload limit (6 MiB).
MAX_BODY_BYTES = 6_291_456
#: InvokeEndpointAsync's inline body limit (128,000 bytes).
MAX_ASYNC_BODY_BYTES = 128_000
#: The SessionId that asks InvokeEndpoint to open a stateful session.
NEW_SESSION = "NEW_SESSION"
#: InvokeEndpointAsync's defaults when the request does not set them.
DEFAULT_REQUEST_TTL_SECONDS = 21_600
DEFAULT_INVOCATION_TIMEOUT_SECONDS = 900

_HEADER_UNSAFE = ("\r", "\n", "\0")

ViolationKind = Literal["type", "min_length", "max_length", "pattern", "min_value", "max_value"]


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
    type: Literal["string", "integer", "blob"]
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

    @property
    def wire_name(self) -> str:
        """The member as the service names it in messages (``inferenceId``)."""
        return self.member[0].lower() + self.member[1:]

    def violation(self, value: object) -> Violation | None:
        """The first way ``value`` breaks this rule, or None when it complies."""
        if self.type == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return Violation(self, "type", value)
            if self.min is not None and value < self.min:
                return Violation(self, "min_value", value, self.min)
            if self.max is not None and value > self.max:
                return Violation(self, "max_value", value, self.max)
            return None
        if self.type == "blob":
            if not isinstance(value, (bytes, bytearray, memoryview)):
                return Violation(self, "type", value)
            size = len(value)
        else:
            if not isinstance(value, str):
                return Violation(self, "type", value)
            size = len(value)
        if self.min is not None and size < self.min:
            return Violation(self, "min_length", value, self.min)
        if self.max is not None and size > self.max:
            return Violation(self, "max_length", value, self.max)
        if not isinstance(value, str):
            return None
        if self.chars is not None:
            for index, char in enumerate(value):
                if self.chars.fullmatch(char) is None:
                    return Violation(
                        self,
                        "pattern",
                        value,
                        char=char,
                        index=index,
                        strict_only=self._model_accepts(value),
                    )
        if self.regex is not None and self.regex.fullmatch(value) is None:
            return Violation(self, "pattern", value, strict_only=self._model_accepts(value))
        return None

    def _model_accepts(self, value: str) -> bool:
        """Whether the value passes the model's own pattern (asked once ours failed)."""
        return self.model_regex is not None and self.model_regex.fullmatch(value) is not None


def header_safe(value: str) -> bool:
    """No CR, LF or NUL: the value can travel as an HTTP header without changing meaning."""
    return not any(c in value for c in _HEADER_UNSAFE)


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
ASYNC_BODY = Rule("Body", "blob", max=MAX_ASYNC_BODY_BYTES, sensitive=True)
CONTENT_TYPE = Rule(
    "ContentType", "string", max=1024, pattern="\\p{ASCII}*", chars=_ASCII_CHAR, describe="US-ASCII"
)
ACCEPT = Rule("Accept", "string", max=1024, pattern="\\p{ASCII}*", chars=_ASCII_CHAR, describe="US-ASCII")
CUSTOM_ATTRIBUTES = Rule(
    "CustomAttributes",
    "string",
    max=1024,
    pattern="\\p{ASCII}*",
    chars=_VISIBLE_ASCII_CHAR,
    describe="visible US-ASCII",
    stricter="Member must consist of visible US-ASCII characters",
    model_regex=re.compile(r"[\x00-\x7f]*"),
    sensitive=True,
)
TARGET_MODEL = Rule(
    "TargetModel",
    "string",
    min=1,
    max=1024,
    pattern=_PRINTABLE_ID_PATTERN,
    regex=_PRINTABLE_ID_RE,
    describe="printable US-ASCII, not starting with whitespace",
    stricter="Member must consist of printable US-ASCII characters",
    model_regex=_PRINTABLE_ID_MODEL_RE,
)
TARGET_VARIANT = Rule(
    "TargetVariant", "string", max=63, pattern=_NAME_PATTERN, regex=_NAME_RE, describe=_ALNUM_HYPHEN
)
TARGET_CONTAINER_HOSTNAME = Rule(
    "TargetContainerHostname",
    "string",
    max=63,
    pattern=_NAME_PATTERN,
    regex=_NAME_RE,
    describe=_ALNUM_HYPHEN,
)
INFERENCE_ID = Rule(
    "InferenceId",
    "string",
    min=1,
    max=64,
    pattern=_PRINTABLE_ID_PATTERN,
    regex=_PRINTABLE_ID_RE,
    describe="printable US-ASCII, not starting with whitespace",
    stricter="Member must consist of printable US-ASCII characters",
    model_regex=_PRINTABLE_ID_MODEL_RE,
)
#: A routing hint for endpoints whose RoutingStrategy is PREFIX_AWARE (2026): requests with the
#: same prompt prefix and id go to the same instance. The model's pattern is InferenceId's; as
#: for InferenceId, sagestream and the emulator also want its first character in US-ASCII, the
#: only characters a header value carries as they are.
PREFIX_AWARE_ID = replace(INFERENCE_ID, member="PrefixAwareId")
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
SESSION_ID = Rule(
    "SessionId",
    "string",
    max=256,
    pattern="^[a-zA-Z0-9](-*[a-zA-Z0-9])*$",
    regex=_NAME_RE,
    describe=_ALNUM_HYPHEN,
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


@dataclass(frozen=True)
class Member:
    """One input member of an operation: its rule, where it travels, under which name."""

    rule: Rule
    location: Literal["uri", "header", "body"]
    #: The header name, the URI label, or ``"Body"``.
    wire_name: str
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One operation: name, HTTP route, success status and input members."""

    name: str
    method: str
    #: The route, with ``{EndpointName}`` for the endpoint.
    path: str
    status: int
    members: Mapping[str, Member] = field(default_factory=dict)
    #: The answer's members carried by headers: result key → header name.
    outputs: Mapping[str, str] = field(default_factory=dict)

    def header(self, member: str) -> str:
        """The HTTP header carrying ``member`` in this operation."""
        entry = self.members[member]
        if entry.location != "header":
            raise KeyError(f"{self.name}.{member} is not a header")
        return entry.wire_name

    @property
    def payload(self) -> str | None:
        """The member sent as the request body, if any."""
        return next((name for name, m in self.members.items() if m.location == "body"), None)

    def route(self, endpoint_label: str = "{EndpointName}") -> str:
        """The path with the endpoint label replaced (aiohttp routes use ``{name}``)."""
        return self.path.replace("{EndpointName}", endpoint_label)


def _h(rule: Rule, name: str) -> Member:
    return Member(rule, "header", name)


_SM = "X-Amzn-SageMaker-"

INVOKE = Operation(
    "InvokeEndpoint",
    "POST",
    "/endpoints/{EndpointName}/invocations",
    200,
    {
        "EndpointName": Member(ENDPOINT_NAME, "uri", "EndpointName", required=True),
        "Body": Member(BODY, "body", "Body", required=True),
        "ContentType": _h(CONTENT_TYPE, "Content-Type"),
        "Accept": _h(ACCEPT, "Accept"),
        "CustomAttributes": _h(CUSTOM_ATTRIBUTES, _SM + "Custom-Attributes"),
        "TargetModel": _h(TARGET_MODEL, _SM + "Target-Model"),
        "TargetVariant": _h(TARGET_VARIANT, _SM + "Target-Variant"),
        "TargetContainerHostname": _h(TARGET_CONTAINER_HOSTNAME, _SM + "Target-Container-Hostname"),
        "InferenceId": _h(INFERENCE_ID, _SM + "Inference-Id"),
        "EnableExplanations": _h(ENABLE_EXPLANATIONS, _SM + "Enable-Explanations"),
        "InferenceComponentName": _h(INFERENCE_COMPONENT_NAME, _SM + "Inference-Component"),
        "SessionId": _h(SESSION_ID_OR_NEW, _SM + "Session-Id"),
        "PrefixAwareId": _h(PREFIX_AWARE_ID, _SM + "Prefix-Aware-Id"),
    },
    {
        "ContentType": "Content-Type",
        "InvokedProductionVariant": "x-Amzn-Invoked-Production-Variant",
        "CustomAttributes": _SM + "Custom-Attributes",
        "NewSessionId": _SM + "New-Session-Id",
        "ClosedSessionId": _SM + "Closed-Session-Id",
    },
)
INVOKE_STREAM = Operation(
    "InvokeEndpointWithResponseStream",
    "POST",
    "/endpoints/{EndpointName}/invocations-response-stream",
    200,
    {
        "EndpointName": Member(ENDPOINT_NAME, "uri", "EndpointName", required=True),
        "Body": Member(BODY, "body", "Body", required=True),
        "ContentType": _h(CONTENT_TYPE, "Content-Type"),
        "Accept": _h(ACCEPT, _SM + "Accept"),
        "CustomAttributes": _h(CUSTOM_ATTRIBUTES, _SM + "Custom-Attributes"),
        "TargetVariant": _h(TARGET_VARIANT, _SM + "Target-Variant"),
        "TargetContainerHostname": _h(TARGET_CONTAINER_HOSTNAME, _SM + "Target-Container-Hostname"),
        "InferenceId": _h(INFERENCE_ID, _SM + "Inference-Id"),
        "InferenceComponentName": _h(INFERENCE_COMPONENT_NAME, _SM + "Inference-Component"),
        "SessionId": _h(SESSION_ID, _SM + "Session-Id"),
        "PrefixAwareId": _h(PREFIX_AWARE_ID, _SM + "Prefix-Aware-Id"),
    },
    {
        "ContentType": _SM + "Content-Type",
        "InvokedProductionVariant": "x-Amzn-Invoked-Production-Variant",
        "CustomAttributes": _SM + "Custom-Attributes",
    },
)
INVOKE_ASYNC = Operation(
    "InvokeEndpointAsync",
    "POST",
    "/endpoints/{EndpointName}/async-invocations",
    202,
    {
        "EndpointName": Member(ENDPOINT_NAME, "uri", "EndpointName", required=True),
        "ContentType": _h(CONTENT_TYPE, _SM + "Content-Type"),
        "Accept": _h(ACCEPT, _SM + "Accept"),
        "CustomAttributes": _h(CUSTOM_ATTRIBUTES, _SM + "Custom-Attributes"),
        "InferenceId": _h(INFERENCE_ID, _SM + "Inference-Id"),
        # Required until 2026, and by botocore's models before 1.43.117; now the input is
        # InputLocation or an inline Body, exactly one of them (ASYNC_INPUTS).
        "InputLocation": _h(INPUT_LOCATION, _SM + "InputLocation"),
        "Body": Member(ASYNC_BODY, "body", "Body"),
        "S3OutputPathExtension": _h(S3_OUTPUT_PATH_EXTENSION, _SM + "S3OutputPathExtension"),
        "Filename": _h(FILENAME, _SM + "Filename"),
        "RequestTTLSeconds": _h(REQUEST_TTL_SECONDS, _SM + "RequestTTLSeconds"),
        "InvocationTimeoutSeconds": _h(INVOCATION_TIMEOUT_SECONDS, _SM + "InvocationTimeoutSeconds"),
    },
    {"OutputLocation": _SM + "OutputLocation", "FailureLocation": _SM + "FailureLocation"},
)
#: The first botocore whose ``sagemaker-runtime`` model has a member the service took later
#: (input or output): on botocore's own path, an older botocore cannot send or read it. The
#: request path sends and reads them from this table whatever the botocore.
BOTOCORE_SINCE: Mapping[tuple[str, str], str] = {
    ("InvokeEndpoint", "SessionId"): "1.35.15",
    ("InvokeEndpoint", "NewSessionId"): "1.35.15",
    ("InvokeEndpoint", "ClosedSessionId"): "1.35.15",
    ("InvokeEndpointWithResponseStream", "SessionId"): "1.35.15",
    ("InvokeEndpointAsync", "S3OutputPathExtension"): "1.42.54",
    ("InvokeEndpointAsync", "Filename"): "1.42.54",
    ("InvokeEndpoint", "PrefixAwareId"): "1.43.117",
    ("InvokeEndpointWithResponseStream", "PrefixAwareId"): "1.43.117",
    ("InvokeEndpointAsync", "Body"): "1.43.117",
}
#: InvokeEndpointAsync's two ways to give the input: exactly one of them.
ASYNC_INPUTS = ("InputLocation", "Body")
#: Every operation by name.
OPERATIONS: Mapping[str, Operation] = {op.name: op for op in (INVOKE, INVOKE_STREAM, INVOKE_ASYNC)}

# --- InvokeEndpointWithBidirectionalStream (service "SageMaker Runtime HTTP2") --------------
# botocore has no model of this operation; the limits are those of the service's API
# reference. It is not in OPERATIONS, which mirrors botocore's sagemaker-runtime model.

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
INVOKE_DUPLEX = Operation(
    "InvokeEndpointWithBidirectionalStream",
    "POST",
    "/endpoints/{EndpointName}/invocations-bidirectional-stream",
    200,
    {
        "EndpointName": Member(ENDPOINT_NAME, "uri", "EndpointName", required=True),
        "TargetVariant": _h(TARGET_VARIANT, _SM + "Target-Variant"),
        "ModelInvocationPath": _h(MODEL_INVOCATION_PATH, _SM + "Model-Invocation-Path"),
        "ModelQueryString": _h(MODEL_QUERY_STRING, _SM + "Model-Query-String"),
    },
)
