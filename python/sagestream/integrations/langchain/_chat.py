"""``ChatSagemakerEndpoint``: a LangChain chat model on sagestream's clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from sagestream.integrations._formats import Delta
from sagestream.integrations._stops import cut_at_stop
from sagestream.integrations.langchain._base import SageMakerEndpointBase, Steps
from sagestream.integrations.langchain._handlers import ChatCompletionsContentHandler, body_file
from sagestream.integrations.langchain._messages import chunk_of, message_of, request_messages

__all__ = ["ChatSagemakerEndpoint"]


class _ChatSteps(Steps):
    """Chat generation chunks of a streamed answer."""

    __slots__ = ()

    def _chunk(self, delta: Delta, text: str) -> ChatGenerationChunk | None:
        if not (text or delta.finish_reason or delta.usage or delta.tool_calls or delta.reasoning):
            return None
        return ChatGenerationChunk(message=chunk_of(delta, text=text))

    def _plain(self, item: Any) -> ChatGenerationChunk | None:
        """A plain handler's message, as langchain-aws's ChatSagemakerEndpoint makes it a chunk."""
        message: BaseMessage = self.handler.transform_output(item)
        usage = getattr(message, "usage_metadata", None)
        content = message.content
        if self.cutter is not None and isinstance(content, str):
            content = self.cutter.feed(content)
            # This handler sent no stops: nothing says the container ends soon.
            self.done = self.cutter.stopped
        if not content and usage is None:
            return None
        if isinstance(message, AIMessageChunk) and content is message.content:
            chunk = message
        else:
            chunk = AIMessageChunk(
                content=content,
                usage_metadata=usage,
                response_metadata=message.response_metadata,
                id=message.id,
            )
        return ChatGenerationChunk(message=chunk)

    def end(self) -> ChatGenerationChunk | None:
        if self.cutter is None:
            return None
        held = self.cutter.flush()
        return ChatGenerationChunk(message=AIMessageChunk(content=held)) if held else None


class ChatSagemakerEndpoint(SageMakerEndpointBase, BaseChatModel):
    """A chat model on a SageMaker endpoint, streamed through sagestream.

    The fields are langchain-aws's ``ChatSagemakerEndpoint``'s (``endpoint_name``,
    ``region_name``, ``credentials_profile_name``, ``endpoint_url``, ``config``,
    ``content_handler``, ``model_kwargs``, ``endpoint_kwargs``, ``streaming``), plus ``client=``
    (a :class:`sagestream.Client` / :class:`sagestream.AsyncClient`), ``verify`` and
    ``deadline``. ``content_handler`` defaults to :class:`ChatCompletionsContentHandler`
    (OpenAI-compatible chat: LMI / vLLM, TGI's Messages API); a langchain-aws handler works
    as it is. ``ainvoke`` / ``astream`` run on :class:`sagestream.AsyncClient`, natively.

    Usage comes as ``usage_metadata`` and the container's finish reason as
    ``response_metadata["finish_reason"]`` when the container reports them; sagestream's typed
    errors (``ModelError``, ``ModelStreamError`` after the chunks already yielded, ...) pass
    through.
    """

    content_handler: Any = Field(default_factory=ChatCompletionsContentHandler)
    """Builds request bodies and reads answers (langchain-aws's ``ChatModelContentHandler``
    interface; see :mod:`sagestream.integrations.langchain`)."""

    @property
    def _llm_type(self) -> str:
        return "sagestream_sagemaker_chat"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the model, in the OpenAI ``tools`` format the handler sends.

        ``tool_choice``: ``"auto"``, ``"none"``, ``"required"`` (also ``"any"`` or ``True``), or
        a tool's name.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None and tool_choice is not False:
            if tool_choice is True or tool_choice == "any":
                tool_choice = "required"
            elif isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "required"):
                tool_choice = {"type": "function", "function": {"name": tool_choice}}
            kwargs["tool_choice"] = tool_choice
        return super().bind(tools=formatted, **kwargs)

    # --- InvokeEndpoint --------------------------------------------------------------------

    def _answer(self, body: bytes, stop: list[str] | None) -> ChatGeneration:
        handler = self.content_handler
        if self._ready_handler:
            delta = handler.answer(body)
            message: BaseMessage = message_of(delta, text=cut_at_stop(delta.text, stop))
        else:
            message = handler.transform_output(body_file(body))
            if stop and isinstance(message.content, str):
                message = message.model_copy(update={"content": cut_at_stop(message.content, stop)})
        return ChatGeneration(message=message)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        return ChatResult(generations=[self._invoke_one(request_messages(messages), stop, kwargs)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
        return ChatResult(generations=[await self._ainvoke_one(request_messages(messages), stop, kwargs)])

    # --- InvokeEndpointWithResponseStream --------------------------------------------------

    def _steps(self, stop: list[str] | None) -> Steps:
        return _ChatSteps(self.content_handler, self._ready_handler, stop)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        return self._stream_chunks(request_messages(messages), stop, run_manager, kwargs)

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        return self._astream_chunks(request_messages(messages), stop, run_manager, kwargs)
