"""Spans beyond the plain calls: bidirectional sessions, async inference jobs, the drop-in, the
integrations' annotations, and the choice of convention version."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import sagestream
from _duplex_fixtures import make_client
from _otel_fixtures import BODY, Recorded, config, session_of, telemetry
from opentelemetry.trace import SpanKind, StatusCode
from sagestream import _observe, observe
from sagestream.emulator import Emulator

__all__ = ["telemetry"]

PREFIX = "s3://sagestream-examples/otel/"
FAST = {"min_interval": 0.02, "max_interval": 0.2}


def test_a_bidirectional_session_is_one_span(telemetry: Recorded, duplex_emulator: Emulator) -> None:
    client = make_client(duplex_emulator)
    try:
        with client.invoke_bidirectional("echo", target_variant="AllTraffic") as session:
            session.send("one", complete=False)
            session.send("two", complete=True)
            session.close_input()
            got = list(session)
    finally:
        client.close()
    span = telemetry.one_span()
    a = span.attributes
    assert span.kind is SpanKind.CLIENT
    assert a["rpc.method"] == "InvokeEndpointWithBidirectionalStream"
    assert a["gen_ai.request.model"] == "echo"
    assert a["aws.sagemaker.target_variant"] == "AllTraffic"
    assert a["http.response.status_code"] == 200
    assert a["sagestream.stream.parts"] == len(got)
    assert telemetry.count("gen_ai.client.operation.time_to_first_chunk") == 1


def test_an_async_bidirectional_session_is_one_span(telemetry: Recorded, duplex_emulator: Emulator) -> None:
    async def main() -> int:
        async with (
            sagestream.AsyncClient(
                region_name=duplex_emulator.region,
                endpoint_url=duplex_emulator.url,
                aws_access_key_id=duplex_emulator.access_key_id,
                aws_secret_access_key=duplex_emulator.secret_access_key,
                duplex_endpoint_url=duplex_emulator.duplex_url,
            ) as client,
            client.invoke_bidirectional("echo", input=["a", "b", "c"]) as session,
        ):
            return len([part async for part in session])

    count = asyncio.run(main())
    span = telemetry.one_span()
    assert span.attributes["sagestream.stream.parts"] == count == 3


def _job_spans(telemetry: Recorded) -> tuple[Any, Any]:
    spans = {s.name: s for s in telemetry.finished()}
    job = spans.pop("async_inference echo")
    (submit,) = spans.values()
    return job, submit


def test_an_async_inference_job_spans_submit_to_result(telemetry: Recorded, emulator: Emulator) -> None:
    client = sagestream.Client(
        session_of(emulator),
        endpoint_url=emulator.url,
        config=config(),
        s3_endpoint_url=emulator.s3_endpoint_url,
    )
    with client:
        job = client.invoke_async("echo", input=b'{"x": 1}', input_prefix=PREFIX, inference_id="otel-1")
        assert job.wait(timeout=30, **FAST) == b'{"x": 1}'
    span, submit = _job_spans(telemetry)
    assert span.kind is SpanKind.INTERNAL
    assert submit.kind is SpanKind.CLIENT
    assert submit.attributes["rpc.method"] == "InvokeEndpointAsync"
    assert submit.parent is not None
    assert submit.parent.span_id == span.context.span_id
    a = span.attributes
    assert a["aws.sagemaker.inference_id"] == job.inference_id == "otel-1"
    assert a["aws.sagemaker.output_location"] == job.output_location
    assert a["sagestream.job.polls"] >= 0
    assert span.status.status_code is StatusCode.UNSET
    assert [e.name for e in span.events] == ["sagestream.job_submitted"]
    assert telemetry.count("sagestream.client.async_inference.duration", gen_ai__request__model="echo") == 1


def test_a_failed_async_job_ends_its_span_with_the_failure(telemetry: Recorded, emulator: Emulator) -> None:
    async def main() -> None:
        async with sagestream.AsyncClient(
            session_of(emulator),
            endpoint_url=emulator.url,
            config=config(),
            s3_endpoint_url=emulator.s3_endpoint_url,
        ) as client:
            job = await client.invoke_async(
                "echo", input=b"x", input_prefix=PREFIX, custom_attributes="fault=model-error"
            )
            with pytest.raises(sagestream.AsyncInferenceFailedError):
                await job.wait(timeout=30, **FAST)

    asyncio.run(main())
    span, submit = _job_spans(telemetry)
    assert span.attributes["error.type"] == "AsyncInferenceFailedError"
    assert span.status.status_code is StatusCode.ERROR
    assert submit.status.status_code is StatusCode.UNSET
    assert (
        telemetry.count("sagestream.client.async_inference.duration", error__type="AsyncInferenceFailedError")
        == 1
    )


@pytest.fixture
def patched() -> Any:
    sagestream.patch_botocore()
    try:
        yield
    finally:
        sagestream.unpatch_botocore()


@pytest.mark.usefixtures("patched")
def test_the_drop_in_stream_is_one_span(telemetry: Recorded, runtime_client: Any) -> None:
    response = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=BODY, CustomAttributes="tokens=5"
    )
    events = list(response["Body"])
    span = telemetry.one_span()
    a = span.attributes
    assert a["rpc.method"] == "InvokeEndpointWithResponseStream"
    assert a["aws.request_id"] == response["ResponseMetadata"]["RequestId"]
    assert a["sagestream.stream.parts"] == len(events) >= 5
    assert telemetry.count("gen_ai.client.operation.time_per_output_chunk") == len(events) - 1
    # Its start is the call's, not the first loop's.
    assert a["sagestream.stream.time_to_first_chunk"] > 0


@pytest.mark.usefixtures("patched")
def test_drop_in_stream_errors_and_failed_calls(telemetry: Recorded, runtime_client: Any) -> None:
    response = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=BODY, CustomAttributes="tokens=5;fault=model-stream-error;after=2"
    )
    with pytest.raises(sagestream.ModelStreamError):
        list(response["Body"])
    with pytest.raises(runtime_client.exceptions.ModelError):
        runtime_client.invoke_endpoint_with_response_stream(
            EndpointName="demo", Body=BODY, CustomAttributes="fault=model-error"
        )
    stream_span, call_span = telemetry.finished()
    assert stream_span.attributes["error.type"] == "ModelStreamError"
    assert stream_span.attributes["sagestream.stream.parts"] == 2
    assert call_span.attributes["error.type"] == "ModelError"
    assert call_span.attributes["aws.sagemaker.error_code"] == "ModelError"
    assert call_span.attributes["http.response.status_code"] == 424


@pytest.mark.usefixtures("patched")
def test_a_sagestream_client_on_botocores_path_is_traced_once(
    telemetry: Recorded, runtime_client: Any
) -> None:
    runtime_client.meta.events.register("before-call.sagemaker-runtime.*", lambda **_: None)
    client = sagestream.Client.from_boto3(runtime_client)
    try:
        with pytest.warns(sagestream.FallbackWarning):
            assert not client.fast_path
        with client.invoke_stream("demo", BODY, custom_attributes="tokens=3") as stream:
            parts = list(stream)
    finally:
        runtime_client.meta.events.unregister("before-call.sagemaker-runtime.*")
    span = telemetry.one_span()
    assert span.attributes["sagestream.stream.parts"] == len(parts)


def test_integrations_name_the_operation_and_report_usage(telemetry: Recorded, emulator: Emulator) -> None:
    with (
        sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client,
        observe.annotate("chat") as note,
    ):
        assert note is not None
        with client.invoke_stream("demo", BODY, custom_attributes="tokens=3") as stream:
            list(stream)
            note.usage(12, 3)
    span = telemetry.one_span()
    assert span.name == "chat demo"
    assert span.attributes["gen_ai.operation.name"] == "chat"
    assert span.attributes["gen_ai.usage.input_tokens"] == 12
    assert span.attributes["gen_ai.usage.output_tokens"] == 3
    assert telemetry.count("gen_ai.client.token.usage", gen_ai__token__type="input") == 1
    assert telemetry.count("gen_ai.client.token.usage", gen_ai__token__type="output") == 1
    assert telemetry.count("gen_ai.client.operation.duration", gen_ai__operation__name="chat") == 1


def test_annotate_costs_nothing_uninstrumented() -> None:
    with observe.annotate("chat") as note:
        assert note is None
        assert observe.annotation.get() is None


def test_latest_experimental_names_on_opt_in(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sagestream.otel import SageStreamInstrumentor

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    SageStreamInstrumentor().instrument(tracer_provider=provider)
    try:
        with sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client:
            client.invoke("demo", BODY, custom_attributes="tokens=2")
    finally:
        SageStreamInstrumentor().uninstrument()
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.provider.name"] == "aws.sagemaker"
    assert "gen_ai.system" not in span.attributes
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.schema_url in (None, "")


def test_instrument_is_idempotent_and_a_singleton(telemetry: Recorded, emulator: Emulator) -> None:
    from sagestream.otel import SageStreamInstrumentor

    first = SageStreamInstrumentor()
    assert first is SageStreamInstrumentor()
    assert first.is_instrumented_by_opentelemetry
    first.instrument()  # already on: nothing changes
    with sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client:
        client.invoke("demo", BODY, custom_attributes="tokens=2")
    assert len(telemetry.finished()) == 1
    SageStreamInstrumentor().uninstrument()
    assert _observe.watcher is None
    with (
        contextlib.suppress(Exception),
        sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client,
    ):
        client.invoke("demo", BODY, custom_attributes="tokens=2")
    assert len(telemetry.finished()) == 1


def test_invoke_many_is_one_span_per_row(telemetry: Recorded, emulator: Emulator) -> None:
    from sagestream.batch import Request, invoke_many

    async def main() -> list[Any]:
        async with sagestream.AsyncClient(
            session_of(emulator), endpoint_url=emulator.url, config=config()
        ) as client:
            bodies = [Request(BODY, custom_attributes="tokens=3") for _ in range(4)]
            bodies.append(Request(BODY, custom_attributes="fault=model-error"))
            return [result async for result in invoke_many(client, "demo", bodies, max_in_flight=2)]

    results = asyncio.run(main())
    assert sorted(r.error is None for r in results) == [False, True, True, True, True]
    spans = telemetry.finished()
    assert len(spans) == 5
    assert {s.attributes["rpc.method"] for s in spans} == {"InvokeEndpointWithResponseStream"}
    (failed,) = [s for s in spans if s.status.status_code is StatusCode.ERROR]
    assert failed.attributes["error.type"] == "ModelError"
    assert telemetry.count("gen_ai.client.operation.duration", gen_ai__request__model="demo") == 5
    assert telemetry.count("sagestream.client.errors", error__type="ModelError") == 1


def test_chunk_metric_can_be_left_out(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.metrics import NoOpHistogram
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from sagestream.otel import SageStreamInstrumentor

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    SageStreamInstrumentor().instrument(meter_provider=provider, chunk_metric=False)
    walked: list[float] = []
    monkeypatch.setattr(NoOpHistogram, "record", lambda self, amount, *args, **kwargs: walked.append(amount))
    try:
        with (
            sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client,
            client.invoke_stream("demo", BODY, custom_attributes="tokens=200") as stream,
        ):
            assert len(list(stream)) > 64  # more than one batch of gaps reported
    finally:
        SageStreamInstrumentor().uninstrument()
    assert walked == []  # the gaps between parts are not walked when nothing records them
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert "gen_ai.client.operation.time_to_first_chunk" in names
    assert "gen_ai.client.operation.time_per_output_chunk" not in names
    provider.shutdown()
