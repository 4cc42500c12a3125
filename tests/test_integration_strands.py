"""The Strands provider against the emulator: the demo model, and a scripted chat container
behind the emulator's proxy model, compared with Strands' own SageMakerAIModel on stock boto3."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("strands")

import boto3
from _chat_container import ChatContainer, chunk_doc, completion_doc
from _loop_ticker import consume, slice_bound, unslice
from sagestream import ModelError, ModelStreamError
from sagestream.emulator import Emulator
from sagestream.integrations.strands import SageMakerAIModel
from strands import Agent, tool
from strands.models.sagemaker import SageMakerAIModel as StrandsSageMakerAIModel
from strands.types.exceptions import MaxTokensReachedException

USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


def _script(doc: dict[str, Any]) -> Any:
    """A tool call while the conversation has no tool result, then a text answer."""
    answered = any(message.get("role") == "tool" for message in doc["messages"])
    if not doc.get("stream"):
        return completion_doc('{"city": "Oslo", "degrees": 21}', usage=USAGE)
    if answered:
        return [
            chunk_doc({"role": "assistant", "content": ""}),
            chunk_doc({"content": "It is "}),
            chunk_doc({"content": "sunny."}),
            chunk_doc({}, "stop"),
            chunk_doc(usage=USAGE),
        ]
    return [
        chunk_doc({"role": "assistant", "content": None}),
        chunk_doc({"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                                   "function": {"name": "weather", "arguments": '{"ci'}}]}),
        chunk_doc({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]}),
        chunk_doc({}, "tool_calls"),
        chunk_doc(usage=USAGE),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def container() -> Iterator[ChatContainer]:
    with ChatContainer(_script) as box:
        yield box


@pytest.fixture(scope="module")
def emu(container: ChatContainer) -> Iterator[Emulator]:
    with Emulator(endpoints={"chat": "demo", "box": container.url}, token_delay=0.0) as e:
        yield e


def _ours(emu: Emulator, endpoint: str = "chat", **payload: Any) -> SageMakerAIModel:
    return SageMakerAIModel(
        endpoint_config={"endpoint_name": endpoint, "region_name": emu.region},
        payload_config={"max_tokens": 6, **payload},  # type: ignore[typeddict-item]
        endpoint_url=emu.url,
        aws_access_key_id=emu.access_key_id,
        aws_secret_access_key=emu.secret_access_key,
    )


def _events(model: Any, text: str, **kwargs: Any) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        return [
            event async for event in model.stream([{"role": "user", "content": [{"text": text}]}], **kwargs)
        ]

    return asyncio.run(main())


def _text(events: list[dict[str, Any]]) -> str:
    return "".join(
        e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e
    )


def test_stream_matches_strands_own_provider(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", emu.url)  # Strands' provider takes no URL
    session = boto3.Session(aws_access_key_id=emu.access_key_id, aws_secret_access_key=emu.secret_access_key,
                            region_name=emu.region)  # fmt: skip
    stock = StrandsSageMakerAIModel(
        endpoint_config={"endpoint_name": "chat", "region_name": emu.region},
        payload_config={"max_tokens": 6, "stream": True},
        boto_session=session,
    )
    expected = _text(_events(stock, "Tell me about rivers"))
    assert len(expected.split()) == 6
    events = _events(_ours(emu), "Tell me about rivers")
    assert _text(events) == expected
    assert events[0] == {"messageStart": {"role": "assistant"}}
    assert {"messageStop": {"stopReason": "max_tokens"}} in events
    usage = events[-1]["metadata"]["usage"]
    assert usage["outputTokens"] == 6
    assert usage["totalTokens"] == usage["inputTokens"] + 6
    # A whole Agent turn gives the same text as Strands' own provider in an Agent.
    # (No max_tokens: an Agent raises MaxTokensReachedException on that stop reason.)
    stock_long = StrandsSageMakerAIModel(
        endpoint_config={"endpoint_name": "chat", "region_name": emu.region},
        payload_config={"stream": True},
        boto_session=session,
    )
    ours_long = _ours(emu)
    ours_long.payload_config.pop("max_tokens")
    ours_agent = Agent(model=ours_long, callback_handler=None)
    stock_agent = Agent(model=stock_long, callback_handler=None)
    assert str(ours_agent("Tell me about rivers")) == str(stock_agent("Tell me about rivers"))


def test_an_agent_with_max_tokens_ends_its_turns(emu: Emulator) -> None:
    """docs/integrations.md's agent sets max_tokens: its turns end as the model's answers do
    (end_turn), and only an answer the limit cuts raises MaxTokensReachedException."""
    agent = Agent(model=_ours(emu, max_tokens=512), callback_handler=None)
    for prompt in ("Tell me about rivers", "And about harbors?"):
        result = agent(prompt)
        assert result.stop_reason == "end_turn"
        assert str(result).strip().endswith(".")
    with pytest.raises(MaxTokensReachedException):
        Agent(model=_ours(emu, max_tokens=3), callback_handler=None)("Tell me about rivers")


def test_not_streaming_uses_invoke_endpoint(emu: Emulator) -> None:
    events = _events(_ours(emu, stream=False), "Tell me about rivers")
    assert _text(events) == _text(_events(_ours(emu), "Tell me about rivers"))
    assert {"messageStop": {"stopReason": "max_tokens"}} in events
    assert emu.request_log.snapshot()[-2].operation == "InvokeEndpoint"


def test_errors_are_typed_after_the_text_before_them(emu: Emulator) -> None:
    model = _ours(emu, max_tokens=20)
    model.endpoint_config["additional_args"] = {"CustomAttributes": "fault=model-stream-error;after=4"}
    got: list[dict[str, Any]] = []

    async def main() -> None:
        async for event in model.stream([{"role": "user", "content": [{"text": "Hi"}]}]):
            got.append(event)

    with pytest.raises(ModelStreamError):
        asyncio.run(main())
    whole = _text(_events(_ours(emu, max_tokens=20), "Hi"))
    assert _text(got) == " ".join(whole.split(" ")[:3])  # the role part, then three tokens
    model.endpoint_config["additional_args"] = {"CustomAttributes": "fault=model-error;status=400"}
    with pytest.raises(ModelError):
        _events(model, "Hi")


def test_tool_calls_through_the_proxy(emu: Emulator, container: ChatContainer) -> None:
    calls: list[str] = []

    @tool
    def weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny"

    tool_spec = weather.tool_spec
    events = _events(_ours(emu, "box"), "Weather in Oslo?", tool_specs=[tool_spec])
    starts = [e["contentBlockStart"]["start"] for e in events if "contentBlockStart" in e]
    assert starts == [{"toolUse": {"name": "weather", "toolUseId": "call_7"}}]
    arguments = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e
    )
    assert arguments == '{"city": "Oslo"}'
    assert {"messageStop": {"stopReason": "tool_use"}} in events
    assert events[-1]["metadata"]["usage"] == {"inputTokens": 11, "outputTokens": 5, "totalTokens": 16}
    assert container.requests[-1]["tools"][0]["function"]["name"] == "weather"

    # An Agent runs the tool and sends its result back; the container then answers in text.
    agent = Agent(model=_ours(emu, "box"), tools=[weather], callback_handler=None)
    result = agent("Weather in Oslo?")
    assert calls == ["Oslo"]
    assert str(result).strip() == "It is sunny."
    assert result.stop_reason == "end_turn"


def test_structured_output(emu: Emulator) -> None:
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str
        degrees: int

    async def main() -> list[Any]:
        model = _ours(emu, "box")
        return [
            e async for e in model.structured_output(Weather, [{"role": "user", "content": [{"text": "?"}]}])
        ]

    assert asyncio.run(main()) == [{"output": Weather(city="Oslo", degrees=21)}]


@pytest.mark.parametrize("sliced", [True, False], ids=["sliced", "unsliced"])
def test_a_long_answer_shares_the_event_loop(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, sliced: bool
) -> None:
    # What the loop did while 1,500 back-to-back tokens were streamed: see _loop_ticker.py.
    if not sliced:
        unslice(monkeypatch)
    model = _ours(emu, max_tokens=1500)

    async def main() -> Any:
        events = model.stream([{"role": "user", "content": [{"text": "Tell me everything, in 1500 words"}]}])
        return await consume(events, counts=lambda event: "contentBlockDelta" in event)

    ticker = asyncio.run(main())
    if sliced:
        assert ticker.most <= slice_bound(), ticker.most
    else:
        assert ticker.most > slice_bound(), ticker.most  # the check can fail
