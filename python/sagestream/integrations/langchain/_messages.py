"""LangChain's message classes of what the container answered, and its messages as requests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call

from sagestream.integrations._formats import Delta

__all__ = ["chunk_of", "message_of", "request_messages", "response_metadata", "usage_metadata"]


def request_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The messages as OpenAI-style dicts (langchain-core's conversion: tool calls, tool
    results, images and system messages included)."""
    return convert_to_openai_messages(list(messages))


def usage_metadata(usage: dict[str, Any] | None) -> UsageMetadata | None:
    """LangChain's usage of an OpenAI-style usage dict (None unless it counts both sides)."""
    if not usage:
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = usage.get("total_tokens")
    return cast(
        UsageMetadata,
        {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": total if isinstance(total, int) else prompt + completion,
        },
    )


def response_metadata(delta: Delta) -> dict[str, Any]:
    """``finish_reason``, ``model_name`` and what else the container reported, when it did."""
    meta: dict[str, Any] = {}
    if delta.finish_reason is not None:
        meta["finish_reason"] = delta.finish_reason
        if delta.model is not None:
            meta["model_name"] = delta.model
    if delta.usage and usage_metadata(delta.usage) is None:
        # TGI reports the generated tokens only: kept as reported, not passed off as usage.
        meta["usage"] = delta.usage
    return meta


def message_of(delta: Delta, *, text: str | None = None) -> AIMessage:
    """The ``AIMessage`` of a whole answer; ``text`` replaces its text (stop sequences cut it)."""
    kwargs = _fields(delta, chunk=False)
    if delta.id is not None:
        kwargs["id"] = delta.id
    return AIMessage(content=delta.text if text is None else text, **kwargs)


def chunk_of(delta: Delta, *, text: str | None = None) -> AIMessageChunk:
    """The ``AIMessageChunk`` of one streamed step; ``text`` replaces its text."""
    return AIMessageChunk(content=delta.text if text is None else text, **_fields(delta, chunk=True))


def _fields(delta: Delta, *, chunk: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    usage = usage_metadata(delta.usage)
    if usage is not None:
        kwargs["usage_metadata"] = usage
    if delta.reasoning:
        kwargs["additional_kwargs"] = {"reasoning_content": delta.reasoning}
    meta = response_metadata(delta)
    if meta:
        kwargs["response_metadata"] = meta
    if delta.tool_calls:
        if chunk:
            kwargs["tool_call_chunks"] = [
                tool_call_chunk(
                    name=(call.get("function") or {}).get("name"),
                    args=(call.get("function") or {}).get("arguments"),
                    id=call.get("id"),
                    index=call.get("index"),
                )
                for call in delta.tool_calls
            ]
        else:
            calls, invalid = [], []
            for call in delta.tool_calls:
                call = _with_string_arguments(call)
                try:
                    parsed = parse_tool_call(call, return_id=True)
                except Exception as exc:  # langchain-core raises OutputParserException
                    invalid.append(make_invalid_tool_call(call, str(exc)))
                else:
                    if parsed is not None:
                        calls.append(parsed)
            kwargs["tool_calls"] = calls
            if invalid:
                kwargs["invalid_tool_calls"] = invalid
    return kwargs


def _with_string_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """Some containers send ``arguments`` as an object rather than a JSON string."""
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if arguments is None or isinstance(arguments, str):
        return call
    return {**call, "function": {**function, "arguments": json.dumps(arguments)}}
