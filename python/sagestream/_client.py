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
from sagestream._botocore import Bridge
from sagestream._call import AttemptObserver, Attempts, response_metadata, send
from sagestream._caps import ResponseLimits
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
from sagestream._stream import ResponseStream
from sagestream._transport import botocore_errors, open_body, read_capped
from sagestream.service import INVOKE, INVOKE_STREAM

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import boto3
    from botocore.config import Config

    from sagestream._duplex import Data, DuplexSession

__all__ = ["Client", "InvokeResult", "parse_new_session", "stream_from_boto3"]


class Client:
    """Streaming client for SageMaker AI endpoints on top of a botocore ``sagemaker-runtime`` client.

    botocore resolves the endpoint, the credentials and the retry policy and parses error
    answers; sagestream sends and signs the requests and decodes the response stream in Rust.

    ``verify`` is botocore's: ``False`` skips TLS certificate checks, a path names a CA bundle.
    ``observer`` is told of each attempt of each call (:class:`sagestream.AttemptObserver`).
    ``response_limits`` bounds what an answer may bring into memory
    (:class:`sagestream.ResponseLimits`: 25 MiB for a body, 1 MiB for an error's, by default).
    """

    #: Where :meth:`invoke_bidirectional` connects (None: the service's endpoint).
    duplex_endpoint_url: str | None

    def __init__(
        self,
        session: boto3.Session | None = None,
        *,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        config: Config | None = None,
        s3_endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        verify: bool | str | None = None,
        observer: AttemptObserver | None = None,
        duplex_endpoint_url: str | None = None,
        response_limits: ResponseLimits | None = None,
    ) -> None:
        import boto3

        if session is not None and not hasattr(session, "client"):
            raise TypeError(
                f"session must be a boto3.Session, got {type(session).__name__}"
                " (pass the region as region_name=...)"
            )
        if session is None:
            session = boto3.Session(
                region_name=region_name,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
            )
        runtime = session.client(
            "sagemaker-runtime",
            region_name=region_name,
            endpoint_url=endpoint_url,
            config=config,
            verify=verify,
        )
        self._attach(
            runtime,
            session,
            config=config,
            verify=verify,
            s3_endpoint_url=s3_endpoint_url,
            observer=observer,
            limits=response_limits,
        )
        self.duplex_endpoint_url = duplex_endpoint_url

    def _attach(
        self,
        runtime: Any,
        session: Any,
        *,
        config: Any,
        verify: Any,
        s3_endpoint_url: str | None,
        observer: AttemptObserver | None,
        limits: ResponseLimits | None,
    ) -> None:
        self._session = session
        self._runtime: Any = runtime
        self._bridge = Bridge.of(runtime, observer, limits)
        self.duplex_endpoint_url = None
        self._s3 = BotoS3(
            lambda: session.client(
                "s3",
                region_name=runtime.meta.region_name,
                endpoint_url=s3_endpoint_url,
                config=config,
                verify=verify,
            ),
            self._bridge.limits,
        )

    @classmethod
    def from_boto3(
        cls,
        client: Any,
        *,
        s3_endpoint_url: str | None = None,
        observer: AttemptObserver | None = None,
        response_limits: ResponseLimits | None = None,
    ) -> Client:
        """A Client over an existing boto3 / botocore ``sagemaker-runtime`` client: its
        credentials, region, endpoint, ``Config`` and ``verify`` (and its handlers: a client
        with handlers of its own takes botocore's path). Async jobs reach S3 with the same
        credentials and region."""
        self = cls.__new__(cls)
        self._attach(
            _runtime_client(client),
            session_of(client),
            config=client.meta.config,
            verify=getattr(getattr(client._endpoint, "http_session", None), "_verify", None),
            s3_endpoint_url=s3_endpoint_url,
            observer=observer,
            limits=response_limits,
        )
        return self

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

    @property
    def fast_path_reason(self) -> str | None:
        """Why calls take botocore's own path instead, or None."""
        self._bridge.fast()
        return self._bridge.reason

    def idle_connections(self) -> int:
        """Connections of the request path kept open for the next calls."""
        transport = self._bridge.transport
        return int(transport.idle_connections()) if transport is not None else 0

    def close(self) -> None:
        """Close the connection pools (open streams keep their connections until they end)."""
        if self._bridge.transport is not None:
            self._bridge.transport.close()
        close = getattr(self._runtime, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the request path ------------------------------------------------------------------

    def _attempts(
        self,
        operation: str,
        params: dict[str, Any],
        mode: Any,
        deadline: float | None,
        watch: _observe.CallWatch | None = None,
    ) -> Attempts:
        bridge = self._bridge
        if not bridge.credentials_fresh():
            bridge.refresh_credentials()
        return Attempts(
            bridge,
            bridge.routes[operation],
            params,
            mode=mode,
            deadline=deadline,
            started=time.monotonic(),
            watch=watch,
        )

    def _watch(self, operation: str, params: dict[str, Any]) -> _observe.CallWatch | None:
        """The watch of a call, while something watches."""
        return _observe.call_watch(operation, params, self._runtime.meta.endpoint_url)

    def _answer(self, operation: str, response: Any, attempts: Attempts) -> dict[str, Any]:
        headers = response.headers
        if attempts.watch is not None:
            attempts.watch.answered(response.status, headers, attempts.attempt)
        answer = attempts.route.output_headers(headers)
        answer["ResponseMetadata"] = response_metadata(headers, response.status, attempts.attempt - 1)
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
        params = INVOKE_STREAM.of_call(locals(), extra)
        _params.check_deadline(deadline)
        started = time.monotonic()
        watch = None if _observe.watcher is None else self._watch(STREAM_OPERATION, params)
        if watch is not None:
            try:
                return self._stream(params, deadline, started, watch)
            except BaseException as exc:
                watch.failed(exc)
                raise
        return self._stream(params, deadline, started, None)

    def _stream(
        self, params: dict[str, Any], deadline: float | None, started: float, watch: _observe.CallWatch | None
    ) -> ResponseStream:
        if not self._bridge.fast():
            return self._stream_via_botocore(params, deadline, started, watch)
        attempts = self._attempts(STREAM_OPERATION, params, "stream", deadline, watch)
        response = send(attempts)
        info = StreamInfo.of(self._answer(STREAM_OPERATION, response, attempts))
        parts = response.parts()
        return ResponseStream(parts if watch is None else watch.parts(parts, False), info, started=started)

    def _stream_via_botocore(
        self, params: dict[str, Any], deadline: float | None, started: float, watch: _observe.CallWatch | None
    ) -> ResponseStream:
        params = self._bridge.for_botocore(STREAM_OPERATION, params)
        with botocore_errors(STREAM_OPERATION):
            response = self._runtime.invoke_endpoint_with_response_stream(**params)
        raw = response["Body"]._raw_stream
        remaining = None if deadline is None else max(0.0, deadline - (time.monotonic() - started))
        parts, owner = open_body(raw, deadline=remaining, read_timeout=self._runtime.meta.config.read_timeout)
        if watch is not None:
            _observe.answered_botocore(watch, response)
            parts = watch.parts(parts, False)
        return ResponseStream(
            parts, StreamInfo.of(response), started=started, on_close=lambda: owner.release(False)
        )

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
        params = INVOKE.of_call(locals(), extra)
        _params.check_deadline(deadline)
        watch = None if _observe.watcher is None else self._watch(INVOKE_OPERATION, params)
        if watch is None:
            return self._invoke(params, deadline, None)
        try:
            result = self._invoke(params, deadline, watch)
        except BaseException as exc:
            watch.failed(exc)
            raise
        watch.done(result.body)
        return result

    def _invoke(
        self, params: dict[str, Any], deadline: float | None, watch: _observe.CallWatch | None
    ) -> InvokeResult:
        if not self._bridge.fast():
            params = self._bridge.for_botocore(INVOKE_OPERATION, params)
            with botocore_errors(INVOKE_OPERATION):
                response = self._runtime.invoke_endpoint(**params)
                if watch is not None:
                    _observe.answered_botocore(watch, response)
                streaming = response["Body"]
                if isinstance(streaming, bytes):  # what botocore's Stubber answers
                    data = streaming
                else:
                    data = read_capped(response, self._bridge.limits.body)
            return InvokeResult.of(response, data)
        attempts = self._attempts(INVOKE_OPERATION, params, "whole", deadline, watch)
        response = send(attempts)
        return InvokeResult.of(self._answer(INVOKE_OPERATION, response, attempts), response.body or b"")

    def _invoke_async_call(self, params: dict[str, Any]) -> AsyncAnswer:
        """InvokeEndpointAsync itself (the job handles' submit step)."""
        watch = None if _observe.watcher is None else self._watch(ASYNC_OPERATION, params)
        if watch is None:
            return self._submit(params, None)
        try:
            answer = self._submit(params, watch)
        except BaseException as exc:
            watch.failed(exc)
            raise
        watch.done()
        return answer

    def _submit(self, params: dict[str, Any], watch: _observe.CallWatch | None) -> AsyncAnswer:
        if not self._bridge.fast():
            params = self._bridge.for_botocore(ASYNC_OPERATION, params)
            with botocore_errors(ASYNC_OPERATION):
                response = self._runtime.invoke_endpoint_async(**params)
            if watch is not None:
                _observe.answered_botocore(watch, response)
            return AsyncAnswer.of(response)
        attempts = self._attempts(ASYNC_OPERATION, params, "whole", None, watch)
        response = send(attempts)
        return AsyncAnswer.parse(self._answer(ASYNC_OPERATION, response, attempts), response.body or b"")

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
        from sagestream._duplex import open_session

        return open_session(
            self._bridge,
            endpoint_name,
            target_variant=target_variant,
            model_invocation_path=model_invocation_path,
            model_query_string=model_query_string,
            input=input,
            deadline=deadline,
            endpoint_url=endpoint_url or self.duplex_endpoint_url,
        )


def _runtime_client(client: Any) -> Any:
    meta = getattr(client, "meta", None)
    service = getattr(getattr(meta, "service_model", None), "service_name", None)
    if service != "sagemaker-runtime":
        raise TypeError(
            f"expected a boto3 'sagemaker-runtime' client, got {type(client).__name__} for {service!r}"
        )
    return client


def session_of(client: Any) -> Any:
    """A boto3 session with the credentials and region of botocore ``client`` (for its S3)."""
    import boto3
    import botocore.session

    botocore_session = botocore.session.get_session()
    botocore_session._credentials = client._request_signer._credentials
    return boto3.Session(botocore_session=botocore_session, region_name=client.meta.region_name)


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
