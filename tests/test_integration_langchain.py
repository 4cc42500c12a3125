"""The LangChain integration against the emulator: the demo model, and a scripted chat
container behind the emulator's proxy model, compared with langchain-aws's own classes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_aws")

from _chat_container import ChatContainer, chunk_doc, completion_doc
from _loop_ticker import consume, slice_bound, unslice
from langchain_aws.chat_models.sagemaker_endpoint import (
    ChatModelContentHandler as AwsChatHandler,
)
from langchain_aws.chat_models.sagemaker_endpoint import (
    ChatSagemakerEndpoint as AwsChat,
)
from langchain_aws.llms.sagemaker_endpoint import LLMContentHandler as AwsLLMHandler
from langchain_aws.llms.sagemaker_endpoint import SagemakerEndpoint as AwsLLM
from langchain_core.messages import AIMessage, AIMessageChunk
from sagestream import Client, ModelError, ModelStreamError
from sagestream.emulator import Emulator
from sagestream.integrations.langchain import (
    ChatSagemakerEndpoint,
    SagemakerEndpoint,
    TGIContentHandler,
)

CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}


def _script(doc: dict[str, Any]) -> Any:
    """Text answers, or a tool call when the request offers tools."""
    if doc.get("tools"):
        if not doc.get("stream"):
            return completion_doc(None, "tool_calls", tool_calls=[CALL])
        return [
            chunk_doc({"role": "assistant", "content": None}),
            chunk_doc({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                       "function": {"name": "weather", "arguments": ""}}]}),
            chunk_doc({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
            chunk_doc({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
            chunk_doc({}, "tool_calls"),
            chunk_doc(usage={"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}),
        ]  # fmt: skip
    return [chunk_doc({"content": "Hel"}), chunk_doc({"content": "lo"}), chunk_doc({}, "stop")]


@pytest.fixture(scope="module")
def container() -> Iterator[ChatContainer]:
    with ChatContainer(_script) as box:
        yield box


@pytest.fixture(scope="module")
def emu(container: ChatContainer) -> Iterator[Emulator]:
    with Emulator(endpoints={"chat": "demo", "tgi": "demo:sse", "box": container.url}, token_delay=0.0) as e:
        yield e


@pytest.fixture(scope="module")
def keys(emu: Emulator) -> dict[str, Any]:
    return {
        "region_name": emu.region,
        "endpoint_url": emu.url,
        "aws_access_key_id": emu.access_key_id,
        "aws_secret_access_key": emu.secret_access_key,
    }


class StockChatHandler(AwsChatHandler):
    """What a langchain-aws user writes for an OpenAI-compatible chat endpoint."""

    content_type = "application/json"
    accepts = "application/json"

    def transform_input(self, prompt: Any, model_kwargs: dict[str, Any]) -> bytes:
        return json.dumps({"messages": prompt, **model_kwargs}).encode()

    def transform_output(self, output: Any) -> Any:
        if hasattr(output, "read"):
            return AIMessage(content=json.loads(output.read())["choices"][0]["message"]["content"])
        line = output.decode()
        data = line[5:].strip() if line.startswith("data:") else "[DONE]"
        if data == "[DONE]":
            return AIMessageChunk(content="")
        choices = json.loads(data).get("choices") or [{}]
        return AIMessageChunk(content=(choices[0].get("delta") or {}).get("content") or "")


class StockTGIHandler(AwsLLMHandler):
    """What a langchain-aws user writes for a TGI endpoint."""

    content_type = "application/json"
    accepts = "application/json"

    def transform_input(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:
        return json.dumps({"inputs": prompt, "parameters": model_kwargs, "stream": True}).encode()

    def transform_output(self, output: Any) -> str:
        if hasattr(output, "read"):
            return str(json.loads(output.read())[0]["generated_text"])
        line = output.decode()
        return str(json.loads(line[5:])["token"]["text"]) if line.startswith("data:") else ""


def _stream_text(chunks: list[Any]) -> str:
    return "".join(str(chunk.content) for chunk in chunks)


def test_chat_stream_matches_langchain_aws_and_reports_usage(emu: Emulator, keys: dict[str, Any]) -> None:
    stock = AwsChat(
        endpoint_name="chat",
        client=emu.boto3_client(),
        content_handler=StockChatHandler(),
        model_kwargs={"max_tokens": 7},
        streaming=True,
    )
    ours = ChatSagemakerEndpoint(endpoint_name="chat", model_kwargs={"max_tokens": 7}, **keys)
    expected = str(stock.invoke("Tell me about rivers").content)
    assert len(expected.split()) == 7
    chunks = list(ours.stream("Tell me about rivers"))
    assert _stream_text(chunks) == expected
    assert sum(1 for chunk in chunks if chunk.content) == 7  # one chunk per token
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.response_metadata["finish_reason"] == "length"
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["output_tokens"] == 7
    # InvokeEndpoint gives the same answer, with its finish reason and usage.
    message = ours.invoke("Tell me about rivers")
    assert message.content == expected
    assert message.response_metadata["finish_reason"] == "length"
    assert message.usage_metadata is not None
    assert message.usage_metadata["total_tokens"] > 7


def test_stock_handler_works_unchanged_on_a_given_client(emu: Emulator, keys: dict[str, Any]) -> None:
    client = Client(endpoint_url=emu.url, region_name=emu.region, aws_access_key_id=emu.access_key_id,
                    aws_secret_access_key=emu.secret_access_key)  # fmt: skip
    ours = ChatSagemakerEndpoint(endpoint_name="chat", client=client, content_handler=StockChatHandler(),
                                 model_kwargs={"stream": True, "max_tokens": 5})  # fmt: skip
    stock = AwsChat(endpoint_name="chat", client=emu.boto3_client(), content_handler=StockChatHandler(),
                    model_kwargs={"stream": True, "max_tokens": 5}, streaming=True)  # fmt: skip
    assert _stream_text(list(ours.stream("Hi"))) == str(stock.invoke("Hi").content)
    with pytest.raises(TypeError, match="not both"):
        ChatSagemakerEndpoint(endpoint_name="chat", client=client, region_name="us-east-1")


def test_llm_tgi_matches_langchain_aws(emu: Emulator, keys: dict[str, Any]) -> None:
    stock = AwsLLM(endpoint_name="tgi", client=emu.boto3_client(), content_handler=StockTGIHandler(),
                   model_kwargs={"max_new_tokens": 6}, streaming=True)  # fmt: skip
    ours = SagemakerEndpoint(endpoint_name="tgi", content_handler=TGIContentHandler(),
                             model_kwargs={"max_new_tokens": 6}, **keys)  # fmt: skip
    expected = stock.invoke("Tell me about lakes")
    assert len(expected.split()) == 6
    pieces = list(ours.stream("Tell me about lakes"))
    assert "".join(pieces) == expected
    assert ours.invoke("Tell me about lakes") == expected
    result = ours.generate(["Tell me about lakes"])
    assert result.generations[0][0].text == expected


def test_model_stream_error_after_the_chunks_before_it(keys: dict[str, Any]) -> None:
    ours = ChatSagemakerEndpoint(
        endpoint_name="chat", endpoint_kwargs={"CustomAttributes": "fault=model-stream-error;after=3"}, **keys
    )
    got: list[str] = []

    def read() -> None:
        got.extend(str(chunk.content) for chunk in ours.stream("Tell me about rivers"))

    with pytest.raises(ModelStreamError) as caught:
        read()
    assert caught.value.error_code == "ModelInvocationTimeExceeded"
    # Three parts: the assistant role, then two tokens, all delivered before the error.
    full = str(ChatSagemakerEndpoint(endpoint_name="chat", **keys).invoke("Tell me about rivers").content)
    assert "".join(got) == " ".join(full.split(" ")[:2])


def test_model_error_is_typed(keys: dict[str, Any]) -> None:
    ours = SagemakerEndpoint(
        endpoint_name="tgi",
        content_handler=TGIContentHandler(),
        endpoint_kwargs={"CustomAttributes": "fault=model-error;status=503;message=overloaded"},
        **keys,
    )
    with pytest.raises(ModelError) as caught:
        ours.invoke("Hi")
    assert caught.value.original_status_code == 503
    with pytest.raises(ModelError):
        list(ours.stream("Hi"))


def test_async_stream_and_error(keys: dict[str, Any]) -> None:
    ours = ChatSagemakerEndpoint(endpoint_name="chat", model_kwargs={"max_tokens": 4}, **keys)
    failing = ChatSagemakerEndpoint(
        endpoint_name="chat", endpoint_kwargs={"CustomAttributes": "fault=model-stream-error;after=2"}, **keys
    )

    async def main() -> tuple[str, str, list[str]]:
        text = "".join([str(chunk.content) async for chunk in ours.astream("Hi there")])
        message = await ours.ainvoke("Hi there")
        got: list[str] = []

        async def read() -> None:
            async for chunk in failing.astream("Hi there"):
                got.append(str(chunk.content))

        with pytest.raises(ModelStreamError):
            await read()
        return text, str(message.content), got

    text, whole, got = asyncio.run(main())
    assert text == whole
    assert len(whole.split()) == 4
    assert "".join(got) == whole.split(" ")[0]  # role part, then the first token


def test_cancelled_async_stream_closes_it(emu: Emulator, keys: dict[str, Any]) -> None:
    ours = ChatSagemakerEndpoint(
        endpoint_name="chat",
        model_kwargs={"max_tokens": 2000},
        endpoint_kwargs={"CustomAttributes": "delay_ms=5;cancel-probe=1"},
        **keys,
    )

    async def main() -> int:
        count = 0
        stream = ours.astream("Tell me everything")
        async for chunk in stream:
            count += bool(chunk.content)
            if count == 3:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        return count

    assert asyncio.run(main()) == 3
    # The emulator logs the stream when it ends: as soon as the client let go, long before the
    # 2000 tokens (10 s of pacing) it would otherwise send.
    deadline = time.monotonic() + 30
    records: list[Any] = []
    while time.monotonic() < deadline and not records:
        records = [r for r in emu.request_log.snapshot() if "cancel-probe" in (r.custom_attributes or "")]
        time.sleep(0.05)
    assert records, "the emulator never saw the stream end"
    assert records[0].ended - records[0].started < 8


def test_tool_calls_through_the_proxy(emu: Emulator, container: ChatContainer, keys: dict[str, Any]) -> None:
    def weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    ours = ChatSagemakerEndpoint(endpoint_name="box", **keys).bind_tools([weather], tool_choice="weather")
    message = ours.invoke("Weather in Oslo?")
    assert isinstance(message, AIMessage)
    assert message.tool_calls == [
        {"name": "weather", "args": {"city": "Oslo"}, "id": "call_1", "type": "tool_call"}
    ]
    assert message.response_metadata["finish_reason"] == "tool_calls"
    sent = container.requests[-1]
    assert sent["tools"][0]["function"]["name"] == "weather"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "weather"}}

    whole: Any = None
    for chunk in ours.stream("Weather in Oslo?"):
        whole = chunk if whole is None else whole + chunk
    assert whole.tool_calls == [
        {"name": "weather", "args": {"city": "Oslo"}, "id": "call_1", "type": "tool_call"}
    ]
    assert whole.response_metadata["finish_reason"] == "tool_calls"
    assert whole.usage_metadata == {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}
    assert container.requests[-1]["stream"] is True


@pytest.mark.parametrize("sliced", [True, False], ids=["sliced", "unsliced"])
def test_a_long_answer_shares_the_event_loop(
    keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch, sliced: bool
) -> None:
    # What the loop did while 1,500 back-to-back tokens were streamed: see _loop_ticker.py.
    if not sliced:
        unslice(monkeypatch)
    ours = ChatSagemakerEndpoint(endpoint_name="chat", model_kwargs={"max_tokens": 1500}, **keys)

    async def main() -> Any:
        return await consume(
            ours.astream("Tell me everything, in 1500 words"), counts=lambda chunk: bool(chunk.content)
        )

    ticker = asyncio.run(main())
    if sliced:
        assert ticker.most <= slice_bound(), ticker.most
    else:
        assert ticker.most > slice_bound(), ticker.most  # the check can fail
