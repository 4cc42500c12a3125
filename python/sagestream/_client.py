"""The synchronous client: a boto3 session in, payload parts out, typed errors."""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sagestream import _params
from sagestream._stream import ResponseStream
from sagestream._transport import botocore_errors, open_body

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

    from sagestream._async_inference import AsyncInvocation

__all__ = ["Client", "InvokeResult"]

STREAM_OPERATION = "InvokeEndpointWithResponseStream"
INVOKE_OPERATION = "InvokeEndpoint"


@dataclass
class InvokeResult:
    """The answer of InvokeEndpoint."""

    body: bytes
    content_type: str | None = None
    invoked_production_variant: str | None = None
    custom_attributes: str | None = None
    #: With ``session_id="NEW_SESSION"``: the id of the session the endpoint opened.
    new_session_id: str | None = None
    #: When the new session expires, if the service said.
    new_session_expires: _dt.datetime | None = None
    #: The id of a session the request closed.
    closed_session_id: str | None = None
    response_metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding)


def parse_new_session(value: str | None) -> tuple[str | None, _dt.datetime | None]:
    """Split ``X-Amzn-SageMaker-New-Session-Id`` (``<id>; Expires=<ISO time>``)."""
    if not value:
        return None, None
    session_id, _, rest = value.partition(";")
    expires: _dt.datetime | None = None
    for attribute in rest.split(";"):
        name, _, raw = attribute.strip().partition("=")
        if name.strip().lower() == "expires" and raw.strip():
            text = raw.strip()
            if text.endswith("Z"):
                text = text[:-1] + "+00:00"
            try:
                expires = _dt.datetime.fromisoformat(text)
            except ValueError:
                expires = None
    return session_id.strip() or None, expires


class Client:
    """Streaming client for SageMaker AI endpoints on top of a botocore ``sagemaker-runtime`` client.

    botocore resolves the endpoint, signs the request (SigV4), retries before the first byte
    and parses HTTP errors; sagestream decodes the response stream in Rust.

    ``verify`` is botocore's: ``False`` skips TLS certificate checks, a path names a CA bundle.
    """

    def __init__(
        self,
        session: boto3.Session | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        config: Config | None = None,
        *,
        s3_endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        verify: bool | str | None = None,
    ) -> None:
        import boto3

        if session is None:
            session = boto3.Session(
                region_name=region_name,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
            )
        self._session = session
        self._config = config
        self._endpoint_url = endpoint_url
        self._s3_endpoint_url = s3_endpoint_url
        self._runtime: Any = session.client(
            "sagemaker-runtime",
            region_name=region_name,
            endpoint_url=endpoint_url,
            config=config,
            verify=verify,
        )

    @property
    def region_name(self) -> str:
        """The client's region."""
        return str(self._runtime.meta.region_name)

    @property
    def runtime_client(self) -> Any:
        """The underlying botocore ``sagemaker-runtime`` client."""
        return self._runtime

    def close(self) -> None:
        """Close the connection pool."""
        close = getattr(self._runtime, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        deadline: float | None = None,
    ) -> ResponseStream:
        """Invoke ``endpoint_name`` with a streamed response (InvokeEndpointWithResponseStream).

        ``deadline`` bounds the whole stream in seconds, counted from this call
        (``DeadlineExceededError``), besides the idle read timeout of the botocore config
        (``ReadTimeoutError``), which alone bounds the wait for the response headers.
        """
        params = _params.stream_params(
            endpoint_name,
            body,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_id=inference_id,
            inference_component_name=inference_component_name,
            session_id=session_id,
        )
        _params.check_deadline(deadline)
        started = time.monotonic()
        with botocore_errors(STREAM_OPERATION):
            response = self._runtime.invoke_endpoint_with_response_stream(**params)
        raw = response["Body"]._raw_stream
        body_started = time.monotonic()
        remaining = None if deadline is None else max(0.0, deadline - (body_started - started))
        stream_body, owner = open_body(
            raw, deadline=remaining, read_timeout=self._runtime.meta.config.read_timeout
        )
        return ResponseStream(stream_body, owner, response, started=started, body_started=body_started)

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
    ) -> InvokeResult:
        """Invoke ``endpoint_name`` and read the whole answer (InvokeEndpoint).

        ``session_id="NEW_SESSION"`` opens a stateful session: its id is in
        ``new_session_id`` and can then be passed to :meth:`invoke_stream`.
        """
        params = _params.invoke_params(
            endpoint_name,
            body,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            target_model=target_model,
            target_variant=target_variant,
            target_container_hostname=target_container_hostname,
            inference_id=inference_id,
            enable_explanations=enable_explanations,
            inference_component_name=inference_component_name,
            session_id=session_id,
        )
        with botocore_errors(INVOKE_OPERATION):
            response = self._runtime.invoke_endpoint(**params)
            streaming = response["Body"]
            try:
                data = streaming.read()
            finally:
                streaming.close()
        new_id, expires = parse_new_session(response.get("NewSessionId"))
        return InvokeResult(
            body=data,
            content_type=response.get("ContentType"),
            invoked_production_variant=response.get("InvokedProductionVariant"),
            custom_attributes=response.get("CustomAttributes"),
            new_session_id=new_id,
            new_session_expires=expires,
            closed_session_id=response.get("ClosedSessionId"),
            response_metadata=dict(response.get("ResponseMetadata") or {}),
        )

    def invoke_async(
        self,
        endpoint_name: str,
        *,
        input_location: str | None = None,
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
    ) -> AsyncInvocation:
        """Start an asynchronous inference (InvokeEndpointAsync); see ``AsyncInvocation.wait``.

        Give either ``input_location`` (an ``s3://`` URI) or ``input`` (bytes or a file path)
        with ``input_prefix`` (an ``s3://`` prefix to upload it under).
        """
        from sagestream._async_inference import start_invocation

        return start_invocation(
            self,
            endpoint_name,
            input_location=input_location,
            input=input,
            input_prefix=input_prefix,
            content_type=content_type,
            accept=accept,
            custom_attributes=custom_attributes,
            inference_id=inference_id,
            request_ttl_seconds=request_ttl_seconds,
            invocation_timeout_seconds=invocation_timeout_seconds,
            s3_output_path_extension=s3_output_path_extension,
            filename=filename,
        )
