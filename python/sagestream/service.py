"""SageMaker Runtime as sagestream knows it: one table per operation.

Each :class:`Operation` lists its :class:`Member` rows: the API name (``CustomAttributes``),
the keyword both clients take (``custom_attributes``, also the CLI option
``--custom-attributes``), where it travels (``uri``, ``header`` or ``body``) under which wire
name, its :class:`Rule` (the constraints of botocore's model, with the service's stricter rules
as explicit overrides), whether it is required, and a line of help. The operation also names its
route, its success status and the answer's header members (:attr:`Operation.outputs`).

Every user reads the same rows: the clients validate their keywords and build both paths'
requests from them (:meth:`Operation.params`, :meth:`Operation.request`), results are named
after :attr:`Operation.outputs`, the emulator answers the same rules with the service's
``ValidationError``, the CLI generates its options from them, and the batch, Ray and framework
integrations map boto3's names to keywords with :meth:`Operation.split`. Adding a parameter is
one row here plus the two public signatures (``Client`` and ``AsyncClient``).

A member botocore's installed model has and this table does not (a service addition newer than
this sagestream) is still usable: ``extra={"SomeNewHeader": "x"}`` on the clients' calls is
validated against the model's constraints and sent under the model's header name. botocore's
model is read only then, never at import.

``tests/test_rules.py`` checks the table against the model botocore ships: every member of the
installed model must be a row or listed in :attr:`Operation.known`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache, cached_property, lru_cache
from typing import Any, Literal
from urllib.parse import quote

from sagestream import _rules
from sagestream._rules import (
    DEFAULT_INVOCATION_TIMEOUT_SECONDS,
    DEFAULT_REQUEST_TTL_SECONDS,
    ENDPOINT_NAME,
    MAX_ASYNC_BODY_BYTES,
    MAX_BODY_BYTES,
    NEW_SESSION,
    S3_PREFIX,
    SIGNING_NAME,
    Rule,
    Violation,
    header_safe,
)
from sagestream.exceptions import ParamValidationError

__all__ = [
    "BOTOCORE_SINCE",
    "DEFAULT_INVOCATION_TIMEOUT_SECONDS",
    "DEFAULT_REQUEST_TTL_SECONDS",
    "ENDPOINT_NAME",
    "INVOKE",
    "INVOKE_ASYNC",
    "INVOKE_DUPLEX",
    "INVOKE_STREAM",
    "MAX_ASYNC_BODY_BYTES",
    "MAX_BODY_BYTES",
    "NEW_SESSION",
    "OPERATIONS",
    "S3_PREFIX",
    "SIGNING_NAME",
    "Member",
    "Operation",
    "Rule",
    "Violation",
    "header_safe",
    "snake",
]

Location = Literal["uri", "header", "body"]


@cache  # a pure function of the table's names, asked per call for each answer header
def snake(name: str) -> str:
    """The keyword of an API member name: ``RequestTTLSeconds`` → ``request_ttl_seconds``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@dataclass(frozen=True)
class Member:
    """One input member of an operation: its rule, where it travels, under which names."""

    #: The API member name, as boto3 names it: ``"CustomAttributes"``.
    name: str
    rule: Rule
    location: Location
    #: The header name, the URI label, or ``"Body"``.
    wire_name: str
    required: bool = False
    #: What it is, in a line (the CLI's help).
    doc: str = ""
    #: The CLI's placeholder for its value.
    metavar: str = "TEXT"

    @property
    def keyword(self) -> str:
        """The clients' keyword: ``custom_attributes``."""
        return snake(self.name)

    @property
    def flag(self) -> str:
        """The CLI option: ``--custom-attributes``."""
        return "--" + self.keyword.replace("_", "-")

    def check(self, value: object) -> Any:
        """``value`` when the rule takes it, else a :class:`ParamValidationError` naming the member."""
        return self.rule.check(value, self.name)


