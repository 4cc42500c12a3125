"""botocore's own path for the asyncio client: botocore builds, signs and judges each request,
the Rust transport carries it.

For the S3 calls of async inference jobs, and for a runtime client whose botocore machinery the
request path does not reproduce: the request is built exactly as ``_make_api_call`` builds it
(endpoint ruleset, serializer, ``before-call`` handlers, checksums), signed through its
``request-created`` event, offered to ``before-send`` handlers, retried as ``needs-retry``
answers, and its error answers parsed by the operation's parser. Signing runs in a worker
thread whenever the credentials may need a refresh, and adaptive mode's rate limiter too.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Generator
from typing import Any

from botocore.compress import maybe_compress_request
from botocore.httpchecksum import apply_request_checksum, resolve_checksum_context

from sagestream import _core
from sagestream._botocore import botocore_error, http_response
from sagestream._call import BLOCK, Retries, Step, response_metadata, send_async
from sagestream.exceptions import service_error_from_response

__all__ = ["BotocoreAttempts", "Reply", "call"]


class Reply:
    """One answer: status, headers, the parsed dict (None for a 2xx stream), the response."""

    __slots__ = ("parsed", "response")

    def __init__(self, response: Any, parsed: dict[str, Any] | None) -> None:
        self.response = response
        self.parsed = parsed

    @property
    def status(self) -> int:
        return int(self.response.status)

    @property
    def body(self) -> bytes:
        return bytes(self.response.body or b"")


def _needs_refresh(credentials: Any) -> bool:
    """Whether signing might refresh the credentials (a blocking call: IMDS, STS, SSO...)."""
    if credentials is None:
        return True  # signing raises NoCredentialsError; harmless in a thread
    refresh_needed = getattr(credentials, "refresh_needed", None)
    if refresh_needed is None:
        return False
    try:
        return bool(refresh_needed())
    except Exception:
        return True


def _first_answer(responses: list[tuple[Any, Any]]) -> Any:
    for _, answer in responses:
        if answer is not None:
            return answer
    return None


def _build(client: Any, operation_name: str, api_params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """botocore's ``_make_api_call`` up to the point where it would send (no I/O)."""
    operation_model = client._service_model.operation_model(operation_name)
    config = client.meta.config
    request_context = {
        "client_region": client.meta.region_name,
        "client_config": config,
        "has_streaming_input": operation_model.has_streaming_input,
        "auth_type": operation_model.resolved_auth_type,
        "unsigned_payload": operation_model.unsigned_payload,
        "auth_options": client._service_model.metadata.get("auth"),
    }
    api_params = client._emit_api_params(
        api_params=api_params, operation_model=operation_model, context=request_context
    )
    endpoint_url, additional_headers, properties = client._resolve_endpoint_ruleset(
        operation_model, api_params, request_context
    )
    if properties:
        request_context["endpoint_properties"] = properties
    request_dict = client._convert_to_request_dict(
        api_params=api_params,
        operation_model=operation_model,
        endpoint_url=endpoint_url,
        context=request_context,
        headers=additional_headers,
    )
    resolve_checksum_context(request_dict, operation_model, api_params)
    service_id = client._service_model.service_id.hyphenize()
    _, answer = client.meta.events.emit_until_response(
        f"before-call.{service_id}.{operation_name}",
        model=operation_model,
        params=request_dict,
        request_signer=client._request_signer,
        context=request_context,
    )
    if answer is not None:  # botocore's Stubber, for one, answers here
        raise NotImplementedError(
            f"a before-call.{service_id}.{operation_name} handler answered the call in place "
            "of the service; sagestream.AsyncClient sends every request itself"
        )
    maybe_compress_request(config, request_dict, operation_model)
    apply_request_checksum(request_dict)
    return operation_model, request_dict


