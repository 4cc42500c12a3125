"""Spans and metrics of every operation, on both clients, against the emulator.

Each call has one CLIENT span covering the whole call (for a stream: up to its last part), with
the GenAI and AWS SDK attributes, and records the GenAI client metrics; a failure ends the span
with the typed error's class and code, at any point of the call.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import sagestream
from _otel_fixtures import BODY, Recorded, config, session_of, telemetry
from opentelemetry.trace import SpanKind, StatusCode
from sagestream.emulator import Emulator
from sagestream.otel._streams import BATCH

__all__ = ["telemetry"]

STREAM = "InvokeEndpointWithResponseStream"
INVOKE = "InvokeEndpoint"


@pytest.fixture(params=["sync", "asyncio"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(
    flavour: str, emulator: Emulator, call: str, **options: Any
) -> tuple[list[bytes], BaseException | None]:
    """One call of ``call`` ("stream" or "invoke") on the ``flavour`` client: parts, error."""
    attempts = options.pop("attempts", 1)
    got: list[bytes] = []
    if flavour == "sync":
        with sagestream.Client(
            session_of(emulator), endpoint_url=emulator.url, config=config(attempts)
        ) as client:
            try:
                if call == "stream":
                    with client.invoke_stream("demo", BODY, **options) as stream:
                        got.extend(stream)
                else:
                    got.append(client.invoke("demo", BODY, **options).body)
            except Exception as exc:
                return got, exc
        return got, None

    async def main() -> BaseException | None:
        async with sagestream.AsyncClient(
            session_of(emulator), endpoint_url=emulator.url, config=config(attempts)
        ) as client:
            try:
                if call == "stream":
                    async with client.invoke_stream("demo", BODY, **options) as stream:
                        async for part in stream:
                            got.append(part)
                else:
                    got.append((await client.invoke("demo", BODY, **options)).body)
            except Exception as exc:
                return exc
        return None

    return got, asyncio.run(main())


def test_a_stream_is_one_client_span_to_its_last_part(
    telemetry: Recorded, emulator: Emulator, flavour: str
) -> None:
    parts, error = run(
        flavour, emulator, "stream", custom_attributes="tokens=7", inference_component_name="ic-1",
        target_variant="AllTraffic",
    )  # fmt: skip
    assert error is None
    assert len(parts) >= 7
    span = telemetry.one_span()
    a = span.attributes
    assert span.kind is SpanKind.CLIENT
    assert span.name == "generate_content demo"
    assert a["gen_ai.operation.name"] == "generate_content"
    assert a["gen_ai.system"] == "aws.sagemaker"
    assert a["gen_ai.request.model"] == "demo"
    assert a["rpc.system"] == "aws-api"
    assert a["rpc.service"] == "SageMaker Runtime"
    assert a["rpc.method"] == STREAM
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == int(emulator.url.rsplit(":", 1)[1])
    assert a["aws.sagemaker.inference_component"] == "ic-1"
    assert a["aws.sagemaker.target_variant"] == "AllTraffic"
    assert a["aws.request_id"]
    assert a["http.response.status_code"] == 200
    assert a["sagestream.stream.parts"] == len(parts)
    assert a["sagestream.stream.bytes"] == sum(map(len, parts))
    assert a["sagestream.attempts"] == 1
    assert a["sagestream.retries"] == 0
    assert 0 < a["sagestream.stream.time_to_first_chunk"] < (span.end_time - span.start_time) / 1e9
    assert "aws.sagemaker.request.body" not in a
    assert "aws.sagemaker.response.body" not in a
    assert span.status.status_code is StatusCode.UNSET
    assert [e.name for e in span.events] == ["sagestream.first_chunk"]
    # The metrics, with the GenAI dimensions.
    assert (
        telemetry.count("gen_ai.client.operation.duration", rpc__method=STREAM, gen_ai__request__model="demo")
        == 1
    )
    assert telemetry.count("gen_ai.client.operation.time_to_first_chunk") == 1
    assert telemetry.count("gen_ai.client.operation.time_per_output_chunk") == len(parts) - 1
    assert telemetry.count("sagestream.client.attempts", rpc__method=STREAM) == 1
    assert telemetry.count("sagestream.client.errors") == 0
    point = telemetry.points("gen_ai.client.operation.duration")[0]
    assert "error.type" not in point.attributes
    assert point.attributes["server.address"] == "127.0.0.1"


def test_invoke_endpoint_span_and_no_chunk_metrics(
    telemetry: Recorded, emulator: Emulator, flavour: str
) -> None:
    _parts, error = run(flavour, emulator, "invoke", custom_attributes="tokens=3")
    assert error is None
    span = telemetry.one_span()
    assert span.attributes["rpc.method"] == INVOKE
    assert span.attributes["http.response.status_code"] == 200
    assert "sagestream.stream.parts" not in span.attributes
    assert telemetry.count("gen_ai.client.operation.duration", rpc__method=INVOKE) == 1
    # The chunk metrics are for streaming calls only.
    assert telemetry.points("gen_ai.client.operation.time_to_first_chunk") == []
    assert telemetry.points("gen_ai.client.operation.time_per_output_chunk") == []


@pytest.mark.parametrize(
    ("attrs", "kind", "code", "parts_before"),
    [
        ("fault=model-error", "ModelError", "ModelError", 0),
        ("fault=throttle", "ModelNotReadyException", "ModelNotReadyException", 0),
        ("tokens=9;fault=model-stream-error;after=4", "ModelStreamError", "ModelInvocationTimeExceeded", 4),
        (
            "tokens=9;fault=model-stream-error;after=2;code=StreamBroken",
            "ModelStreamError",
            "StreamBroken",
            2,
        ),
        (
            "tokens=9;fault=internal-stream-failure;after=3",
            "InternalStreamFailure",
            "InternalStreamFailure",
            3,
        ),
        ("tokens=9;fault=cut;after=3", "TruncatedStreamError", None, 3),
    ],
)
def test_a_failure_ends_the_span_with_its_type_and_code(
    telemetry: Recorded,
    emulator: Emulator,
    flavour: str,
    attrs: str,
    kind: str,
    code: str | None,
    parts_before: int,
) -> None:
    parts, error = run(flavour, emulator, "stream", custom_attributes=attrs)
    assert type(error).__name__ == kind
    assert len(parts) == parts_before
    span = telemetry.one_span()
    a = span.attributes
    assert a["error.type"] == kind
    assert a.get("aws.sagemaker.error_code") == code
    assert span.status.status_code is StatusCode.ERROR
    assert any(e.name == "exception" for e in span.events)
    if parts_before:
        assert a["sagestream.stream.parts"] == parts_before
        assert telemetry.count("gen_ai.client.operation.time_per_output_chunk") == parts_before - 1
    else:
        assert "sagestream.stream.parts" not in a
    assert telemetry.count("gen_ai.client.operation.duration", error__type=kind) == 1
    assert telemetry.count("sagestream.client.errors", error__type=kind, gen_ai__request__model="demo") == 1


def test_retries_are_events_attributes_and_metrics(
    telemetry: Recorded, emulator: Emulator, flavour: str
) -> None:
    # The standard retry mode retries a 503 (an overloaded endpoint's answer); every attempt gets
    # one. (A 429 ModelNotReadyException is not retried by botocore's rules: see the fault test.)
    _parts, error = run(flavour, emulator, "invoke", custom_attributes="fault=unavailable", attempts=3)
    assert type(error).__name__ == "ServiceUnavailable"
    span = telemetry.one_span()
    assert span.attributes["sagestream.attempts"] == 3
    assert span.attributes["sagestream.retries"] == 2
    failed = [e for e in span.events if e.name == "sagestream.attempt_failed"]
    assert [e.attributes["sagestream.attempt"] for e in failed] == [1, 2, 3]
    assert all(e.attributes["error.type"] == "ServiceUnavailable" for e in failed)
    assert [("sagestream.retry_in" in e.attributes) for e in failed] == [True, True, False]
    assert telemetry.count("sagestream.client.attempts", error__type="ServiceUnavailable") == 3
    assert telemetry.count("sagestream.client.retries", error__type="ServiceUnavailable") == 2
    assert telemetry.count("sagestream.client.errors", error__type="ServiceUnavailable") == 1


def test_deadline(telemetry: Recorded, emulator: Emulator, flavour: str) -> None:
    _parts, error = run(
        flavour, emulator, "stream", custom_attributes="tokens=5;fault=stall;after=2;seconds=3", deadline=0.5
    )
    assert type(error).__name__ == "DeadlineExceededError"
    span = telemetry.one_span()
    assert span.attributes["error.type"] == "DeadlineExceededError"
    assert span.attributes["sagestream.stream.parts"] == 2


def test_a_stream_closed_early_ends_its_span_unfailed(telemetry: Recorded, emulator: Emulator) -> None:
    with sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client:
        with client.invoke_stream("demo", BODY, custom_attributes="tokens=20") as stream:
            next(iter(stream))
        span = telemetry.one_span()
        assert span.attributes["sagestream.stream.closed_early"] is True
        assert span.status.status_code is StatusCode.UNSET
        # A stream dropped unread ends its span too.
        client.invoke_stream("demo", BODY, custom_attributes="tokens=3")
        assert len(telemetry.finished()) == 2


def test_cancelling_the_reading_task_ends_the_span(telemetry: Recorded, emulator: Emulator) -> None:
    async def main() -> None:
        async with sagestream.AsyncClient(
            session_of(emulator), endpoint_url=emulator.url, config=config()
        ) as client:
            started = asyncio.Event()

            async def read() -> None:
                async with client.invoke_stream(
                    "demo", BODY, custom_attributes="tokens=50;delay_ms=50"
                ) as stream:
                    async for _ in stream:
                        started.set()

            task = asyncio.create_task(read())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    span = telemetry.one_span()
    assert span.attributes["error.type"] == "CancelledError"
    assert span.attributes["sagestream.stream.parts"] >= 1


def test_bodies_only_when_asked(emulator: Emulator) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sagestream.otel import SageStreamInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    SageStreamInstrumentor().instrument(tracer_provider=provider, capture_content=True)
    try:
        parts, _error = run("sync", emulator, "stream", custom_attributes="tokens=4")
        invoke, _ = run("sync", emulator, "invoke", custom_attributes="tokens=4")
    finally:
        SageStreamInstrumentor().uninstrument()
    stream_span, invoke_span = exporter.get_finished_spans()
    assert stream_span.attributes["aws.sagemaker.request.body"] == BODY.decode()
    assert stream_span.attributes["aws.sagemaker.response.body"] == b"".join(parts).decode()
    assert json.loads(invoke_span.attributes["aws.sagemaker.response.body"]) == json.loads(invoke[0])


def test_uninstrumented_calls_make_nothing(emulator: Emulator) -> None:
    from sagestream import _observe

    assert _observe.watcher is None
    with sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client:
        stream = client.invoke_stream("demo", BODY, custom_attributes="tokens=2")
        # The Rust part iterator itself: no Python object stands between it and the reader.
        assert type(stream._parts).__module__ == "sagestream._core"
        stream.close()


def test_every_gap_between_parts_is_one_chunk_record(
    telemetry: Recorded, emulator: Emulator, flavour: str
) -> None:
    """The stream measures the gap before each part where it hands the part out and the watch
    records them in batches: one record per part after the first, the true gaps (their largest
    is the stream's own ``max_gap``), with the attributes the conventions list for the metric."""
    parts, error = run(flavour, emulator, "stream", custom_attributes=f"tokens={BATCH * 2 + 5}")
    assert error is None
    assert len(parts) > BATCH * 2
    span = telemetry.one_span()
    (point,) = telemetry.points("gen_ai.client.operation.time_per_output_chunk")
    assert point.count == len(parts) - 1
    assert point.max == span.attributes["sagestream.stream.max_gap"]
    assert 0 <= point.min <= point.max
    assert point.sum <= (span.end_time - span.start_time) / 1e9
    assert point.attributes["gen_ai.request.model"] == "demo"
    assert point.attributes["server.address"] == "127.0.0.1"
    assert "rpc.method" not in point.attributes


def test_gaps_are_recorded_while_the_stream_runs(telemetry: Recorded, emulator: Emulator) -> None:
    with (
        sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client,
        client.invoke_stream("demo", BODY, custom_attributes=f"tokens={BATCH * 3}") as stream,
    ):
        for _ in range(BATCH + 2):
            next(stream)
        # A batch is due after BATCH gaps (or sooner, when the oldest is a second old).
        assert 0 < telemetry.count("gen_ai.client.operation.time_per_output_chunk") <= BATCH + 1
        assert telemetry.finished() == []