@dataclass(frozen=True)
class Operation:
    """One operation: name, HTTP route, success status, input members, the answer's headers."""

    name: str
    method: str
    #: The route, with ``{EndpointName}`` for the endpoint.
    path: str
    status: int
    members: Mapping[str, Member] = field(default_factory=dict)
    #: The answer's members carried by headers: result key → header name.
    outputs: Mapping[str, str] = field(default_factory=dict)
    #: Members of which exactly one must be given (InvokeEndpointAsync's input).
    one_of: tuple[str, ...] = ()
    #: Members botocore's model has that this table leaves to ``extra=`` on purpose.
    known: frozenset[str] = frozenset()
    #: The port the service answers this operation on, when it is not the endpoint's own.
    port: int | None = None

    @cached_property
    def by_keyword(self) -> dict[str, Member]:
        """The members by the clients' keyword."""
        return {m.keyword: m for m in self.members.values()}

    @cached_property
    def _walk(self) -> tuple[tuple[str, str, Callable[[object, str], Any], bool], ...]:
        """What :meth:`of_call` asks of each member, looked up once: keyword, API name, the
        rule's check, whether it is required."""
        return tuple((m.keyword, m.name, m.rule.check, m.required) for m in self.members.values())

    @property
    def options(self) -> list[Member]:
        """The members sent as headers: the optional parameters of a call."""
        return [m for m in self.members.values() if m.location == "header"]

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

    # --- a call's parameters ---------------------------------------------------------------

    def params(
        self, values: Mapping[str, object], extra: Mapping[str, object] | None = None
    ) -> dict[str, Any]:
        """The API parameters of a call, validated: ``values`` by keyword (None: not given),
        ``extra`` by API name (members without a keyword yet, checked on botocore's model)."""
        params: dict[str, Any] = {}
        for keyword, value in values.items():
            member = self.by_keyword.get(keyword)
            if member is None:
                raise TypeError(f"{self.name} has no parameter {keyword!r}")
            if value is not None or member.required:
                params[member.name] = member.rule.check(value, member.name)
        return self._completed(params, extra)

    def _completed(self, params: dict[str, Any], extra: Mapping[str, object] | None) -> dict[str, Any]:
        """``params`` with ``extra`` added, the one-of members checked."""
        if extra:
            self._add_extra(params, extra)
        if not self.one_of:
            return params
        given = [name for name in self.one_of if name in params]
        if len(given) != 1:
            names = " or ".join(self.members[n].keyword for n in self.one_of)
            how = "not both" if given else "one is required"
            raise ParamValidationError(f"{self.name} takes its input as {names}: {how}")
        return params

    def _add_extra(self, params: dict[str, Any], extra: Mapping[str, object]) -> None:
        for name, value in extra.items():
            member = self.members.get(name)
            if member is not None and member.location != "header":
                raise ParamValidationError(f"extra: {name} is the {member.keyword} argument")
            if name in params:
                raise ParamValidationError(f"extra: {name} is given twice, also as {snake(name)}=")
            rule = member.rule if member is not None else self._model_rule(name)
            params[name] = rule.check(value, name)

    def _model_rule(self, name: str) -> Rule:
        """The rule of ``name`` from botocore's installed model, if it is a header member there."""
        import botocore

        members = _model_members(self.name)
        shape = members.get(name)
        if shape is None:
            raise ParamValidationError(
                f"extra: {name} is not a member of {self.name} in sagestream's table nor in "
                f"botocore {botocore.__version__}'s model"
            )
        location = shape.serialization.get("location", "body")
        if location != "header":
            raise ParamValidationError(f"extra: {name} travels in the {location}; extra= sends headers only")
        return Rule.from_shape(name, shape)

    def of_call(
        self, arguments: Mapping[str, object], extra: Mapping[str, object] | None = None
    ) -> dict[str, Any]:
        """:meth:`params` of a call's ``arguments`` (a client method's ``locals()``: its signature
        names this operation's keywords; its other arguments are not the operation's). Once per
        call: it walks the table's members, not the arguments, and asks each value once."""
        params: dict[str, Any] = {}
        get = arguments.get
        for keyword, name, check, required in self._walk:
            value = get(keyword)
            if value is not None or required:
                params[name] = check(value, name)
        return self._completed(params, extra)

    def split(self, given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Request parameters named by boto3 (``CustomAttributes``) or by keyword
        (``custom_attributes``), None values dropped: the call's keywords, and the API names
        this table does not know (for ``extra=``). TypeError names a keyword, or a member of
        another operation, that this one does not have."""
        keywords: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in given.items():
            if value is None:
                continue
            member = self.members.get(key) or self.by_keyword.get(key)
            if member is not None and member.location == "header":
                keywords[member.keyword] = value
            elif member is None and key[:1].isupper() and key not in _ALL_MEMBERS:
                extra[key] = value
            else:
                raise TypeError(f"{key!r} is not a parameter of {self.name}")
        return keywords, extra

    # --- a call's request --------------------------------------------------------------------

    def request(
        self, base_url: str, params: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """URL, headers and body of a call with ``params`` (validated) at ``base_url``, as
        botocore builds them: ``headers`` names the header of each member only botocore's
        model has (``extra=``)."""
        url = base_url + self.route(_label(params["EndpointName"]))
        sent: list[tuple[str, str]] = []
        body: Any = b""
        for name, value in params.items():
            member = self.members.get(name)
            if member is None:
                sent.append(((headers or {})[name], _header_value(value)))
            elif member.location == "header":
                sent.append((member.wire_name, _header_value(value)))
            elif member.location == "body":
                body = value
        if not isinstance(body, bytes):
            body = body.read() if hasattr(body, "read") else bytes(body)
        return url, sent, body


@lru_cache(maxsize=1024)  # a gateway calls a few endpoints, again and again
def _label(endpoint_name: str) -> str:
    """An endpoint name as botocore quotes it in the URL's path."""
    return quote(endpoint_name, safe="~")


def _header_value(value: object) -> str:
    """A value as botocore's rest serializer writes it in a header."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@cache
def _model_members(operation: str) -> dict[str, Any]:
    """The input members of ``operation`` in botocore's installed model (read on first use)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    if operation not in model.operation_names:
        return {}
    return dict(model.operation_model(operation).input_shape.members)


# --- the rows --------------------------------------------------------------------------------

_SM = "X-Amzn-SageMaker-"


def _h(name: str, rule: Rule, header: str, metavar: str, doc: str) -> Member:
    return Member(name, rule, "header", header, doc=doc, metavar=metavar)


#: Every member once, with its usual header; an operation that sends one otherwise says so.
_ROWS: dict[str, Member] = {
    m.name: m
    for m in (
        Member(
            "EndpointName", _rules.ENDPOINT_NAME, "uri", "EndpointName", True, "endpoint name", "ENDPOINT"
        ),
        Member("Body", _rules.BODY, "body", "Body", True, "request body", "BODY"),
        _h("ContentType", _rules.CONTENT_TYPE, "Content-Type", "MIME", "the request body's MIME type"),
        _h("Accept", _rules.ACCEPT, "Accept", "MIME", "the MIME type wanted for the answer"),
        _h(
            "CustomAttributes",
            _rules.CUSTOM_ATTRIBUTES,
            _SM + "Custom-Attributes",
            "TEXT",
            "CustomAttributes passed to the model",
        ),
        _h(
            "TargetModel",
            _rules.TARGET_MODEL,
            _SM + "Target-Model",
            "PATH",
            "model of a multi-model endpoint",
        ),
        _h("TargetVariant", _rules.TARGET_VARIANT, _SM + "Target-Variant", "NAME", "production variant"),
        _h(
            "TargetContainerHostname",
            _rules.TARGET_CONTAINER_HOSTNAME,
            _SM + "Target-Container-Hostname",
            "NAME",
            "container of a multi-container endpoint",
        ),
        _h(
            "InferenceId",
            _rules.INFERENCE_ID,
            _SM + "Inference-Id",
            "ID",
            "an id of your own for the request",
        ),
        _h(
            "EnableExplanations",
            _rules.ENABLE_EXPLANATIONS,
            _SM + "Enable-Explanations",
            "EXPRESSION",
            "SageMaker Clarify explanations",
        ),
        _h(
            "InferenceComponentName",
            _rules.INFERENCE_COMPONENT_NAME,
            _SM + "Inference-Component",
            "NAME",
            "inference component",
        ),
        _h(
            "SessionId",
            _rules.SESSION_ID_OR_NEW,
            _SM + "Session-Id",
            "ID",
            "stateful session id (NEW_SESSION opens one, on InvokeEndpoint)",
        ),
        _h(
            "PrefixAwareId",
            _rules.PREFIX_AWARE_ID,
            _SM + "Prefix-Aware-Id",
            "ID",
            "routing hint of PREFIX_AWARE endpoints: the same prompt prefix and id reach the same instance",
        ),
        _h(
            "InputLocation",
            _rules.INPUT_LOCATION,
            _SM + "InputLocation",
            "S3URI",
            "the input already in S3 (s3://bucket/key)",
        ),
        _h(
            "S3OutputPathExtension",
            _rules.S3_OUTPUT_PATH_EXTENSION,
            _SM + "S3OutputPathExtension",
            "PATH",
            "a path appended to the output location",
        ),
        _h(
            "Filename",
            _rules.FILENAME,
            _SM + "Filename",
            "NAME",
            "the output object's name (at most 32 characters)",
        ),
        _h(
            "RequestTTLSeconds",
            _rules.REQUEST_TTL_SECONDS,
            _SM + "RequestTTLSeconds",
            "SECONDS",
            "how long the request may wait, 60 to 21600 (default: the service's, 21600)",
        ),
        _h(
            "InvocationTimeoutSeconds",
            _rules.INVOCATION_TIMEOUT_SECONDS,
            _SM + "InvocationTimeoutSeconds",
            "SECONDS",
            "how long the model may take, 1 to 3600 (default: the service's, 900)",
        ),
        _h(
            "ModelInvocationPath",
            _rules.MODEL_INVOCATION_PATH,
            _SM + "Model-Invocation-Path",
            "PATH",
            "the container's path to invoke (at most 100 characters)",
        ),
        _h(
            "ModelQueryString",
            _rules.MODEL_QUERY_STRING,
            _SM + "Model-Query-String",
            "QUERY",
            "query string forwarded to the container (at most 2048 characters)",
        ),
    )
}
_ALL_MEMBERS = frozenset(_ROWS)


def _operation(
    name: str,
    path: str,
    members: str,
    changes: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    status: int = 200,
    **rest: Any,
) -> Operation:
    """An operation of the rows named in ``members``, ``changes`` applied to some of them."""
    changes = changes or {}
    rows = {n: replace(_ROWS[n], **changes.get(n, {})) for n in members.split()}
    return Operation(name, "POST", "/endpoints/{EndpointName}/" + path, status, rows, **rest)


_RUNTIME = "EndpointName Body ContentType Accept CustomAttributes"
_ROUTING = "TargetVariant TargetContainerHostname InferenceId"

INVOKE = _operation(
    "InvokeEndpoint",
    "invocations",
    f"{_RUNTIME} TargetModel {_ROUTING} EnableExplanations InferenceComponentName SessionId PrefixAwareId",
    outputs={
        "ContentType": "Content-Type",
        "InvokedProductionVariant": "x-Amzn-Invoked-Production-Variant",
        "CustomAttributes": _SM + "Custom-Attributes",
        "NewSessionId": _SM + "New-Session-Id",
        "ClosedSessionId": _SM + "Closed-Session-Id",
    },
)
INVOKE_STREAM = _operation(
    "InvokeEndpointWithResponseStream",
    "invocations-response-stream",
    f"{_RUNTIME} {_ROUTING} InferenceComponentName SessionId PrefixAwareId",
    {
        # The streaming operation's own header for Accept.
        "Accept": {"wire_name": _SM + "Accept"},
        # A stream joins an existing session only: NEW_SESSION is InvokeEndpoint's.
        "SessionId": {"rule": _rules.SESSION_ID, "doc": "an existing stateful session's id"},
    },
    outputs={
        "ContentType": _SM + "Content-Type",
        "InvokedProductionVariant": "x-Amzn-Invoked-Production-Variant",
        "CustomAttributes": _SM + "Custom-Attributes",
    },
)
INVOKE_ASYNC = _operation(
    "InvokeEndpointAsync",
    "async-invocations",
    "EndpointName ContentType Accept CustomAttributes InferenceId InputLocation Body "
    "S3OutputPathExtension Filename RequestTTLSeconds InvocationTimeoutSeconds",
    {
        "ContentType": {"wire_name": _SM + "Content-Type"},
        "Accept": {"wire_name": _SM + "Accept"},
        # InputLocation was required until 2026 (and by botocore's models before 1.43.117); now
        # the input is InputLocation or an inline Body of at most 128,000 bytes (``one_of``).
        "Body": {
            "rule": _rules.ASYNC_BODY,
            "required": False,
            "doc": "the input itself (at most 128,000 bytes), instead of InputLocation",
        },
    },
    status=202,
    outputs={"OutputLocation": _SM + "OutputLocation", "FailureLocation": _SM + "FailureLocation"},
    one_of=("InputLocation", "Body"),
)
#: InvokeEndpointWithBidirectionalStream (service "SageMaker Runtime HTTP2"): HTTP/2, on port
#: 8443 of the runtime's host. botocore has no model of it (so it is not in OPERATIONS); the
#: limits are those of the service's API reference.
INVOKE_DUPLEX = _operation(
    "InvokeEndpointWithBidirectionalStream",
    "invocations-bidirectional-stream",
    "EndpointName TargetVariant ModelInvocationPath ModelQueryString",
    outputs={"InvokedProductionVariant": "X-Amzn-Invoked-Production-Variant"},
    port=8443,
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
#: The operations of botocore's ``sagemaker-runtime`` model, by name.
OPERATIONS: Mapping[str, Operation] = {op.name: op for op in (INVOKE, INVOKE_STREAM, INVOKE_ASYNC)}
