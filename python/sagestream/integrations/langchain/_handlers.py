"""Content handlers: what goes into the request body and what comes out of the answer.

The interface is langchain-aws's (``content_type``, ``accepts``, ``transform_input(prompt,
model_kwargs) -> bytes``, ``transform_output(output)``), so a handler written for
langchain-aws's ``SagemakerEndpoint`` / ``ChatSagemakerEndpoint`` keeps working here: on
InvokeEndpoint ``transform_output`` gets a file-like body (``.read()``), on streams one line
(``bytes``, its line end stripped) at a time.

The ready handlers also speak sagestream's faster protocol (:class:`StreamingHandler`): the
model gives them the stop sequences and whether it streams, reads the stream as JSON documents
in Rust (SSE or JSON lines) and asks them for a :class:`~sagestream.integrations._formats.Delta`
per document. They work in langchain-aws's classes too, through the plain interface.
"""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from langchain_core.messages import AIMessageChunk, BaseMessage

from sagestream.integrations import _formats
from sagestream.integrations._formats import Delta
from sagestream.integrations.langchain._messages import chunk_of, message_of

__all__ = [
    "ChatCompletionsContentHandler",
    "ChatCompletionsLLMContentHandler",
    "ChatModelContentHandler",
    "ContentHandlerBase",
    "LLMContentHandler",
    "StreamingHandler",
    "TGIContentHandler",
]

INPUT = TypeVar("INPUT")
OUTPUT = TypeVar("OUTPUT")


class ContentHandlerBase(ABC, Generic[INPUT, OUTPUT]):
    """Turns the model's input into a request body and the endpoint's answer into output."""

    #: The request body's MIME type.
    content_type: str | None = "text/plain"
    #: The MIME type asked of the answer.
    accepts: str | None = "text/plain"

    @abstractmethod
    def transform_input(self, prompt: INPUT, model_kwargs: dict[str, Any]) -> bytes:
        """The request body for ``prompt`` and the model's keyword arguments."""

    @abstractmethod
    def transform_output(self, output: Any) -> OUTPUT:
        """The output of a body (``output.read()``) or of one streamed line (``bytes``)."""


class LLMContentHandler(ContentHandlerBase[str, str]):
    """Content handler of :class:`~sagestream.integrations.langchain.SagemakerEndpoint`."""


class ChatModelContentHandler(ContentHandlerBase[list[dict[str, Any]], BaseMessage]):
    """Content handler of :class:`~sagestream.integrations.langchain.ChatSagemakerEndpoint`.

    ``transform_input`` gets the messages as OpenAI-style dicts (``role``, ``content``, ...).
    """


@runtime_checkable
class StreamingHandler(Protocol):
    """What the ready handlers add to the plain interface (a handler may implement it too)."""

    content_type: str | None
    accepts: str | None

    def request_body(
        self, prompt: Any, model_kwargs: dict[str, Any], *, stream: bool, stop: list[str] | None
    ) -> bytes:
        """The request body; ``stop`` is sent for the container to apply."""

    def stream_delta(self, doc: Any) -> Delta | None:
        """The step one streamed JSON document carries (None: nothing)."""

    def answer(self, body: bytes) -> Delta:
        """The whole answer of an InvokeEndpoint body."""


def _read(output: Any) -> tuple[bytes, bool]:
    """The bytes of a body or of a line, and whether it was a whole body."""
    if hasattr(output, "read"):
        return output.read(), True
    return bytes(output), False


class _ReadyHandler:
    """What the ready handlers share: JSON both ways, and the plain interface (``transform_input``,
    reading a body or a line) on top of :class:`StreamingHandler`'s."""

    content_type: str | None = "application/json"
    accepts: str | None = "application/json"

    def request_body(
        self, prompt: Any, model_kwargs: dict[str, Any], *, stream: bool, stop: list[str] | None
    ) -> bytes:
        raise NotImplementedError

    def stream_delta(self, doc: Any) -> Delta | None:
        raise NotImplementedError

    def answer(self, body: bytes) -> Delta:
        raise NotImplementedError

    def transform_input(self, prompt: Any, model_kwargs: dict[str, Any]) -> bytes:
        """The plain interface: ``model_kwargs`` may say ``"stream": true`` itself."""
        kwargs = dict(model_kwargs)
        stream = bool(kwargs.pop("stream", False))
        return self.request_body(prompt, kwargs, stream=stream, stop=None)

    def _line_delta(self, line: bytes) -> Delta | None:
        """The step one streamed line carries (None: nothing)."""
        doc = _formats.line_document(line.decode())
        return None if doc is None else self.stream_delta(doc)


