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

import asyncio
import time
from typing import IO, Any

from botocore.compress import maybe_compress_request
from botocore.httpchecksum import apply_request_checksum, resolve_checksum_context

from sagestream import _core
from sagestream._botocore import botocore_error, http_response
from sagestream._call import deadline_passed, gave_up, response_metadata
from sagestream.exceptions import (
    ConnectError,
    ConnectionLostError,
    DeadlineExceededError,
    ReadTimeoutError,
    service_error_from_response,
)

__all__ = ["Reply", "call"]

_RETRYABLE = (ConnectError, ConnectionLostError, ReadTimeoutError)


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


def _read_all(fileobj: IO[bytes]) -> bytes:
    return fileobj.read()


async def _body_of(prepared: Any) -> bytes:
    body = prepared.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    return await asyncio.to_thread(_read_all, body)


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
    deadline_at = None if deadline is None else (time.monotonic() if started is None else started) + deadline
    last_error: BaseException | None = None
    operation_model, request_dict = _build(client, operation_name, api_params)
    endpoint = client._endpoint
    emitter = client.meta.events
    service_id = client._service_model.service_id.hyphenize()
    retry_event = f"needs-retry.{service_id}.{operation_name}"
    send_event = f"before-send.{service_id}.{operation_name}"
    blocking_send_hooks = (client.meta.config.retries or {}).get("mode") == "adaptive"
    context = request_dict["context"]
    mode = "stream" if stream else "whole"
    attempts = 1
    while True:
        endpoint._update_retries_context(context, attempts)
        if _needs_refresh(client._request_signer._credentials):
            prepared = await asyncio.to_thread(endpoint.create_request, request_dict, operation_model)
        else:
            prepared = endpoint.create_request(request_dict, operation_model)
        if blocking_send_hooks:
            answers = await asyncio.to_thread(emitter.emit, send_event, request=prepared)
        else:
            answers = emitter.emit(send_event, request=prepared)
        if _first_answer(answers) is not None:
            raise NotImplementedError(
                f"a {send_event} handler answered the request in place of the network; "
                "sagestream.AsyncClient sends every request itself (use the sync Client)"
            )
        headers = [
            (k, v.decode("utf-8") if isinstance(v, bytes) else str(v)) for k, v in prepared.headers.items()
        ]
        body = await _body_of(prepared)
        left = _left(deadline, deadline_at, last_error)
        reply: Reply | None
        failure: BaseException | None
        caught: BaseException | None
        try:
            response = await transport.send_async(
                hub,
                prepared.method,
                prepared.url,
                headers,
                body,
                sign=False,
                mode=mode,
                deadline=left,
                call_deadline=deadline,
                limit=limit,
                error_limit=error_limit,
            )
        except _RETRYABLE as exc:
            reply, failure, caught = None, exc, botocore_error(exc, prepared.url)
        except DeadlineExceededError as exc:
            if exc.__cause__ is None:
                exc.__cause__ = last_error
            raise
        else:
            reply, failure, caught = _reply(client, operation_model, response, stream, context), None, None
            del response  # held by the reply, which goes before the next attempt
        delay = _ask_retry(
            emitter,
            retry_event,
            endpoint,
            operation_model,
            request_dict,
            attempts,
            prepared.url,
            reply,
            caught,
        )
        if delay is None:
            break
        if deadline_at is not None:
            last_error = failure or service_error_from_response(
                reply.parsed if reply is not None and reply.parsed is not None else {}, operation_name
            )
            left = deadline_at - time.monotonic()
            if delay >= left:
                raise gave_up(deadline or 0.0, max(left, 0.0), delay, attempts, last_error)
        if reply is not None:
            reply.response.close()
            reply = None  # its body goes before the next attempt reads another
        await asyncio.sleep(delay)
        attempts += 1
    if failure is not None:
        raise failure from caught
    assert reply is not None
    if reply.parsed is not None:
        reply.parsed.setdefault(
            "ResponseMetadata", response_metadata(reply.response.headers, reply.status, attempts - 1)
        )["RetryAttempts"] = attempts - 1
    return reply


def _reply(client: Any, operation_model: Any, response: Any, stream: bool, context: dict[str, Any]) -> Reply:
    """An answer, its body parsed unless it is a 2xx stream."""
    parsed: dict[str, Any] | None = None
    status = int(response.status)
    if not (stream and status < 300):
        data = bytes(response.body or b"")
        parsed = _parse(client, operation_model, status, response.headers, data, context)
    return Reply(response, parsed)


def _ask_retry(
    emitter: Any,
    retry_event: str,
    endpoint: Any,
    operation_model: Any,
    request_dict: dict[str, Any],
    attempts: int,
    url: str,
    reply: Reply | None,
    caught: BaseException | None,
) -> float | None:
    """botocore's ``needs-retry`` answer for an attempt: the delay before the next, or None."""
    response_arg = None
    if reply is not None:
        http = http_response(url, reply.status, reply.response.headers, reply.body)
        response_arg = (http, reply.parsed if reply.parsed is not None else {})
    try:
        delay = _first_answer(
            emitter.emit(
                retry_event,
                response=response_arg,
                endpoint=endpoint,
                operation=operation_model,
                attempts=attempts,
                caught_exception=caught,
                request_dict=request_dict,
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


def _left(deadline: float | None, deadline_at: float | None, cause: BaseException | None) -> float | None:
    """Seconds left of the deadline (None: none); raises once it has passed."""
    if deadline_at is None:
        return None
    left = deadline_at - time.monotonic()
    if left <= 0:
        raise deadline_passed(deadline or 0.0, cause)
    return left


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
