"""The names ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` switches to, on the
metrics as on the spans, against the ``opentelemetry-semantic-conventions`` package.

By default the metrics speak v1.36.0 of the GenAI conventions (``gen_ai.system``, its schema
URL); opted in, the latest (``gen_ai.provider.name``, no schema URL) and never the old name.
"""

from __future__ import annotations

from typing import Any

import pytest
import sagestream
from _otel_fixtures import BODY, Recorded, config, session_of, telemetry
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from sagestream import observe
from sagestream.emulator import Emulator

__all__ = ["telemetry"]

#: The GenAI metric names the package has, and ours beyond them.
GEN_AI_METRICS = {getattr(gen_ai_metrics, name) for name in dir(gen_ai_metrics) if name.startswith("GEN_AI_")}
OURS = {
    "sagestream.client.attempts",
    "sagestream.client.retries",
    "sagestream.client.errors",
    "sagestream.client.async_inference.duration",
}


@pytest.fixture(params=["default", "latest"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Recorded]:
    """Instrumented (the ``telemetry`` fixture) with the opt-in set or not beforehand."""
    if request.param == "latest":
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,gen_ai_latest_experimental")
    else:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    return request.param, request.getfixturevalue("telemetry")


def _calls(emulator: Emulator) -> None:
    """A stream with usage reported, and a failed stream."""
    with sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client:
        with (
            observe.annotate("chat") as note,
            client.invoke_stream("demo", BODY, custom_attributes="tokens=4") as s,
        ):
            list(s)
            assert note is not None
            note.usage(7, 4)
        with pytest.raises(sagestream.ModelError):
            client.invoke_stream("demo", BODY, custom_attributes="fault=model-error")


def _scopes(recorded: Recorded) -> list[Any]:
    data = recorded.reader.get_metrics_data()
    assert data is not None
    return [scope for resource in data.resource_metrics for scope in resource.scope_metrics]


def test_every_metric_speaks_the_chosen_version(mode: tuple[str, Recorded], emulator: Emulator) -> None:
    name, recorded = mode
    _calls(emulator)
    latest = name == "latest"
    provider_key = gen_ai_attributes.GEN_AI_PROVIDER_NAME if latest else gen_ai_attributes.GEN_AI_SYSTEM
    other_key = gen_ai_attributes.GEN_AI_SYSTEM if latest else gen_ai_attributes.GEN_AI_PROVIDER_NAME
    (scope,) = [s for s in _scopes(recorded) if s.scope.name == "sagestream"]
    assert scope.schema_url in ((None, "") if latest else ("https://opentelemetry.io/schemas/1.36.0",))
    names = {metric.name for metric in scope.metrics}
    assert {
        gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION,
        gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
        gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK,
        gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE,
    } <= names
    assert names <= GEN_AI_METRICS | OURS
    token_types = {v.value for v in gen_ai_attributes.GenAiTokenTypeValues}
    operations = {v.value for v in gen_ai_attributes.GenAiOperationNameValues}
    for metric in scope.metrics:
        for point in metric.data.data_points:
            a = point.attributes
            assert a[provider_key] == "aws.sagemaker", metric.name
            assert other_key not in a, metric.name
            assert a[gen_ai_attributes.GEN_AI_OPERATION_NAME] in operations
            assert a[gen_ai_attributes.GEN_AI_REQUEST_MODEL] == "demo"
            assert a[server_attributes.SERVER_ADDRESS] == "127.0.0.1"
            assert isinstance(a[server_attributes.SERVER_PORT], int)
            if metric.name == gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE:
                assert a[gen_ai_attributes.GEN_AI_TOKEN_TYPE] in token_types
            if error_attributes.ERROR_TYPE in a:
                assert a[error_attributes.ERROR_TYPE] == "ModelError"
    failed = recorded.count(gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION, error__type="ModelError")
    assert failed == 1


def test_the_spans_follow_the_same_choice(mode: tuple[str, Recorded], emulator: Emulator) -> None:
    name, recorded = mode
    _calls(emulator)
    latest = name == "latest"
    for span in recorded.finished():
        a = span.attributes
        assert a is not None
        assert (gen_ai_attributes.GEN_AI_PROVIDER_NAME in a) is latest
        assert (gen_ai_attributes.GEN_AI_SYSTEM in a) is not latest
        assert a[gen_ai_attributes.GEN_AI_OPERATION_NAME] in {"chat", "generate_content"}
        assert span.instrumentation_scope is not None
        assert bool(span.instrumentation_scope.schema_url) is not latest
