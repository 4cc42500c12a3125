"""``SagemakerEndpoint``: a LangChain LLM (text in, text out) on sagestream's clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.llms import LLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from pydantic import Field

from sagestream.integrations._formats import Delta
from sagestream.integrations._stops import cut_at_stop
from sagestream.integrations.langchain._base import SageMakerEndpointBase, Steps
from sagestream.integrations.langchain._handlers import TGIContentHandler, body_file
from sagestream.integrations.langchain._messages import response_metadata

__all__ = ["SagemakerEndpoint"]


def _info(delta: Delta) -> dict[str, Any] | None:
    """The generation info of a step: the finish reason and usage the container reported."""
    info = response_metadata(delta)
    if delta.usage is not None:
        info["usage"] = delta.usage
    return info or None


class _TextSteps(Steps):
    """Generation chunks of a streamed answer."""

    __slots__ = ()

    def _chunk(self, delta: Delta, text: str) -> GenerationChunk | None:
        info = _info(delta) if delta.finish_reason or delta.usage else None
        if not text and info is None:
            return None
        return GenerationChunk(text=text, generation_info=info)

    def _plain(self, item: Any) -> GenerationChunk | None:
        text = self.handler.transform_output(item)
        if self.cutter is not None:
            text = self.cutter.feed(text)
            self.done = self.cutter.stopped
        return GenerationChunk(text=text) if text else None

    def end(self) -> GenerationChunk | None:
        held = self.cutter.flush() if self.cutter is not None else ""
        return GenerationChunk(text=held) if held else None


class SagemakerEndpoint(SageMakerEndpointBase, LLM):
    """A text-completion LLM on a SageMaker endpoint, streamed through sagestream.

    The fields are langchain-aws's ``SagemakerEndpoint``'s plus ``client=`` (a
    :class:`sagestream.Client` / :class:`sagestream.AsyncClient`), ``verify`` and
    ``deadline``. ``content_handler`` defaults to :class:`TGIContentHandler`; use
    :class:`ChatCompletionsLLMContentHandler` for OpenAI-compatible chat endpoints, or a
    langchain-aws ``LLMContentHandler`` as it is. The container's finish reason and token
    counts, when it reports them, are in the generation info (``finish_reason``, ``usage``).
    """

    _operation: ClassVar[str] = "text_completion"

    content_handler: Any = Field(default_factory=TGIContentHandler)
    """Builds request bodies and reads answers (langchain-aws's ``LLMContentHandler``
    interface; see :mod:`sagestream.integrations.langchain`)."""

    @property
    def _llm_type(self) -> str:
        return "sagestream_sagemaker_endpoint"

    # --- InvokeEndpoint --------------------------------------------------------------------

    def _answer(self, body: bytes, stop: list[str] | None) -> Generation:
        handler = self.content_handler
        if self._ready_handler:
            delta = handler.answer(body)
            return Generation(text=cut_at_stop(delta.text, stop), generation_info=_info(delta))
        return Generation(text=cut_at_stop(handler.transform_output(body_file(body)), stop))

    def _one(
        self, prompt: str, stop: list[str] | None, run_manager: CallbackManagerForLLMRun | None, **kwargs: Any
    ) -> Generation:
        if self.streaming:
            whole: GenerationChunk | None = None
            for chunk in self._stream(prompt, stop, run_manager, **kwargs):
                whole = chunk if whole is None else whole + chunk
            return whole or Generation(text="")
        generation: Generation = self._invoke_one(prompt, stop, kwargs)
        return generation

    async def _aone(
        self,
        prompt: str,
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        **kwargs: Any,
    ) -> Generation:
        if self.streaming:
            whole: GenerationChunk | None = None
            async for chunk in self._astream(prompt, stop, run_manager, **kwargs):
                whole = chunk if whole is None else whole + chunk
            return whole or Generation(text="")
        generation: Generation = await self._ainvoke_one(prompt, stop, kwargs)
        return generation

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        return LLMResult(generations=[[self._one(p, stop, run_manager, **kwargs)] for p in prompts])

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        return LLMResult(generations=[[await self._aone(p, stop, run_manager, **kwargs)] for p in prompts])

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return self._one(prompt, stop, run_manager, **kwargs).text

    async def _acall(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return (await self._aone(prompt, stop, run_manager, **kwargs)).text

    # --- InvokeEndpointWithResponseStream --------------------------------------------------

    def _steps(self, stop: list[str] | None) -> Steps:
        return _TextSteps(self.content_handler, self._ready_handler, stop)

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        return self._stream_chunks(prompt, stop, run_manager, kwargs)

    def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        return self._astream_chunks(prompt, stop, run_manager, kwargs)
