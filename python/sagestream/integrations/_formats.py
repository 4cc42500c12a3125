"""What LLM containers stream, read once for every integration.

Two answer shapes are understood:

- OpenAI-compatible chat (vLLM, LMI, TGI's Messages API): ``chat.completion`` documents and
  ``chat.completion.chunk`` events (``choices[0].delta``: ``content``, ``tool_calls``,
  ``reasoning_content`` / ``reasoning``; ``finish_reason``; ``usage`` on the last chunk when the
  request asked for it);
- TGI text generation: ``data: {"token": {"text": ...}, "generated_text": ..., "details": ...}``
  events, and ``[{"generated_text": ..., "details": ...}]`` documents.

A streamed answer is read as its content type says: ``text/event-stream`` as Server-Sent
Events (reassembled in Rust, one JSON document per event's data), anything else as lines, each
either an SSE ``data:`` line or a bare JSON document (JSON lines), as the containers that
label their events otherwise send them. ``[DONE]``, blank lines and comments carry nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Delta",
    "DocumentDecoder",
    "chat_completion",
    "chat_delta",
    "iter_documents",
    "line_document",
    "tgi_delta",
    "tgi_generation",
]


@dataclass(slots=True)
class Delta:
    """One step of an answer: new text and whatever else the container reported with it."""

    text: str = ""
    #: The container's own finish reason (``stop``, ``length``, ``tool_calls``; TGI's
    #: ``eos_token``, ``stop_sequence``, ``length``).
    finish_reason: str | None = None
    #: OpenAI-style ``{"prompt_tokens", "completion_tokens", "total_tokens"}``.
    usage: dict[str, Any] | None = None
    #: OpenAI tool calls: deltas (``index``, ``id``, ``function.name``, ``function.arguments``
    #: pieces) on streams, whole calls in a ``chat.completion``.
    tool_calls: list[dict[str, Any]] | None = None
    reasoning: str | None = None
    #: The id the container gave the answer.
    id: str | None = None
    model: str | None = None


def _usage(doc: dict[str, Any]) -> dict[str, Any] | None:
    usage = doc.get("usage")
    return usage if isinstance(usage, dict) else None


def _choice_delta(doc: dict[str, Any], choice: Any, said: Any, usage: dict[str, Any] | None) -> Delta:
    """The step of one choice of a chat document: ``said`` is its ``delta`` (a chunk) or its
    ``message`` (a whole answer)."""
    calls = said.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        calls = [calls]
    return Delta(
        text=said.get("content") or "",
        finish_reason=choice.get("finish_reason"),
        usage=usage,
        tool_calls=calls or None,
        reasoning=said.get("reasoning_content") or said.get("reasoning"),
        id=doc.get("id"),
        model=doc.get("model"),
    )


def chat_delta(doc: Any) -> Delta | None:
    """The step a ``chat.completion.chunk`` document carries (None: not such a document)."""
    if not isinstance(doc, dict):
        return None
    choices = doc.get("choices")
    if not choices:
        usage = _usage(doc)
        return Delta(usage=usage, id=doc.get("id"), model=doc.get("model")) if usage else None
    choice = choices[0]
    return _choice_delta(doc, choice, choice.get("delta") or {}, _usage(doc) or choice.get("usage"))


def chat_completion(doc: Any) -> Delta:
    """The whole answer of a ``chat.completion`` document; ValueError when it is not one."""
    try:
        choice = doc["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"not a chat.completion document: {_excerpt(doc)}") from None
    return _choice_delta(doc, choice, message, _usage(doc))


def _tgi_details(delta: Delta, details: Any) -> Delta:
    if isinstance(details, dict):
        delta.finish_reason = details.get("finish_reason")
        generated = details.get("generated_tokens")
        if isinstance(generated, int):
            delta.usage = {"completion_tokens": generated}
    return delta


def tgi_delta(doc: Any) -> Delta | None:
    """The step a TGI stream event carries (None: not such an event)."""
    if not isinstance(doc, dict):
        return None
    token = doc.get("token")
    if not isinstance(token, dict):
        return None
    if token.get("special"):
        return _tgi_details(Delta(), doc.get("details"))
    return _tgi_details(Delta(text=token.get("text") or ""), doc.get("details"))


def tgi_generation(doc: Any) -> Delta:
    """The whole answer of a TGI ``[{"generated_text": ...}]`` (or bare object) document."""
    item = doc[0] if isinstance(doc, list) and doc else doc
    if not isinstance(item, dict) or not isinstance(item.get("generated_text"), str):
        raise ValueError(f"not a TGI generation document: {_excerpt(doc)}")
    return _tgi_details(Delta(text=item["generated_text"]), item.get("details"))


def _excerpt(doc: Any) -> str:
    text = json.dumps(doc) if not isinstance(doc, (bytes, str)) else str(doc)
    return text if len(text) <= 200 else text[:200] + "..."


def line_document(line: str) -> Any:
    """The JSON document of one line (``data: {...}`` or bare), or None when it carries none."""
    if line.startswith("data:"):
        line = line[5:]
    elif line.startswith(("event:", "id:", "retry:", ":")):
        return None
    line = line.strip()
    if not line or line == "[DONE]":
        return None
    return json.loads(line)


def _is_event_stream(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "text/event-stream"


def iter_documents(stream: Any) -> Iterator[Any]:
    """The JSON documents of a :class:`sagestream.ResponseStream`, as they complete."""
    if _is_event_stream(stream.content_type):
        for event in stream.sse():
            data = event.data
            if data and data != "[DONE]":
                yield json.loads(data)
        return
    for line in stream.lines():
        doc = line_document(line)
        if doc is not None:
            yield doc


class DocumentDecoder:
    """The same rule, incremental: feed it the parts of an async stream, get the documents.

    Async consumers loop over the stream's parts themselves (``async for part in stream``)
    and call :meth:`feed`: no async generator stands between the transport and them.
    """

    __slots__ = ("_lines", "_sse")

    def __init__(self, content_type: str | None) -> None:
        from sagestream.reassembly import LineDecoder, SseDecoder

        self._sse = SseDecoder() if _is_event_stream(content_type) else None
        self._lines = None if self._sse is not None else LineDecoder()

    def _documents(self, items: list[Any]) -> list[Any]:
        if self._sse is not None:
            return [json.loads(e.data) for e in items if e.data and e.data != "[DONE]"]
        docs = [line_document(line) for line in items]
        return [doc for doc in docs if doc is not None]

    def feed(self, part: bytes) -> list[Any]:
        """The documents ``part`` completes."""
        decoder: Any = self._sse if self._sse is not None else self._lines
        return self._documents(decoder.feed(part))

    def finish(self) -> list[Any]:
        """At the end of the stream: a last document left without its line end."""
        decoder: Any = self._sse if self._sse is not None else self._lines
        return self._documents(decoder.finish())
