"""The synchronous client: a boto3 session in, payload parts out, typed errors.

Each call runs on the request path (:mod:`sagestream._call`: Rust sends and signs, the calling
thread waits with the GIL released), unless the botocore client holds machinery that path does
not reproduce; then botocore sends it and sagestream decodes the body (:mod:`._transport`).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from sagestream import _jobs, _observe, _params
from sagestream._base import BaseClient
from sagestream._botocore import Bridge
from sagestream._call import Call, send
from sagestream._jobs import InferenceJob
from sagestream._operations import (
    ASYNC_OPERATION,
    INVOKE_OPERATION,
    STREAM_OPERATION,
    AsyncAnswer,
    InvokeResult,
    StreamInfo,
    parse_new_session,
)
from sagestream._s3 import BotoS3
from sagestream._stream import Closing, ResponseStream
from sagestream._transport import botocore_errors, open_body, read_capped
from sagestream.service import INVOKE, INVOKE_STREAM

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from sagestream._duplex import Data, DuplexSession

__all__ = ["Client", "InvokeResult", "parse_new_session", "stream_from_boto3"]


class Client(BaseClient, Closing):
    """Streaming client for SageMaker AI endpoints on top of a botocore ``sagemaker-runtime`` client.

    botocore resolves the endpoint, the credentials and the retry policy and parses error
    answers; sagestream sends and signs the requests and decodes the response stream in Rust.

    ``verify`` is botocore's: ``False`` skips TLS certificate checks, a path names a CA bundle.
    ``observer`` is told of each attempt of each call (:class:`sagestream.AttemptObserver`).
    ``response_limits`` bounds what an answer may bring into memory
    (:class:`sagestream.ResponseLimits`: 25 MiB for a body, 1 MiB for an error's, by default).
    """

    _bridge: Bridge

    def _open(self) -> None:
        self._new_bridge()
        self._s3 = BotoS3(self._new_s3, self._bridge.limits)

    @property
    def region_name(self) -> str:
        """The client's region."""
        return str(self._runtime.meta.region_name)

    @property
    def runtime_client(self) -> Any:
        """The underlying botocore ``sagemaker-runtime`` client."""
        return self._runtime

    @property
    def fast_path(self) -> bool:
        """Whether calls take the request path (see :attr:`fast_path_reason` when not)."""
        return self._bridge.fast()

    def close(self) -> None:
        """Close the connection pools (open streams keep their connections until they end)."""
        if self._bridge.transport is not None:
            self._bridge.transport.close()
        close = getattr(self._runtime, "close", None)
        if close is not None:
            close()

    # --- sending ---------------------------------------------------------------------------

    def _send(
        self, operation: str, params: dict[str, Any], *, stream: bool = False, deadline: float | None = None
    ) -> tuple[Call, Any, dict[str, Any]]:
        """One call, on this thread: its last response (None when botocore sent it) and the
        botocore-style answer of its headers (with the body read, when botocore read it)."""
        watch = None if _observe.watcher is None else self._watch(operation, params)
        started = time.monotonic()
        call = Call(
            self._bridge, operation, params, stream=stream, deadline=deadline, started=started, watch=watch
        )
        if watch is None:
            return call, *self._sent(call)
        with _observe.Failures(watch):
            return call, *self._sent(call)

    def _sent(self, call: Call) -> tuple[Any, dict[str, Any]]:
        if self._bridge.fast():
            response, answer = send(call)
            return response, answer
        answer = self._via_botocore(call)
        if call.watch is not None:
            _observe.answered_botocore(call.watch, answer)
        return None, answer

    def _via_botocore(self, call: Call) -> dict[str, Any]:
        """botocore's own call: its parsed answer, a whole body read within the limit."""
        bridge = self._bridge
        operation = call.operation
        params = bridge.for_botocore(operation, call.params)
        with botocore_errors(operation):
            answer: dict[str, Any] = getattr(self._runtime, bridge.api_method(bridge.routes[operation]))(
                **params
            )
            body = answer.get("Body")
            if call.mode == "whole" and body is not None and not isinstance(body, bytes):
                answer["Body"] = read_capped(answer, bridge.limits.body)  # (botocore's Stubber answers bytes)
        return answer

    # --- operations ------------------------------------------------------------------------

    def invoke_stream(
        self,
        endpoint_name: str,
        body: _params.Body,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        target_variant: str | None = None,
        target_container_hostname: str | None = None,
        inference_id: str | None = None,
        inference_component_name: str | None = None,
        session_id: str | None = None,
        prefix_aware_id: str | None = None,
        deadline: float | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> ResponseStream:
        """Invoke ``endpoint_name`` with a streamed response (InvokeEndpointWithResponseStream).

        ``deadline`` bounds the whole call in seconds — connecting, the response headers and
        every part (``DeadlineExceededError``) — besides the config's read timeout, which
        bounds each wait for bytes (``ReadTimeoutError``).
        """
        params = self._params(INVOKE_STREAM, locals(), extra)
        call, response, answer = self._send(STREAM_OPERATION, params, stream=True, deadline=deadline)
        info = StreamInfo.of(answer)
        if response is not None:
            return ResponseStream(self._parts(call, response.parts(), False), info, started=call.started)
        read_timeout = self._runtime.meta.config.read_timeout
        with _observe.Failures(call.watch):
            parts, owner = open_body(
                answer["Body"]._raw_stream, deadline=call.remaining(), read_timeout=read_timeout
            )
        parts = self._parts(call, parts, False)
        return ResponseStream(parts, info, started=call.started, on_close=lambda: owner.release(False))

    def invoke(
        self,
        endpoint_name: str,
        body: _params.Body,
        *,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        target_model: str | None = None,
        target_variant: str | None = None,
        target_container_hostname: str | None = None,
        inference_id: str | None = None,
        enable_explanations: str | None = None,
        inference_component_name: str | None = None,
        session_id: str | None = None,
        prefix_aware_id: str | None = None,
        deadline: float | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> InvokeResult:
        """Invoke ``endpoint_name`` and read the whole answer (InvokeEndpoint).

        ``session_id="NEW_SESSION"`` opens a stateful session: its id is in
        ``new_session_id`` and can then be passed to :meth:`invoke_stream`.
        """
        params = self._params(INVOKE, locals(), extra)
        call, response, answer = self._send(INVOKE_OPERATION, params, deadline=deadline)
        return self._invoke_result(call, response, answer)

    def _invoke_async_call(self, params: dict[str, Any]) -> AsyncAnswer:
        """InvokeEndpointAsync itself (the job handles' submit step)."""
        call, response, answer = self._send(ASYNC_OPERATION, params)
        return self._async_answer(call, response, answer)

    def invoke_async(
        self,
        endpoint_name: str,
        *,
        input_location: str | None = None,
        body: bytes | None = None,
        input: bytes | str | os.PathLike[str] | None = None,
        input_prefix: str | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        inference_id: str | None = None,
        request_ttl_seconds: int | None = None,
        invocation_timeout_seconds: int | None = None,
        s3_output_path_extension: str | None = None,
        filename: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> InferenceJob:
        """Start an asynchronous inference job (InvokeEndpointAsync); see ``InferenceJob.wait``.

        Give one input: ``input_location`` (an ``s3://`` URI), ``body`` (the input itself, at
        most 128,000 bytes, sent inline with the request), or ``input`` (the content as ``bytes``
        or text, or a file: an ``os.PathLike`` or a ``str`` naming one) with ``input_prefix`` (an
        ``s3://`` prefix to upload it under).
        """
        return _jobs.submit(
            self._s3, self._invoke_async_call, locals(), input=input, input_prefix=input_prefix, extra=extra
        )

    def invoke_bidirectional(
        self,
        endpoint_name: str,
        *,
        target_variant: str | None = None,
        model_invocation_path: str | None = None,
        model_query_string: str | None = None,
        input: Iterable[Data] | None = None,
        deadline: float | None = None,
        endpoint_url: str | None = None,
    ) -> DuplexSession:
        """Open a full-duplex session (InvokeEndpointWithBidirectionalStream, HTTP/2).

        Send parts with ``session.send(...)`` and read the answer's parts by iterating the
        session, at the same time; ``input`` (an iterable) is sent from a background thread
        instead, then the input is closed. ``endpoint_url`` (or the client's
        ``duplex_endpoint_url``, or ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2``) overrides the
        service's ``https://runtime.sagemaker.{region}.amazonaws.com:8443``; a client configured
        with a host of its own (``endpoint_url=``...) connects to port 8443 of that host.
        """
        from sagestream._duplex import Opening

        return Opening(self._bridge, locals(), endpoint_url or self.duplex_endpoint_url).open(input)


def stream_from_boto3(response: dict[str, Any], *, deadline: float | None = None) -> ResponseStream:
    """sagestream's stream over a stock boto3 ``invoke_endpoint_with_response_stream`` response,
    on the same connection: parts as ``bytes``, ``.lines()`` / ``.sse()`` / ``.json_lines()``,
    metrics and sagestream's typed errors, decoded in Rust. The response's ``Body`` must not
    have been iterated yet."""
    body = response.get("Body") if isinstance(response, dict) else None
    raw = getattr(body, "_raw_stream", None)
    if raw is None or not hasattr(raw, "stream"):
        raise TypeError("expected the response of a boto3 invoke_endpoint_with_response_stream call")
    read_timeout = None
    parts, owner = open_body(raw, deadline=deadline, read_timeout=read_timeout)
    return ResponseStream(
        parts, StreamInfo.of(response), started=time.monotonic(), on_close=lambda: owner.release(False)
    )
