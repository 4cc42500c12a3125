"""What a client takes from its botocore client, and the questions only botocore answers.

Taken once per client: the endpoint (botocore's resolver: sagemaker-runtime's rules take no
per-call input), the signing region and name, the transport settings of ``Config`` and
``verify``, and each operation's template — the headers botocore adds to every request of it
(User-Agent, the first attempt's ``amz-sdk-request``), proven by building botocore's request
beside the path's (:mod:`sagestream._proof`). Asked on the failure path only: whether an
attempt is worth a retry and after how long (the client's own retry handler: legacy, standard
or adaptive, ``max_attempts``, the retry quota), and what an error answer means (the
operation's response parser, modeled fields included).

A client whose botocore machinery does what this path cannot show to be the same — a handler
of the user's (``Stubber``, ``before-send`` hooks, ...), a request that differs from botocore's,
a signature version other than SigV4, a client certificate, proxy TLS settings — takes
botocore's own path instead (:attr:`Bridge.reason`), and says so once (``FallbackWarning``).
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import botocore
import botocore.exceptions
import botocore.handlers
from botocore.awsrequest import AWSResponse, HeadersDict

from sagestream import _core
from sagestream._caps import ResponseLimits
from sagestream._proof import PROBE_HANDLERS, RETRY_HEADER, Mismatch, Template, prove
from sagestream._route import Route
from sagestream.exceptions import FallbackWarning, ParamValidationError
from sagestream.service import BOTOCORE_SINCE

__all__ = ["OPERATIONS", "Bridge", "Route", "botocore_error", "http_response", "transport_for"]

SERVICE_ID = "sagemaker-runtime"
OPERATIONS = ("InvokeEndpointWithResponseStream", "InvokeEndpoint", "InvokeEndpointAsync")

#: The events whose handlers shape the request botocore builds. botocore's own handlers there
#: (``botocore.*``, ``boto3.*``) are proven per client, by building botocore's request beside
#: the path's (:mod:`sagestream._proof`): whatever they do shows in the request or is refused.
REQUEST_EVENTS = (
    "provide-client-params",
    "before-parameter-build",
    "before-call",
    "request-created",
    "choose-signer",
    "before-sign",
)

#: The events past the request: sending, the answer, retries. Their handlers do not show in a
#: request, so only those this path reproduces are taken (it asks ``needs-retry`` and tells
#: ``after-call`` itself, and lets adaptive mode's rate limiter see each attempt).
RESPONSE_EVENTS = ("before-send", "response-received", "needs-retry", "after-call", "after-call-error")

RESPONSE_HANDLERS = frozenset(
    {
        ("botocore.retryhandler", "RetryHandler"),
        ("botocore.retries.standard", "RetryHandler.needs_retry"),
        ("botocore.retries.standard", "RetryQuotaChecker.release_retry_quota"),
        ("botocore.retries.adaptive", "ClientRateLimiter.on_sending_request"),
        ("botocore.retries.adaptive", "ClientRateLimiter.on_receiving_response"),
    }
)

#: Handlers that answer nothing while an attribute of theirs is false: moto's stubber, which
#: moto registers for every botocore client once imported and enables only inside
#: ``mock_aws``. While it is on, calls take botocore's path, so moto sees them as it expects.
SWITCHED_HANDLERS = {("moto.core.botocore_stubber", "BotocoreStubber"): "enabled"}

#: Handlers whose module says the user means calls to go to them: no warning for those.
_INTENDED = ("botocore.stub",)


def _botocores(module: str) -> bool:
    return module.split(".")[0] in ("botocore", "boto3")


def _handler_identity(handler: Any) -> tuple[str, str]:
    function = getattr(handler, "__func__", handler)
    module = getattr(function, "__module__", None) or type(function).__module__
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return str(module), str(name)


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def transport_for(client: Any, region: str, service: str) -> tuple[Any, str | None]:
    """A ``_core.Transport`` with the settings of botocore ``client`` (its ``Config`` and
    ``verify``), or None and the reason it cannot honour them."""
    from botocore.httpsession import get_cert_path

    session = getattr(client._endpoint, "http_session", None)
    timeout = getattr(session, "_timeout", None)
    proxy_config = getattr(session, "_proxy_config", None)
    if session is None or timeout is None or proxy_config is None:
        return None, "the client's HTTP session is not botocore's URLLib3Session"
    if getattr(session, "_cert_file", None):
        return None, "Config(client_cert=...) is set"
    settings = getattr(proxy_config, "settings", None) or {}
    if any(value is not None for value in settings.values()):
        return None, "Config(proxies_config=...) is set"
    verify = getattr(session, "_verify", True)
    if verify is not False:
        verify = get_cert_path(verify)
    keepalive = any(
        option[:2] == (socket.SOL_SOCKET, socket.SO_KEEPALIVE) and option[2]
        for option in getattr(session, "_socket_options", [])
    )
    endpoint_host = urlsplit(client._endpoint.host).netloc
    proxies: dict[str, Any] = {}
    for scheme in ("http", "https"):
        url = proxy_config.proxy_url_for(f"{scheme}://{endpoint_host}")
        if not url:
            continue
        if not url.startswith("http:"):
            return None, f"the {scheme} proxy {_strip_userinfo(url)} is not an http:// proxy"
        proxies[f"{scheme}_proxy"] = _strip_userinfo(url)
        authorization = proxy_config.proxy_headers_for(url).get("Proxy-Authorization")
        if authorization:
            proxies[f"{scheme}_proxy_authorization"] = authorization

    def seconds(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and value > 0 else None

    transport = _core.Transport(
        region=region,
        service=service,
        connect_timeout=seconds(getattr(timeout, "connect_timeout", None)),
        read_timeout=seconds(getattr(timeout, "read_timeout", None)),
        max_pool_connections=int(getattr(session, "_max_pool_connections", 10)),
        tcp_keepalive=keepalive,
        verify=verify,
        **proxies,
    )
    return transport, None


@dataclass
class Credentials:
    """The frozen credentials the transport signs with, and until when they stay good."""

    valid_until: float = 0.0
    frozen: Any = None


@dataclass
class Bridge:
    """One client's botocore ``sagemaker-runtime`` client, seen from the request path."""

    client: Any
    endpoint_url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    #: Why botocore's own path is taken, or None when this path is.
    reason: str | None = None
    transport: Any = None
    #: A failure has been seen: standard mode's retry quota is then told of successes too.
    failed_once: bool = False
    #: The client's retry mode (``legacy``, ``standard``, ``adaptive``).
    retry_mode: str = "legacy"
    #: Inside AWS Lambda (botocore then adds the recursion-detection header).
    in_lambda: bool = False
    #: The client's ``observer=`` (see ``sagestream._call.AttemptObserver``).
    observer: Any = None
    #: Each operation's template (:mod:`sagestream._proof`), once proven.
    templates: dict[str, Template] | None = None
    #: Why botocore's path is taken whatever the handlers (a Config option, the signer...).
    _static_reason: str | None = None
    #: The client's ``response_limits=``: the most bytes of an answer read into memory.
    limits: ResponseLimits = field(default_factory=ResponseLimits)
    _credentials: Credentials = field(default_factory=Credentials)
    _handlers_seen: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Handlers of SWITCHED_HANDLERS, with the attribute that turns each on.
    _switched: list[tuple[Any, str]] = field(default_factory=list)
    _warned: str | None = None

    @classmethod
    def of(cls, client: Any, observer: Any = None, limits: ResponseLimits | None = None) -> Bridge:
        bridge = cls(client, observer=observer, limits=limits or ResponseLimits())
        bridge.retry_mode = str((client.meta.config.retries or {}).get("mode", "legacy"))
        bridge.in_lambda = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
        model = client._service_model
        bridge.routes = {op: Route.of(model.operation_model(op)) for op in OPERATIONS}
        signer = client._request_signer
        reason = None
        if getattr(signer, "_signature_version", "v4") not in ("v4", None):
            reason = f"signature_version={signer._signature_version!r} is not SigV4"
        transport, why = transport_for(client, signer._region_name, signer._signing_name)
        bridge.transport = transport
        reason = reason or why
        if reason is None:
            try:
                bridge.endpoint_url = bridge._resolve_endpoint()
            except Exception as exc:  # the resolver wants something only a call has
                reason = f"the endpoint is resolved per call ({exc})"
        bridge.reason = bridge._static_reason = reason
        if reason is not None:
            bridge._warn(reason)
        return bridge

    # --- set-up ----------------------------------------------------------------------------

    def _resolve_endpoint(self) -> str:
        client = self.client
        route = self.routes["InvokeEndpoint"]
        for r in self.routes.values():
            if r.model.context_parameters or r.model.static_context_parameters:
                raise ValueError(f"{r.name} has endpoint context parameters")
        context = {
            "client_region": client.meta.region_name,
            "client_config": client.meta.config,
            "has_streaming_input": False,
            "auth_type": route.model.resolved_auth_type,
            "unsigned_payload": route.model.unsigned_payload,
            "auth_options": client._service_model.metadata.get("auth"),
        }
        url, headers, properties = client._resolve_endpoint_ruleset(
            route.model, {"EndpointName": "e", "Body": b""}, context
        )
        signing = context.get("signing") or {}
        if headers:
            raise ValueError(f"the endpoint adds headers {sorted(headers)}")
        if signing.get("region") not in (None, self.client._request_signer._region_name):
            raise ValueError(f"the endpoint signs for region {signing.get('region')}")
        if signing.get("signing_name") not in (None, self.client._request_signer._signing_name):
            raise ValueError(f"the endpoint signs as {signing.get('signing_name')}")
        for scheme in (properties or {}).get("authSchemes", []):
            if scheme.get("name") not in ("sigv4", None):
                raise ValueError(f"the endpoint wants auth scheme {scheme.get('name')}")
        return str(url).rstrip("/")

    def _classify_handlers(self, emitter: Any) -> tuple[str | None, bool, list[tuple[Any, str]]]:
        """Why the handlers send calls down botocore's path (None: they do not), whether the
        user means them to (a ``Stubber``), and the switched handlers."""
        handlers = emitter._handlers
        switched: list[tuple[Any, str]] = []
        for op in OPERATIONS:
            for event in (*REQUEST_EVENTS, *RESPONSE_EVENTS):
                for handler in handlers.prefix_search(f"{event}.{SERVICE_ID}.{op}"):
                    identity = _handler_identity(handler)
                    module = identity[0]
                    if identity in SWITCHED_HANDLERS:
                        switched.append((handler, SWITCHED_HANDLERS[identity]))
                    elif module.startswith(_INTENDED):
                        return f"a {event} handler of {module} answers the calls", True, switched
                    elif identity in PROBE_HANDLERS:
                        continue
                    elif event in REQUEST_EVENTS and _botocores(module):
                        continue  # proven below, by the request it builds
                    elif identity not in RESPONSE_HANDLERS:
                        name = ".".join(identity)
                        return f"a {event} handler is registered ({name})", False, switched
        return None, False, switched

    def _recheck(self, seen: Any) -> None:
        """Look at the client's handlers again and, when they may let this path send, prove
        it (:func:`sagestream._proof.prove`)."""
        with self._lock:
            emitter: Any = getattr(self.client.meta.events, "_emitter", None)
            if getattr(emitter, "_lookup_cache", None) is not seen or seen is self._handlers_seen:
                return  # another thread did it already
            if getattr(emitter, "_handlers", None) is None:
                self.reason = "the client's event emitter is not botocore's"
                self._handlers_seen = seen
                self._warn(self.reason)
                return
            reason, intended, self._switched = self._classify_handlers(emitter)
            if reason is None:
                try:
                    found = prove(self, list(self.routes.values()), SERVICE_ID)
                except botocore.exceptions.NoCredentialsError:
                    # botocore signs probes only with the client's own credentials before
                    # 1.34.100, and there are none: prove again at the next call.
                    self.templates = None
                    self.reason = "not proven yet: botocore found no credentials to build a request with"
                    return
                if isinstance(found, Mismatch):
                    reason = str(found)
                else:
                    self.templates = found
            self.reason = reason
            # botocore replaces this dict whenever a handler is (un)registered, the proof's own
            # included: what is seen is what the handlers are after it.
            self._handlers_seen = emitter._lookup_cache
            if reason is not None and not intended:
                self._warn(reason)

    def _warn(self, reason: str) -> None:
        """Say once that this client takes botocore's path, why, and what to do."""
        if self._warned == reason:
            return
        self._warned = reason
        if reason.startswith("botocore's"):
            advice = (
                f"this is a difference between botocore {botocore.__version__} and sagestream: "
                "please report it with this message"
            )
        elif "handler" in reason:
            advice = "a client without that handler takes the request path"
        else:
            advice = "docs/architecture.md lists the Config options the request path honours"
        warnings.warn(
            f"calls through this client take botocore's own path, at several times the CPU "
            f"per call: {reason}; {advice}",
            FallbackWarning,
            stacklevel=4,
        )

    def fast(self) -> bool:
        """Whether this call can take the request path (a cheap check, made per call)."""
        if self._static_reason is not None:
            return False
        seen = getattr(self.client.meta.events._emitter, "_lookup_cache", None)
        if seen is not self._handlers_seen:
            self._recheck(seen)
        if self.reason is not None:
            return False
        return not any(getattr(handler, flag, True) for handler, flag in self._switched)

    def api_method(self, route: Route) -> str:
        """The client method name of ``route`` (``invoke_endpoint``...)."""
        method = self.client.meta.method_to_api_mapping
        return next(str(k) for k, v in method.items() if v == route.name)

    def user_agent(self) -> str:
        """The User-Agent of this client: botocore's own for InvokeEndpoint once proven (the
        bidirectional operation, which botocore does not have, sends it too)."""
        if self.templates is not None:
            for name, value in self.templates["InvokeEndpoint"].unsigned:
                if name.lower() == "user-agent":
                    return value
        creator = getattr(self.client, "_user_agent_creator", None)
        if creator is not None:
            return str(creator.to_string())
        return str(self.client.meta.config.user_agent)

    def template(self, route: Route) -> Template:
        """What every request of ``route`` carries as botocore sends it (proven by ``fast``)."""
        templates = self.templates
        if templates is None:
            raise RuntimeError("the request path was taken before it was proven")
        return templates[route.name]

    # --- per call --------------------------------------------------------------------------

    def credentials_fresh(self) -> bool:
        """Whether the transport's credentials can sign now without asking botocore."""
        return time.monotonic() < self._credentials.valid_until

    def refresh_credentials(self) -> None:
        """Freeze the client's current credentials into the transport (may block: IMDS, STS)."""
        credentials = self.client._request_signer._credentials
        if credentials is None:
            raise botocore.exceptions.NoCredentialsError()
        frozen = credentials.get_frozen_credentials()
        if frozen is None or frozen.access_key is None or frozen.secret_key is None:
            raise botocore.exceptions.NoCredentialsError()
        if frozen != self._credentials.frozen:
            self.transport.set_credentials(frozen.access_key, frozen.secret_key, frozen.token)
        if getattr(credentials, "_expiry_time", False) is None or not hasattr(credentials, "refresh_needed"):
            valid = math.inf  # static credentials
        elif hasattr(credentials, "_seconds_remaining"):
            left = credentials._seconds_remaining() - float(
                getattr(credentials, "_advisory_refresh_timeout", 900)
            )
            valid = time.monotonic() + max(0.0, left)
        else:
            valid = 0.0
        self._credentials = Credentials(valid_until=valid, frozen=frozen)

    def request(self, route: Route, params: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """URL, headers (to sign) and body of one call, as botocore would build them."""
        return route.request(self.endpoint_url, params)

    def trace_header(self) -> list[tuple[str, str]]:
        """The X-Ray trace header of a call, as botocore's ``add_recursion_detection_header``
        adds it: inside Lambda only, from the invocation's ``_X_AMZN_TRACE_ID`` (read per call:
        it changes with each invocation). botocore does not sign it (``SIGNED_HEADERS_BLACKLIST``)."""
        if not self.in_lambda:
            return []
        trace_id = os.environ.get("_X_AMZN_TRACE_ID")
        if not trace_id:
            return []
        return [("X-Amzn-Trace-Id", quote(trace_id, safe="-=;:+&[]{}\"',"))]

    def for_botocore(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """``params``, for a call botocore makes itself: refused, naming the botocore needed, when
        the installed model has no member for one of them (botocore would say only "unknown
        parameter")."""
        members = self.routes[operation].model.input_shape.members
        for name in params:
            if name not in members:
                since = BOTOCORE_SINCE.get((operation, name), "a later release")
                raise ParamValidationError(
                    f"{name} is not in botocore {botocore.__version__}'s model of {operation} "
                    f"(it is since botocore {since}), and this client takes botocore's path "
                    f"({self.reason}): upgrade botocore, or use a client on the request path"
                )
        return params

    # --- the failure path ------------------------------------------------------------------

    def retry_context(self) -> dict[str, Any]:
        """The per-call context botocore's retry handlers keep their state in."""
        return {"client_region": self.client.meta.region_name, "client_config": self.client.meta.config}

    def retry_header(self, context: dict[str, Any], attempt: int, last: Any = None) -> str:
        """``amz-sdk-request`` for ``attempt`` > 1, as botocore's ``add_retry_headers`` writes
        it from the retries context its endpoint keeps."""
        self.client._endpoint._update_retries_context(context, attempt, last)
        request = _HeadersOnly(context)
        botocore.handlers.add_retry_headers(request)
        return str(request.headers[RETRY_HEADER])

    def ask_retry(
        self,
        route: Route,
        attempts: int,
        context: dict[str, Any],
        *,
        response: tuple[Any, dict[str, Any]] | None = None,
        caught: BaseException | None = None,
    ) -> float | None:
        """botocore's answer to "retry?": the delay in seconds, or None."""
        self.failed_once = (
            self.failed_once
            or caught is not None
            or (response is not None and response[0].status_code >= 300)
        )
        try:
            answers = self.client.meta.events.emit(
                f"needs-retry.{SERVICE_ID}.{route.name}",
                response=response,
                endpoint=self.client._endpoint,
                operation=route.model,
                attempts=attempts,
                caught_exception=caught,
                request_dict={"context": context},
            )
        except Exception as exc:
            # Legacy mode's checker says "no retry" for an exception by raising it.
            if caught is not None and exc is caught:
                return None
            raise
        for _, answer in answers:
            if answer is not None and answer is not False:
                return float(answer)
            if answer is False:
                return None
        return None

    def after_call(self, route: Route, context: dict[str, Any], http: Any, parsed: dict[str, Any]) -> None:
        """botocore's ``after-call`` of a successful answer (standard mode's quota release)."""
        self.client.meta.events.emit(
            f"after-call.{SERVICE_ID}.{route.name}",
            http_response=http,
            parsed=parsed,
            model=route.model,
            context=context,
        )

    def tells_successes(self) -> bool:
        """Whether successes must reach botocore's retry handler (its rate or quota track them)."""
        mode = self.retry_mode
        return mode == "adaptive" or (mode == "standard" and self.failed_once)

    def parse(self, route: Route, status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """The operation's parser on an answer (errors with their modeled fields)."""
        client = self.client
        response_dict = {
            "headers": HeadersDict(headers),
            "status_code": status,
            "body": body,
            "context": {"operation_name": route.name},
        }
        parser = client._response_parser
        parsed: dict[str, Any] = parser.parse(response_dict, route.model.output_shape)
        if status >= 300:
            code = parsed.get("Error", {}).get("Code")
            shape = client._service_model.shape_for_error_code(code) if code else None
            if shape is not None:
                parsed.update(parser.parse(response_dict, shape))
        return parsed


class _HeadersOnly:
    """What botocore's ``add_retry_headers`` reads and writes of a request."""

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context
        self.headers: dict[str, str] = {}


class _Raw:
    """The ``raw`` of an ``AWSResponse`` whose body was read already."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def http_response(url: str, status: int, headers: dict[str, str], body: bytes) -> Any:
    """A botocore ``AWSResponse`` of an answer, for the retry handlers."""
    return AWSResponse(url, status, HeadersDict(headers), _Raw(body))


def botocore_error(exc: BaseException, url: str) -> Any:
    """The botocore exception botocore's retry rules know for a transport failure."""
    from sagestream.exceptions import ConnectError, ConnectionLostError, ReadTimeoutError

    bexc = botocore.exceptions
    if isinstance(exc, ConnectError):
        if exc.kind == "timeout":
            return bexc.ConnectTimeoutError(endpoint_url=url, error=exc)
        if exc.kind == "tls":
            return bexc.SSLError(endpoint_url=url, error=exc)
        if exc.kind == "proxy":
            return bexc.ProxyConnectionError(proxy_url=url, error=exc)
        return bexc.EndpointConnectionError(endpoint_url=url, error=exc)
    if isinstance(exc, ReadTimeoutError):
        return bexc.ReadTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, ConnectionLostError):
        return bexc.ConnectionClosedError(endpoint_url=url, error=exc)
    return exc


invocation_id = _core.invocation_id
