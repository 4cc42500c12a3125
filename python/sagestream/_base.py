"""What :class:`sagestream.Client` and :class:`sagestream.AsyncClient` share, written once.

As httpx's ``BaseClient`` builds and its two clients only send, :class:`BaseClient` holds the
settings, makes the botocore clients and the bridge from them, declares each operation once
(generic over what it returns), and prepares each call: its parameters validated by the
operation table, the call itself (:class:`sagestream._call.Call`:
credentials, request, attempts, the answer named), and what its answer becomes. ``Client``
sends on the calling thread and ``AsyncClient`` in an asyncio task; they differ in that, in when
the botocore clients are made (at once, or in a worker thread at the first call), and in
botocore's own path when a client needs it (botocore sends, or the transport carries botocore's
request: :mod:`sagestream._botocore_path`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sagestream import _observe, _params
from sagestream._botocore import Bridge
from sagestream._caps import ResponseLimits
from sagestream._operations import AsyncAnswer, InvokeResult
from sagestream._params import check_deadline

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

    from sagestream._call import AttemptObserver, Call
    from sagestream.service import Operation

__all__ = ["BaseClient", "runtime_client", "session_of"]

_Client = TypeVar("_Client", bound="BaseClient[Any, Any, Any, Any, Any]")
#: What each operation returns on a client: ``Client`` binds the results themselves,
#: ``AsyncClient`` what awaits them (a coroutine, or an awaitable call).
_Invoked = TypeVar("_Invoked")
_Streamed = TypeVar("_Streamed")
_Submitted = TypeVar("_Submitted")
_Opened = TypeVar("_Opened")
#: What ``invoke_bidirectional`` takes as ``input``.
_Input = TypeVar("_Input")


class BaseClient(Generic[_Invoked, _Streamed, _Submitted, _Opened, _Input]):
    """The settings, botocore clients and per-call preparation of both clients, and their
    operations' signatures: each operation is declared once, here, and hands its arguments
    (``locals()``) to the client's ``_invoke...`` method, which runs the call its way (on this
    thread, or as a coroutine of the event loop)."""

    #: Where :meth:`invoke_bidirectional` connects (None: the service's endpoint).
    duplex_endpoint_url: str | None
    #: The botocore ``sagemaker-runtime`` client and its bridge, once made (or given).
    _runtime: Any = None
    _bridge: Bridge | None = None

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
        if session is not None and not hasattr(session, "client"):
            raise TypeError(
                f"session must be a boto3.Session, got {type(session).__name__}"
                " (pass the region as region_name=...)"
            )
        self._session: Any = session
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._config = config
        self._s3_endpoint_url = s3_endpoint_url
        self._credentials_given = {
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
        }
        self._verify = verify
        self._observer = observer
        self._limits = response_limits or ResponseLimits()
        self.duplex_endpoint_url = duplex_endpoint_url
        self._open()

    @classmethod
    def from_boto3(
        cls: type[_Client],
        client: Any,
        *,
        s3_endpoint_url: str | None = None,
        observer: AttemptObserver | None = None,
        response_limits: ResponseLimits | None = None,
    ) -> _Client:
        """A client over an existing boto3 / botocore ``sagemaker-runtime`` client: its
        credentials, region, endpoint, ``Config`` and ``verify`` (and its handlers: a client
        with handlers of its own takes botocore's path). Async jobs reach S3 with the same
        credentials and region."""
        runtime = runtime_client(client)
        self = cls.__new__(cls)
        self._runtime = runtime
        BaseClient.__init__(
            self,
            session_of(runtime),
            region_name=runtime.meta.region_name,
            config=runtime.meta.config,
            s3_endpoint_url=s3_endpoint_url,
            verify=getattr(getattr(runtime._endpoint, "http_session", None), "_verify", None),
            observer=observer,
            response_limits=response_limits,
        )
        return self

    def _open(self) -> None:
        """What a client does once its settings are stored (``from_boto3``: its runtime too)."""

    # --- the botocore clients --------------------------------------------------------------

    def _new_bridge(self) -> Bridge:
        """The bridge of the runtime client, which is made first unless ``from_boto3`` gave it
        (may block: a boto3 session and a botocore client are made)."""
        if self._runtime is None:
            if self._session is None:
                import boto3

                self._session = boto3.Session(region_name=self._region_name, **self._credentials_given)
            self._runtime = self._botocore("sagemaker-runtime", self._region_name, self._endpoint_url)
        self._bridge = Bridge.of(self._runtime, self._observer, self._limits)
        return self._bridge

    def _new_s3(self) -> Any:
        """The botocore S3 client of async inference jobs, in the runtime client's region."""
        return self._botocore("s3", self._runtime.meta.region_name, self._s3_endpoint_url)

    def _botocore(self, service: str, region_name: str | None, endpoint_url: str | None) -> Any:
        """A botocore client of the session, with the client's ``config`` and ``verify``."""
        return self._session.client(
            service,
            region_name=region_name,
            endpoint_url=endpoint_url,
            config=self._config,
            verify=self._verify,
        )

    # --- shared members --------------------------------------------------------------------

    @property
    def fast_path_reason(self) -> str | None:
        """Why calls take botocore's own path instead, or None."""
        bridge = self._bridge
        if bridge is None:
            return "the client is not set up yet"
        bridge.fast()
        return bridge.reason

    def idle_connections(self) -> int:
        """Connections of the request path kept open for the next calls."""
        transport = None if self._bridge is None else self._bridge.transport
        return int(transport.idle_connections()) if transport is not None else 0

    # --- operations --------------------------------------------------------------------------

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
    ) -> _Streamed:
        """Invoke ``endpoint_name`` with a streamed response (InvokeEndpointWithResponseStream).

        Parameters are validated before anything is sent (:class:`~sagestream.ParamValidationError`).
        ``deadline`` bounds the whole call in seconds — connecting, the response headers and
        every part (:class:`~sagestream.DeadlineExceededError`) — besides the config's read
        timeout, which bounds each wait for bytes (``ReadTimeoutError``). On the
        :class:`~sagestream.AsyncClient`, use it as ``async with client.invoke_stream(...) as
        stream`` or ``stream = await client.invoke_stream(...)``.
        """
        return self._invoke_stream(locals())

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
    ) -> _Invoked:
        """Invoke ``endpoint_name`` and read the whole answer at once (InvokeEndpoint); awaited
        on the :class:`~sagestream.AsyncClient`.

        ``session_id="NEW_SESSION"`` opens a stateful session: its id is in
        ``new_session_id`` and can then be passed to :meth:`invoke_stream`.
        """
        return self._invoke(locals())

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
    ) -> _Submitted:
        """Start an asynchronous inference job (InvokeEndpointAsync); see ``InferenceJob.wait``
        (on the :class:`~sagestream.AsyncClient`, awaited, a handle whose ``await
        handle.wait()`` gives the output).

        Give one input: ``input_location`` (an ``s3://`` URI), ``body`` (the input itself, at
        most 128,000 bytes, sent inline with the request), or ``input`` (the content as ``bytes``
        or text, or a file: an ``os.PathLike`` or a ``str`` naming one) with ``input_prefix`` (an
        ``s3://`` prefix to upload it under). Every parameter is validated before any upload.
        """
        return self._invoke_async(locals())

    def invoke_bidirectional(
        self,
        endpoint_name: str,
        *,
        target_variant: str | None = None,
        model_invocation_path: str | None = None,
        model_query_string: str | None = None,
        input: _Input | None = None,
        deadline: float | None = None,
        endpoint_url: str | None = None,
    ) -> _Opened:
        """Open a full-duplex session (InvokeEndpointWithBidirectionalStream, HTTP/2).

        Send parts with ``session.send(...)`` and read the answer's parts by iterating the
        session, at the same time; ``input`` (an iterable) is sent from a background thread
        instead, then the input is closed. On the :class:`~sagestream.AsyncClient`: ``async
        with client.invoke_bidirectional(...) as session``, ``await session.send(...)`` and
        ``async for part in session``; ``input`` (an iterable or async iterable) is sent by a
        task. ``endpoint_url`` (or the client's ``duplex_endpoint_url``, or
        ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2``) overrides the service's
        ``https://runtime.sagemaker.{region}.amazonaws.com:8443``; a client configured with a
        host of its own (``endpoint_url=``...) connects to port 8443 of that host.
        """
        return self._invoke_bidirectional(locals())

    # --- what each client does of an operation's arguments (``locals()`` of the above) -----

    def _invoke_stream(self, arguments: dict[str, Any]) -> _Streamed:
        raise NotImplementedError

    def _invoke(self, arguments: dict[str, Any]) -> _Invoked:
        raise NotImplementedError

    def _invoke_async(self, arguments: dict[str, Any]) -> _Submitted:
        raise NotImplementedError

    def _invoke_bidirectional(self, arguments: dict[str, Any]) -> _Opened:
        raise NotImplementedError

    # --- per call --------------------------------------------------------------------------

    @staticmethod
    def _params(
        operation: Operation, arguments: Mapping[str, Any], extra: Mapping[str, object] | None
    ) -> dict[str, Any]:
        """A call's botocore parameters, validated by the operation table (``arguments``: the
        method's ``locals()``), and its ``deadline`` checked."""
        params = operation.of_call(arguments, extra)
        check_deadline(arguments.get("deadline"))
        return params

    def _watch(self, operation: str, params: dict[str, Any]) -> _observe.CallWatch | None:
        """The watch of a call (``sagestream._observe``; the clients ask only while something
        watches)."""
        return _observe.call_watch(operation, params, self._runtime.meta.endpoint_url)

    @staticmethod
    def _parts(call: Call, parts: Any, asynchronous: bool) -> Any:
        """A stream's parts, as its call's watch (if any) sees them through."""
        return parts if call.watch is None else call.watch.parts(parts, asynchronous)

    @staticmethod
    def _invoke_result(call: Call, response: Any, answer: dict[str, Any]) -> InvokeResult:
        """InvokeEndpoint's result: the body botocore read, or the response's."""
        body = answer.pop("Body", None)
        if body is None:
            body = response.body or b""
        result = InvokeResult.of(answer, bytes(body))
        if call.watch is not None:
            call.watch.done(result.body)
        return result

    @staticmethod
    def _async_answer(call: Call, response: Any, answer: dict[str, Any]) -> AsyncAnswer:
        """InvokeEndpointAsync's answer: parsed by botocore, or the response's JSON body."""
        with _observe.Failures(call.watch):
            if "InferenceId" in answer:
                result = AsyncAnswer.of(answer)
            else:
                result = AsyncAnswer.parse(answer, response.body or b"")
        if call.watch is not None:
            call.watch.done()
        return result


def runtime_client(client: Any) -> Any:
    """``client``, checked to be a botocore ``sagemaker-runtime`` client."""
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
