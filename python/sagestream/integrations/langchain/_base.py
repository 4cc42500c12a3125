"""What the chat model and the LLM share: the fields langchain-aws's classes have, the clients,
the request, and reading the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from sagestream import observe
from sagestream.integrations._clients import Clients
from sagestream.integrations._formats import Delta, DocumentDecoder, iter_documents
from sagestream.integrations._requests import call_parameters
from sagestream.integrations._stops import StopCutter
from sagestream.integrations.langchain._handlers import is_streaming_handler

__all__ = ["SageMakerEndpointBase", "Steps"]


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def note_usage(note: observe.Annotation | None, item: Any) -> None:
    """Report the token usage a chunk or a generation carries (LangChain's ``usage_metadata``,
    or an OpenAI-style ``usage`` in the generation info) to an instrumentation's ``note``."""
    if note is None or item is None:
        return
    usage = getattr(getattr(item, "message", None), "usage_metadata", None)
    if usage:
        note.usage(usage.get("input_tokens"), usage.get("output_tokens"))
        return
    info = getattr(item, "generation_info", None) or {}
    usage = info.get("usage")
    if isinstance(usage, dict) and ("prompt_tokens" in usage or "completion_tokens" in usage):
        note.usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))


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
    #: The GenAI operation its calls are, for an instrumentation (``sagestream.otel``).
    _operation: ClassVar[str] = "chat"
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

    @property
    def _identifying_params(self) -> Mapping[str, Any]:
        return {
            "endpoint_name": self.endpoint_name,
            "inference_component_name": self.inference_component_name,
            "model_kwargs": self.model_kwargs or {},
        }

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

    # --- the whole answer ----------------------------------------------------------------

    def _answer(self, body: bytes, stop: list[str] | None) -> Any:
        """The generation of one InvokeEndpoint answer's body (stop sequences applied)."""
        raise NotImplementedError

    def _invoke_one(self, prompt: Any, stop: list[str] | None, kwargs: dict[str, Any]) -> Any:
        """The generation of one InvokeEndpoint call, on the sync client."""
        body = self._body(prompt, kwargs, stop, stream=False)
        with observe.annotate(self._operation) as note:
            result = self._clients.sync().invoke(self.endpoint_name, body, **self._parameters(stream=False))
            generation = self._answer(result.body, stop)
            note_usage(note, generation)
        return generation

    async def _ainvoke_one(self, prompt: Any, stop: list[str] | None, kwargs: dict[str, Any]) -> Any:
        """The generation of one InvokeEndpoint call, on the running loop's AsyncClient."""
        body = self._body(prompt, kwargs, stop, stream=False)
        client = await self._clients.for_running_loop()
        with observe.annotate(self._operation) as note:
            result = await client.invoke(self.endpoint_name, body, **self._parameters(stream=False))
            generation = self._answer(result.body, stop)
            note_usage(note, generation)
        return generation

    # --- the stream ----------------------------------------------------------------------

    def _steps(self, stop: list[str] | None) -> Steps:
        raise NotImplementedError

    def _items(self, stream: Any) -> Iterator[Any]:
        """JSON documents for a ready handler; lines (``bytes``) for a plain one."""
        if self._ready_handler:
            return iter_documents(stream)
        return (line.encode() for line in stream.lines())

    def _stream_chunks(
        self, prompt: Any, stop: list[str] | None, run_manager: Any, kwargs: dict[str, Any]
    ) -> Iterator[Any]:
        """The chunks of one streamed answer, on the sync client."""
        body = self._body(prompt, kwargs, stop, stream=True)
        steps = self._steps(stop)
        client = self._clients.sync()
        with (
            observe.annotate(self._operation) as note,
            client.invoke_stream(self.endpoint_name, body, **self._parameters(stream=True)) as stream,
        ):
            for item in self._items(stream):
                chunk = steps.step(item)
                if chunk is not None:
                    note_usage(note, chunk)
                    if run_manager is not None:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
                if steps.done:
                    break
        chunk = steps.end()
        if chunk is not None:
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream_chunks(
        self, prompt: Any, stop: list[str] | None, run_manager: Any, kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        """The chunks of one streamed answer, on the running loop's AsyncClient.

        The parts are read here and decoded in place (no async generator between the
        transport and this one); cancelling the consumer closes the stream.
        """
        body = self._body(prompt, kwargs, stop, stream=True)
        steps = self._steps(stop)
        client = await self._clients.for_running_loop()
        with observe.annotate(self._operation) as note:
            async with client.invoke_stream(
                self.endpoint_name, body, **self._parameters(stream=True)
            ) as stream:
                decoder: Any = DocumentDecoder(stream.content_type) if self._ready_handler else _LineBytes()
                async for part in stream:
                    for chunk in steps.take(decoder.feed(part)):
                        note_usage(note, chunk)
                        if run_manager is not None:
                            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                        yield chunk
                    if steps.done:
                        break
                else:
                    for chunk in steps.take(decoder.finish()):
                        note_usage(note, chunk)
                        if run_manager is not None:
                            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                        yield chunk
        chunk = steps.end()
        if chunk is not None:
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


class Steps:
    """One streamed answer, item by item, as the framework's chunks (stop sequences applied)."""

    __slots__ = ("cutter", "done", "handler", "ready")

    def __init__(self, handler: Any, ready: bool, stop: list[str] | None) -> None:
        self.handler = handler
        self.ready = ready
        self.cutter = StopCutter(stop) if stop else None
        #: The answer is over; the rest of the stream is not read.
        self.done = False

    def step(self, item: Any) -> Any:
        """The chunk of one item (None: it carries nothing)."""
        if not self.ready:
            return self._plain(item)
        delta = self.handler.stream_delta(item)
        if delta is None:
            return None
        text = delta.text
        if self.cutter is not None and text:
            # The container was sent the stops and ends soon: its finish reason and usage are
            # still read, the text after the stop is not passed on.
            text = self.cutter.feed(text)
        return self._chunk(delta, text)

    def _chunk(self, delta: Delta, text: str) -> Any:
        """The chunk of a ready handler's step, its text cut at a stop (None: nothing)."""
        raise NotImplementedError

    def _plain(self, item: Any) -> Any:
        """The chunk of a plain handler's ``transform_output`` of one line (None: nothing)."""
        raise NotImplementedError

    def take(self, items: list[Any]) -> list[Any]:
        """The chunks of the items one part completed, up to the end of the answer."""
        chunks = []
        for item in items:
            chunk = self.step(item)
            if chunk is not None:
                chunks.append(chunk)
            if self.done:
                break
        return chunks

    def end(self) -> Any:
        """The chunk of the text held back for a stop sequence that did not come, or None."""
        raise NotImplementedError


class _LineBytes:
    """Lines as ``bytes``, what a plain handler's ``transform_output`` reads on streams."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        from sagestream.reassembly import LineDecoder

        self._lines = LineDecoder()

    def feed(self, part: bytes) -> list[bytes]:
        return [line.encode() for line in self._lines.feed(part)]

    def finish(self) -> list[bytes]:
        return [line.encode() for line in self._lines.finish()]
