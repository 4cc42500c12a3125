"""The proof that a client may take the request path: botocore's request beside the path's.

For each operation, botocore builds the request it would send — its whole handler chain with
the client's own handlers, nothing sent: a ``before-send`` handler takes the request — for a
few sets of probe parameters (every member the path can send, twice with different values, and
the required ones alone). The request path builds its own request for the same parameters and
signs it with the same credentials at the same instant (``Transport.preview``). The client
takes the path when the two agree on the method, the URL, the body, every header and the
signature itself.

The headers botocore adds that do not depend on the call — its User-Agent, the
``amz-sdk-request`` of a first attempt (``attempt=1; max=3`` since botocore 1.44 seeds the
maximum), and whatever a later release adds that way — become the operation's
:class:`Template`, sent as botocore sends them. A header that differs between two calls in a
way the parameters do not explain is a handler whose effect changes per call: that, like any
other difference, is the reason to take botocore's path, named in the result.

Why by hand: botocore offers no way to build a request without sending it but its own event
system, which is what this uses (a ``before-send`` handler raising before anything is sent).
"""

from __future__ import annotations

import calendar
import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import botocore.credentials
import botocore.exceptions

from sagestream import _core
from sagestream._route import Route

__all__ = ["PROBE_ACCESS_KEY", "Bridge", "Mismatch", "Template", "probing", "prove"]

#: The credentials botocore signs the probes with, where it lets a call bring its own
#: (``request_credentials`` in the signing context): the client's are not refreshed, not
#: needed, and not used to sign anything that is not sent.
PROBE_ACCESS_KEY = "AKIDSAGESTREAMPROBE"
_PROBE_SECRET = "sagestream-probe-secret"

#: The header botocore's ``add_retry_headers`` writes per attempt; the template holds the
#: first attempt's value, later attempts compute theirs (``Bridge.retry_headers``).
RETRY_HEADER = "amz-sdk-request"
INVOCATION_HEADER = "amz-sdk-invocation-id"

#: Headers neither side controls in the comparison: http.client and hyper add the length.
_TRANSPORT_HEADERS = frozenset({"content-length", "host", "accept-encoding"})


class Bridge(Protocol):
    """What the proof needs of a client's bridge (``sagestream._botocore.Bridge``)."""

    client: Any
    transport: Any

    def request(self, route: Route, params: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """URL, headers (to sign) and body of the path's request for ``params``."""

    def api_method(self, route: Route) -> str:
        """botocore's client method of ``route``."""


@dataclass(frozen=True)
class Template:
    """What the path adds to every request of one operation, exactly as botocore adds it."""

    #: Constant headers botocore signs (none for these operations today).
    signed: tuple[tuple[str, str], ...]
    #: Constant headers botocore adds after signing: ``User-Agent``, the first attempt's
    #: ``amz-sdk-request``, ...
    unsigned: tuple[tuple[str, str], ...]

    def after(self, invocation: str, retry: str | None = None) -> list[tuple[str, str]]:
        """The unsigned headers of an attempt: ``retry`` replaces the first attempt's
        ``amz-sdk-request`` (None: the first attempt)."""
        if retry is None:
            return [(INVOCATION_HEADER, invocation), *self.unsigned]
        headers = [(INVOCATION_HEADER, invocation)]
        for name, value in self.unsigned:
            if name.lower() == RETRY_HEADER:
                headers.append((name, retry))
            else:
                headers.append((name, value))
        if not any(n.lower() == RETRY_HEADER for n, _ in self.unsigned):
            headers.append((RETRY_HEADER, retry))
        return headers


@dataclass(frozen=True)
class Mismatch:
    """Why the path cannot send what botocore sends for an operation."""

    operation: str
    difference: str

    def __str__(self) -> str:
        return f"botocore's {self.operation} request differs from the request path's: {self.difference}"


class _Captured(Exception):
    """Raised by the probe's ``before-send`` handler: the request, not sent."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


#: Set while this thread builds a probe: the handlers below act only then, so the client's
#: other calls (on other threads) pass through untouched.
_PROBING: contextvars.ContextVar[Any] = contextvars.ContextVar("sagestream_probing", default=None)


def probing() -> bool:
    """Whether this thread is building a probe (a call that will send nothing)."""
    return _PROBING.get() is not None


def _take_request(request: Any, **_: Any) -> None:
    """``before-send``: while probing, take the request and send nothing."""
    if _PROBING.get() is not None:
        raise _Captured(request)


def _lend_credentials(context: Any = None, **_: Any) -> None:
    """``before-call``: while probing, have botocore sign with the probe's credentials."""
    credentials = _PROBING.get()
    if credentials is not None and isinstance(context, dict):
        context.setdefault("signing", {})["request_credentials"] = credentials


#: The handlers the proof registers for its duration (module, name), for the handler check.
PROBE_HANDLERS = frozenset(
    {(__name__, _take_request.__qualname__), (__name__, _lend_credentials.__qualname__)}
)


@contextmanager
def _probing(client: Any, service_id: str) -> Iterator[None]:
    events = client.meta.events
    send_event, call_event = f"before-send.{service_id}", f"before-call.{service_id}"
    events.register_first(send_event, _take_request, unique_id="sagestream-probe-send")
    events.register_last(call_event, _lend_credentials, unique_id="sagestream-probe-call")
    token = _PROBING.set(botocore.credentials.Credentials(PROBE_ACCESS_KEY, _PROBE_SECRET))
    try:
        yield
    finally:
        _PROBING.reset(token)
        events.unregister(send_event, unique_id="sagestream-probe-send")
        events.unregister(call_event, unique_id="sagestream-probe-call")


@dataclass(frozen=True)
class _Request:
    """A request as botocore built it: what the comparison reads."""

    method: str
    url: str
    headers: dict[str, str]  # lower-case names
    names: dict[str, str]  # lower-case → as botocore spells it
    body: bytes

    @classmethod
    def of(cls, request: Any) -> _Request:
        headers: dict[str, str] = {}
        names: dict[str, str] = {}
        for name, value in request.headers.items():
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            headers[name.lower()] = text
            names[name.lower()] = name
        body = request.body
        if body is None:
            body = b""
        elif isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes | bytearray):
            body = body.read() if hasattr(body, "read") else bytes(body)
        return cls(str(request.method), str(request.url), headers, names, bytes(body))

    def authorization(self) -> tuple[str, str, frozenset[str]]:
        """The access key, credential scope (date aside) and signed header names."""
        value = self.headers.get("authorization", "")
        algorithm, _, rest = value.partition(" ")
        fields = dict(part.strip().partition("=")[::2] for part in rest.split(",") if "=" in part)
        key, _, scope = fields.get("Credential", "").partition("/")
        scope = scope.partition("/")[2]  # region/service/aws4_request
        signed = frozenset(filter(None, fields.get("SignedHeaders", "").split(";")))
        return key, f"{algorithm} {scope}", signed