class BotocoreAttempts(Retries):
    """The attempts of one operation through the client's own machinery: botocore builds, signs
    and judges each attempt (its ``needs-retry`` answer is the delay), the transport sends it.

    The call's result is the :class:`Reply` of its last answer, an error answer included (parsed);
    a failure before any answer is raised once botocore's retry handler gives up.
    """

    def __init__(
        self,
        client: Any,
        transport: Any,
        operation_name: str,
        api_params: dict[str, Any],
        *,
        stream: bool,
        deadline: float | None,
        started: float,
        limit: int | None,
        error_limit: int | None,
    ) -> None:
        self._start(deadline, started)
        self.client = client
        self.transport = transport
        self.operation_name = operation_name
        self.stream = stream
        self.mode = "stream" if stream else "whole"
        self.limit = limit
        self.error_limit = error_limit
        self.operation_model, self.request_dict = _build(client, operation_name, api_params)
        self.endpoint = client._endpoint
        self.emitter = client.meta.events
        service_id = client._service_model.service_id.hyphenize()
        self.retry_event = f"needs-retry.{service_id}.{operation_name}"
        self.send_event = f"before-send.{service_id}.{operation_name}"
        self.blocking_send_hooks = (client.meta.config.retries or {}).get("mode") == "adaptive"
        self.prepared: Any = None
        self.body = b""
        self.reply: Reply | None = None

    def prepare(self) -> Generator[Step, Any, None]:
        """Build and sign this attempt's request, and offer it to ``before-send`` handlers
        (each in a worker thread when it may block: a credential refresh, adaptive mode's
        rate limiter, a file body)."""
        self.endpoint._update_retries_context(self.request_dict["context"], self.attempt)
        create = functools.partial(self.endpoint.create_request, self.request_dict, self.operation_model)
        if _needs_refresh(self.client._request_signer._credentials):
            prepared = yield BLOCK, create
        else:
            prepared = create()
        offer = functools.partial(self.emitter.emit, self.send_event, request=prepared)
        answers = (yield BLOCK, offer) if self.blocking_send_hooks else offer()
        if _first_answer(answers) is not None:
            raise NotImplementedError(
                f"a {self.send_event} handler answered the request in place of the network; "
                "sagestream.AsyncClient sends every request itself (use the sync Client)"
            )
        body = prepared.body
        if body is None:
            self.body = b""
        elif isinstance(body, str):
            self.body = body.encode("utf-8")
        elif isinstance(body, bytes | bytearray | memoryview):
            self.body = bytes(body)
        else:
            self.body = yield BLOCK, body.read
        self.prepared = prepared

    def send_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        prepared = self.prepared
        headers = [
            (k, v.decode("utf-8") if isinstance(v, bytes) else str(v)) for k, v in prepared.headers.items()
        ]
        return (
            (prepared.method, prepared.url, headers, self.body),
            {
                "sign": False,
                "mode": self.mode,
                "deadline": self.remaining(),
                "call_deadline": self.deadline,
                "limit": self.limit,
                "error_limit": self.error_limit,
            },
        )

    def failed(self, exc: BaseException) -> float:
        caught = botocore_error(exc, self.prepared.url)
        delay = self._ask_retry(None, caught)
        if delay is None:
            raise exc from caught
        self._last_error = exc
        return delay

    def answered(self, response: Any) -> float | None:
        reply = _reply(self.client, self.operation_model, response, self.stream, self.request_dict["context"])
        del response  # held by the reply
        delay = self._ask_retry(reply, None)
        if delay is None:
            self.reply = reply
            return None
        if self.deadline_at is not None:
            self._last_error = service_error_from_response(
                reply.parsed if reply.parsed is not None else {}, self.operation_name
            )
        reply.response.close()  # its body goes before the next attempt reads another
        return delay

    def result(self, response: Any) -> Reply:
        reply = self.reply
        assert reply is not None
        retries = self.attempt - 1
        if reply.parsed is not None:
            reply.parsed.setdefault(
                "ResponseMetadata", response_metadata(reply.response.headers, reply.status, retries)
            )["RetryAttempts"] = retries
        return reply

    def _ask_retry(self, reply: Reply | None, caught: BaseException | None) -> float | None:
        """botocore's ``needs-retry`` answer for this attempt: the delay before the next, or None."""
        response_arg = None
        if reply is not None:
            http = http_response(self.prepared.url, reply.status, reply.response.headers, reply.body)
            response_arg = (http, reply.parsed if reply.parsed is not None else {})
        try:
            delay = _first_answer(
                self.emitter.emit(
                    self.retry_event,
                    response=response_arg,
                    endpoint=self.endpoint,
                    operation=self.operation_model,
                    attempts=self.attempt,
                    caught_exception=caught,
                    request_dict=self.request_dict,
                )
            )
        except Exception as exc:
            # Legacy mode's checker says "no retry" for an exception by raising it.
            if caught is None or exc is not caught:
                raise
            return None
        if delay is None or delay is False:
            return None
        return float(delay)


async def call(
    client: Any,
    transport: Any,
    hub: _core.Hub,
    operation_name: str,
    api_params: dict[str, Any],
    *,
    stream: bool = False,
    deadline: float | None = None,
    started: float | None = None,
    limit: int | None = None,
    error_limit: int | None = None,
) -> Reply:
    """Run one operation through the client's own machinery, sending over ``transport``.

    Returns the reply of a successful call (with ``stream``: the response's parts unread), or
    of an error answer (parsed). Raises the sagestream transport error of a failure before any
    answer once botocore's retry handler gives up. ``deadline`` bounds every attempt and the
    waits between them, counted from ``started`` (``time.monotonic()``, default: now).
    ``limit`` / ``error_limit``: the most bytes of a 2xx / an error answer's body read (None:
    the transport's defaults, 25 MiB / 1 MiB).
    """
    attempts = BotocoreAttempts(
        client,
        transport,
        operation_name,
        api_params,
        stream=stream,
        deadline=deadline,
        started=time.monotonic() if started is None else started,
        limit=limit,
        error_limit=error_limit,
    )
    reply: Reply = await send_async(attempts, hub)
    return reply


def _reply(client: Any, operation_model: Any, response: Any, stream: bool, context: dict[str, Any]) -> Reply:
    """An answer, its body parsed unless it is a 2xx stream."""
    parsed: dict[str, Any] | None = None
    status = int(response.status)
    if not (stream and status < 300):
        data = bytes(response.body or b"")
        parsed = _parse(client, operation_model, status, response.headers, data, context)
    return Reply(response, parsed)


def _parse(
    client: Any,
    operation_model: Any,
    status: int,
    headers: dict[str, str],
    body: bytes,
    context: dict[str, Any],
) -> dict[str, Any]:
    from botocore.awsrequest import HeadersDict

    response_dict = {"headers": HeadersDict(headers), "status_code": status, "body": body, "context": context}
    parser = client._response_parser
    parsed: dict[str, Any] = parser.parse(response_dict, operation_model.output_shape)
    if status >= 300:
        code = parsed.get("Error", {}).get("Code")
        shape = client._service_model.shape_for_error_code(code) if code else None
        if shape is not None:
            parsed.update(parser.parse(response_dict, shape))
    elif operation_model.has_streaming_output:
        # A streaming blob payload (InvokeEndpoint's Body, GetObject's): the bytes as read.
        parsed[operation_model.output_shape.serialization["payload"]] = body
    return parsed
