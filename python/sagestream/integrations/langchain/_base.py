"""What the chat model and the LLM share: the fields langchain-aws's classes have, the clients,
the request, and reading the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from sagestream.integrations._clients import Clients
from sagestream.integrations._formats import aiter_documents, iter_documents
from sagestream.integrations._requests import call_parameters
from sagestream.integrations.langchain._handlers import is_streaming_handler

__all__ = ["SageMakerEndpointBase"]


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


class SageMakerEndpointBase(BaseModel):
    """The fields of langchain-aws's SageMaker classes, and sagestream's clients behind them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    endpoint_name: str
    """The SageMaker endpoint's name."""
    inference_component_name: str | None = None
    """The inference component to invoke, if the endpoint hosts several."""
    client: Any = Field(default=None, exclude=True)
    """A ``sagestream.Client`` or ``AsyncClient`` (or a boto3 ``sagemaker-runtime`` client,
    taken over with ``from_boto3``); without it the keywords below build the clients."""
    region_name: str | None = None
    """The AWS region (else boto3's configuration decides)."""
    credentials_profile_name: str | None = Field(default=None, exclude=True)
    """A profile of the shared AWS config files."""
    aws_access_key_id: SecretStr | None = Field(default=None, exclude=True)
    aws_secret_access_key: SecretStr | None = Field(default=None, exclude=True)
    aws_session_token: SecretStr | None = Field(default=None, exclude=True)
    endpoint_url: str | None = Field(default=None, alias="base_url")
    """Another SageMaker Runtime endpoint URL (a VPC endpoint, ``sagestream serve``)."""
    config: Any = None
    """A ``botocore.config.Config`` (timeouts, retries, pool size)."""
    verify: bool | str | None = None
    """botocore's TLS verification: False, or a CA bundle's path."""
    streaming: bool = False
    """Whether ``invoke`` streams (and aggregates) rather than calling InvokeEndpoint."""
    model_kwargs: dict[str, Any] | None = None
    """Keyword arguments for the model, given to the content handler."""
    endpoint_kwargs: dict[str, Any] | None = None
    """Request parameters, by boto3's names (``CustomAttributes``, ``TargetVariant``, ...)."""
    deadline: float | None = None
    """Seconds one call may take in all (sagestream's ``DeadlineExceededError``)."""

    _clients: Clients = PrivateAttr()
    _ready_handler: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _make_clients(self) -> SageMakerEndpointBase:
        self._clients = Clients(
            self.client,
            profile_name=self.credentials_profile_name,
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            config=self.config,
            aws_access_key_id=_secret(self.aws_access_key_id),
            aws_secret_access_key=_secret(self.aws_secret_access_key),
            aws_session_token=_secret(self.aws_session_token),
            verify=self.verify,
        )
        self._ready_handler = is_streaming_handler(self._handler())
        return self

    def _handler(self) -> Any:
        return getattr(self, "content_handler")  # noqa: B009 (declared by each subclass)

    # --- the request ---------------------------------------------------------------------

    def _body(self, prompt: Any, kwargs: dict[str, Any], stop: list[str] | None, *, stream: bool) -> bytes:
        model_kwargs = {**(self.model_kwargs or {}), **kwargs}
        handler = self._handler()
        if self._ready_handler:
            return bytes(handler.request_body(prompt, model_kwargs, stream=stream, stop=stop))
        body = handler.transform_input(prompt, model_kwargs)
        return body if isinstance(body, bytes) else body.read() if hasattr(body, "read") else bytes(body)

    def _parameters(self, *, stream: bool) -> dict[str, Any]:
        """The keyword arguments of ``invoke_stream`` / ``invoke`` besides the body."""
        handler = self._handler()
        given = {
            "ContentType": handler.content_type,
            "Accept": handler.accepts,
            "InferenceComponentName": self.inference_component_name or None,
            **(self.endpoint_kwargs or {}),
        }
        try:
            params = call_parameters(given, stream=stream)
        except TypeError as exc:
            raise TypeError(f"endpoint_kwargs: {exc}") from None
        if self.deadline is not None:
            params["deadline"] = self.deadline
        return params

    # --- the stream ----------------------------------------------------------------------

    def _items(self, stream: Any) -> Iterator[Any]:
        """JSON documents for a ready handler; lines (``bytes``) for a plain one."""
        if self._ready_handler:
            return iter_documents(stream)
        return (line.encode() for line in stream.lines())

    def _aitems(self, stream: Any) -> AsyncIterator[Any]:
        if self._ready_handler:
            return aiter_documents(stream)
        return _encoded(stream.lines())


async def _encoded(lines: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield line.encode()