def _probe_value(member: Any, variant: int) -> Any:
    """A value botocore's validator accepts for a header or URI member, per variant."""
    minimum = member.metadata.get("min")
    maximum = member.metadata.get("max")
    if member.type_name == "integer":
        low = int(minimum) if minimum is not None else 1
        high = int(maximum) if maximum is not None else low + 1
        return min(low + variant, high)
    # Spaces, a slash, '=' and ',' exercise how each side canonicalizes a header value.
    text = ("probe a/1=2,x", "probe b/3=4,y", "probe")[variant]
    if maximum is not None and len(text) > int(maximum):
        text = text[: int(maximum)] if int(maximum) > 1 else "ab"[variant % 2]
    if minimum is not None and len(text) < int(minimum):
        text = text + "x" * (int(minimum) - len(text))
    return text


def _endpoint_value(variant: int) -> str:
    return ("probe-endpoint-a", "probe-endpoint-b", "probe-endpoint")[variant]


def probe_params(route: Route, variant: int) -> dict[str, Any]:
    """Parameters of a probe: variants 0 and 1 set every member the path can send (with
    different values), variant 2 only the required ones."""
    shape = route.model.input_shape
    required = set(shape.required_members)
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        if variant == 2 and name not in required:
            continue
        location = member.serialization.get("location")
        if name == route.payload:
            params[name] = (b"probe-a", b'{"probe": "b"}', b"p")[variant]
        elif location == "uri":
            params[name] = _endpoint_value(variant)
        elif location == "header" and member.type_name in ("string", "integer"):
            params[name] = _probe_value(member, variant)
    return params


def _capture(bridge: Bridge, route: Route, params: dict[str, Any]) -> _Request:
    client = bridge.client
    api = bridge.api_method(route)
    try:
        getattr(client, api)(**params)
    except _Captured as captured:
        return _Request.of(captured.request)
    raise RuntimeError(f"botocore answered {route.name} in place of the service")