class _TextOutput(_ReadyHandler):
    """The plain interface of a ready LLM handler: the text of a body or of a line."""

    def transform_output(self, output: Any) -> str:
        """The text of a body or of one streamed line."""
        data, whole = _read(output)
        delta = self.answer(data) if whole else self._line_delta(data)
        return "" if delta is None else delta.text


class _ChatCompletionsBody(_ReadyHandler):
    """Request bodies of OpenAI-compatible chat endpoints."""

    def __init__(self, *, stream_usage: bool = True) -> None:
        #: Ask for usage in the last chunk of a stream (``stream_options.include_usage``).
        self.stream_usage = stream_usage

    def _messages(self, prompt: Any) -> list[dict[str, Any]]:
        return list(prompt)

    def request_body(
        self, prompt: Any, model_kwargs: dict[str, Any], *, stream: bool, stop: list[str] | None
    ) -> bytes:
        """``{"messages": ..., **model_kwargs, "stream": ...}`` with stops and usage options."""
        doc: dict[str, Any] = {"messages": self._messages(prompt), **model_kwargs}
        if stop:
            doc["stop"] = list(stop)
        doc["stream"] = stream
        if stream and self.stream_usage:
            doc.setdefault("stream_options", {"include_usage": True})
        return json.dumps(doc).encode()

    def stream_delta(self, doc: Any) -> Delta | None:
        """A ``chat.completion.chunk``'s step."""
        return _formats.chat_delta(doc)

    def answer(self, body: bytes) -> Delta:
        """A ``chat.completion``'s answer."""
        return _formats.chat_completion(json.loads(body))


class ChatCompletionsContentHandler(_ChatCompletionsBody, ChatModelContentHandler):
    """Chat model handler for OpenAI-compatible chat endpoints: LMI / vLLM, TGI's Messages API.

    Sends ``{"messages": [...], **model_kwargs, "stream": ..., "stop": [...]}`` (and
    ``stream_options.include_usage`` on streams unless ``stream_usage=False``); reads
    ``chat.completion`` documents and ``chat.completion.chunk`` events.
    """

    def transform_output(self, output: Any) -> BaseMessage:
        """An ``AIMessage`` of a body; an ``AIMessageChunk`` of one streamed line."""
        data, whole = _read(output)
        if whole:
            return message_of(self.answer(data))
        delta = self._line_delta(data)
        return AIMessageChunk(content="") if delta is None else chunk_of(delta)


class ChatCompletionsLLMContentHandler(_ChatCompletionsBody, _TextOutput, LLMContentHandler):
    """LLM handler for OpenAI-compatible chat endpoints: the prompt is one user message."""

    def _messages(self, prompt: Any) -> list[dict[str, Any]]:
        return [{"role": "user", "content": prompt}]


class TGIContentHandler(_TextOutput, LLMContentHandler):
    """LLM handler for Hugging Face TGI endpoints (and LMI's TGI-compatible schema).

    Sends ``{"inputs": prompt, "parameters": {**model_kwargs, "stop": [...], "details":
    true}, "stream": ...}`` (``model_kwargs`` may hold ``parameters`` itself); reads TGI's
    token events and ``[{"generated_text": ...}]``. ``details`` asks TGI for the finish reason
    and the number of generated tokens.
    """

    def __init__(self, *, details: bool = True) -> None:
        self.details = details

    def request_body(
        self, prompt: Any, model_kwargs: dict[str, Any], *, stream: bool, stop: list[str] | None
    ) -> bytes:
        """The TGI request body."""
        kwargs = dict(model_kwargs)
        parameters = dict(kwargs.pop("parameters", None) or {})
        parameters.update(kwargs)
        if stop:
            parameters["stop"] = list(stop)
        if self.details:
            parameters.setdefault("details", True)
        return json.dumps({"inputs": prompt, "parameters": parameters, "stream": stream}).encode()

    def stream_delta(self, doc: Any) -> Delta | None:
        """A TGI token event's step."""
        return _formats.tgi_delta(doc)

    def answer(self, body: bytes) -> Delta:
        """A TGI generation document's answer."""
        return _formats.tgi_generation(json.loads(body))


def body_file(body: bytes) -> io.BytesIO:
    """What a plain handler's ``transform_output`` reads an InvokeEndpoint answer from."""
    return io.BytesIO(body)


def is_streaming_handler(handler: object) -> bool:
    """Whether ``handler`` speaks :class:`StreamingHandler` (else the plain interface is used)."""
    return all(callable(getattr(handler, name, None)) for name in ("request_body", "stream_delta", "answer"))
