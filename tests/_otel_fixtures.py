"""OpenTelemetry's SDK with in-memory exporters, and sagestream instrumented into it.

``telemetry`` instruments sagestream for one test with its own tracer and meter providers (an
``InMemorySpanExporter`` and an ``InMemoryMetricReader``) and uninstruments it afterwards;
``Recorded`` reads what was recorded: finished spans by name, metric points by metric name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sagestream.emulator import Emulator
from sagestream.otel import SageStreamInstrumentor

BODY = b'{"inputs": "Tell me about rivers", "parameters": {"max_new_tokens": 40}}'


@dataclass
class Recorded:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def one_span(self) -> ReadableSpan:
        spans = self.finished()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def points(self, name: str) -> list[Any]:
        """Every data point of metric ``name`` (histogram or sum), across scopes."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def metrics(self) -> dict[str, Any]:
        """Metric name -> the metric (its unit, description, points)."""
        data = self.reader.get_metrics_data()
        found: dict[str, Any] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found

    def count(self, name: str, **attributes: Any) -> float:
        """The summed value (counters) or count (histograms) of ``name``'s points matching
        ``attributes`` (dotted names written with ``__`` for ``.``)."""
        wanted = {k.replace("__", "."): v for k, v in attributes.items()}
        total = 0.0
        for point in self.points(name):
            if all(point.attributes.get(k) == v for k, v in wanted.items()):
                total += getattr(point, "value", None) if hasattr(point, "value") else point.count
        return total


@pytest.fixture
def telemetry() -> Iterator[Recorded]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = SageStreamInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Recorded(exporter, reader, tracer_provider, meter_provider)
    finally:
        instrumentor.uninstrument()
        meter_provider.shutdown()
        tracer_provider.shutdown()


def session_of(emulator: Emulator) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
        region_name=emulator.region,
    )


def config(attempts: int = 1, **options: Any) -> Config:
    return Config(retries={"total_max_attempts": attempts, "mode": "standard"}, **options)