def _compare(
    bridge: Bridge, route: Route, params: dict[str, Any], theirs: _Request
) -> tuple[dict[str, str], str | None]:
    """The constant headers botocore adds beyond the path's request, and the first difference
    between the two requests (None when they agree)."""
    url, signed, body = bridge.request(route, params)
    if theirs.method != "POST":
        return {}, f"botocore sends {theirs.method}, the path POST"
    if theirs.url != url:
        return {}, f"botocore sends to {theirs.url}, the path to {url}"
    if theirs.body != body:
        return {}, f"the bodies differ ({len(theirs.body)} bytes against {len(body)})"
    ours = {name.lower(): value for name, value in signed}
    for name, value in ours.items():
        if name not in theirs.headers:
            return {}, f"the path sends {name}, botocore does not"
        if theirs.headers[name] != value:
            return {}, f"{name} is {theirs.headers[name]!r} from botocore, {value!r} from the path"
    # The X-Ray trace header changes per Lambda invocation: each call adds it (trace_header).
    skipped = {"authorization", "x-amz-date", "x-amz-security-token", "x-amzn-trace-id", INVOCATION_HEADER}
    extra = {
        name: value
        for name, value in theirs.headers.items()
        if name not in ours and name not in skipped and name not in _TRANSPORT_HEADERS
    }
    return extra, None


def _check_signature(
    bridge: Bridge,
    route: Route,
    params: dict[str, Any],
    theirs: _Request,
    signed_extra: list[tuple[str, str]],
) -> str | None:
    """The signing difference between botocore's request and the path's, or None."""
    key, scope, signed_names = theirs.authorization()
    url, signed, body = bridge.request(route, params)
    transport = bridge.transport
    expected_scope = f"AWS4-HMAC-SHA256 {transport_scope(bridge)}"
    if scope != expected_scope:
        return f"botocore signs with {scope or 'no signature'}, the path with {expected_scope}"
    ours_names = {name.lower() for name, _ in signed + signed_extra} | {"host", "x-amz-date"}
    theirs_names = set(signed_names) - {"x-amz-security-token"}
    if theirs_names != ours_names:
        return f"botocore signs {';'.join(sorted(theirs_names))}, the path {';'.join(sorted(ours_names))}"
    if key != PROBE_ACCESS_KEY:
        return None  # signed with the client's own credentials: the names and scope agree
    stamp = theirs.headers.get("x-amz-date", "")
    try:
        epoch = float(calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return f"botocore's X-Amz-Date {stamp!r} is not a SigV4 time"
    preview = dict(
        _core.sign_preview(
            transport,
            "POST",
            url,
            [*signed, *signed_extra],
            body,
            access_key=PROBE_ACCESS_KEY,
            secret_key=_PROBE_SECRET,
            epoch=epoch,
        )
    )
    if preview.get("authorization") != theirs.headers.get("authorization"):
        return "the signatures differ for the same request, credentials and time"
    return None


def transport_scope(bridge: Bridge) -> str:
    """``region/service/aws4_request`` of the path's signatures."""
    signer = bridge.client._request_signer
    return f"{signer._region_name}/{signer._signing_name}/aws4_request"


def prove(bridge: Bridge, routes: list[Route], service_id: str) -> dict[str, Template] | Mismatch:
    """Each operation's template, or the first operation whose requests differ.

    Raises botocore's ``NoCredentialsError`` when botocore signs probes only with the client's
    own credentials (before 1.35-ish botocore) and the client has none: nothing is proven then.
    """
    templates: dict[str, Template] = {}
    with _probing(bridge.client, service_id):
        for route in routes:
            found = _prove_one(bridge, route)
            if isinstance(found, Mismatch):
                return found
            templates[route.name] = found
    return templates


def _prove_one(bridge: Bridge, route: Route) -> Template | Mismatch:
    constant: dict[str, str] | None = None
    names: dict[str, str] = {}
    signed_names: frozenset[str] = frozenset()
    for variant in (0, 1, 2):
        params = probe_params(route, variant)
        try:
            theirs = _capture(bridge, route, params)
        except (botocore.exceptions.NoCredentialsError, _Captured):
            raise
        except botocore.exceptions.BotoCoreError as exc:
            return Mismatch(route.name, f"botocore refuses the probe parameters ({exc})")
        extra, difference = _compare(bridge, route, params, theirs)
        if difference is not None:
            return Mismatch(route.name, difference)
        if constant is None:
            constant = extra
        elif extra != constant:
            changed = sorted(set(extra.items()) ^ set(constant.items()))
            name = changed[0][0]
            return Mismatch(route.name, f"botocore's {name} header changes from one call to the next")
        names.update((n, theirs.names[n]) for n in extra)
        signed_names = theirs.authorization()[2]
        signed_extra = [(names[n], v) for n, v in extra.items() if n in signed_names]
        difference = _check_signature(bridge, route, params, theirs, signed_extra)
        if difference is not None:
            return Mismatch(route.name, difference)
    constant = constant or {}
    return Template(
        signed=tuple((names[n], v) for n, v in constant.items() if n in signed_names),
        unsigned=tuple((names[n], v) for n, v in constant.items() if n not in signed_names),
    )
