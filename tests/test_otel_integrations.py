"""The LangChain and Strands integrations, instrumented: each model call is one span named for
its GenAI operation, with the token usage the container reported, under the framework's own span
when the framework makes one (a Strands Agent's model invocation) or the caller's current span."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("strands")

from _otel_fixtures import Recorded, telemetry
from opentelemetry.trace import SpanKind
from sagestream.emulator import Emulator
from sagestream.integrations.langchain import ChatSagemakerEndpoint, SagemakerEndpoint
from sagestream.integrations.strands import SageMakerAIModel

__all__ = ["telemetry"]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(endpoints={"chat": "demo", "tgi": "demo:sse"}, token_delay=0.0) as e:
        yield e


def _keys(emu: Emulator) -> dict[str, Any]:
    return {
        "region_name": emu.region,
        "endpoint_url": emu.url,
        "aws_access_key_id": emu.access_key_id,
        "aws_secret_access_key": emu.secret_access_key,
    }


def _calls(telemetry: Recorded) -> list[Any]:
    return [s for s in telemetry.finished() if s.kind is SpanKind.CLIENT]


def test_langchain_chat_calls_are_chat_spans_with_usage(telemetry: Recorded, emu: Emulator) -> None:
    model = ChatSagemakerEndpoint(endpoint_name="chat", model_kwargs={"max_tokens": 5}, **_keys(emu))
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as parent:
        chunks = list(model.stream("Tell me about rivers"))
        message = model.invoke("Tell me about rivers")
    streamed, invoked = _calls(telemetry)
    assert streamed.name == invoked.name == "chat chat"
    assert streamed.attributes["rpc.method"] == "InvokeEndpointWithResponseStream"
    assert invoked.attributes["rpc.method"] == "InvokeEndpoint"
    for span in (streamed, invoked):
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["gen_ai.usage.output_tokens"] == 5
        assert span.attributes["gen_ai.usage.input_tokens"] > 0
    assert streamed.attributes["sagestream.stream.parts"] >= sum(1 for c in chunks if c.content)
    assert message.usage_metadata is not None
    assert invoked.attributes["gen_ai.usage.input_tokens"] == message.usage_metadata["input_tokens"]
    assert telemetry.count("gen_ai.client.token.usage", gen_ai__token__type="output") == 2
    assert telemetry.count("gen_ai.client.operation.duration", gen_ai__operation__name="chat") == 2


def test_langchain_llm_is_a_text_completion(telemetry: Recorded, emu: Emulator) -> None:
    model = SagemakerEndpoint(endpoint_name="tgi", model_kwargs={"max_new_tokens": 4}, **_keys(emu))
    text = "".join(model.stream("Tell me about rivers"))
    assert text

    async def main() -> str:
        return await model.ainvoke("Tell me about rivers")

    assert asyncio.run(main())
    spans = _calls(telemetry)
    assert [s.attributes["gen_ai.operation.name"] for s in spans] == ["text_completion"] * 2
    assert [s.name for s in spans] == ["text_completion tgi"] * 2
    assert telemetry.count("gen_ai.client.operation.time_to_first_chunk") == 1


def test_langchain_async_stream_span_ends_with_the_stream(telemetry: Recorded, emu: Emulator) -> None:
    model = ChatSagemakerEndpoint(endpoint_name="chat", model_kwargs={"max_tokens": 4}, **_keys(emu))

    async def main() -> int:
        return len([chunk async for chunk in model.astream("Tell me about rivers")])

    assert asyncio.run(main()) > 0
    (span,) = _calls(telemetry)
    assert span.attributes["gen_ai.usage.output_tokens"] == 4
    assert span.end_time is not None


def _strands(emu: Emulator, **payload: Any) -> SageMakerAIModel:
    return SageMakerAIModel(
        endpoint_config={"endpoint_name": "chat", "region_name": emu.region},
        payload_config={"max_tokens": 6, **payload},  # type: ignore[typeddict-item]
        endpoint_url=emu.url,
        aws_access_key_id=emu.access_key_id,
        aws_secret_access_key=emu.secret_access_key,
    )


@pytest.fixture
def strands_traced(telemetry: Recorded, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """Strands' own tracer, on the test's provider (it reads the global one otherwise)."""
    from strands.telemetry import tracer as strands_tracer

    traced = strands_tracer.Tracer()
    traced.tracer_provider = telemetry.tracer_provider
    traced.tracer = telemetry.tracer_provider.get_tracer(traced.service_name)
    monkeypatch.setattr(strands_tracer, "_tracer_instance", traced)
    return telemetry


def test_an_agent_turn_nests_the_call_in_its_model_span(strands_traced: Recorded, emu: Emulator) -> None:
    from strands import Agent

    result = Agent(model=_strands(emu, max_tokens=512), callback_handler=None)("Tell me about rivers")
    assert result.stop_reason == "end_turn"
    spans = strands_traced.finished()
    (call,) = [s for s in spans if s.kind is SpanKind.CLIENT]
    parents = {s.context.span_id: s for s in spans}
    assert call.parent is not None
    model_span = parents[call.parent.span_id]
    assert model_span.name == "chat"  # Strands' model invocation span
    assert model_span.instrumentation_scope is not None
    assert model_span.instrumentation_scope.name != "sagestream"
    assert call.name == "chat chat"
    assert call.attributes["gen_ai.operation.name"] == "chat"
    usage = result.metrics.accumulated_usage
    assert call.attributes["gen_ai.usage.output_tokens"] == usage["outputTokens"]
    assert call.attributes["gen_ai.usage.input_tokens"] == usage["inputTokens"]


def test_strands_without_streaming(telemetry: Recorded, emu: Emulator) -> None:
    async def main() -> None:
        model = _strands(emu, stream=False)
        async for _ in model.stream([{"role": "user", "content": [{"text": "Tell me about rivers"}]}]):
            pass

    asyncio.run(main())
    (span,) = _calls(telemetry)
    assert span.attributes["rpc.method"] == "InvokeEndpoint"
    assert span.attributes["gen_ai.usage.output_tokens"] == 6
