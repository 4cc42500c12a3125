"""The cost of being observed: the paced asyncio gateway with ``sagestream.otel`` on and off.

The loopback server and the client of ``bench_aio.py`` (N concurrent
InvokeEndpointWithResponseStream calls, P paced parts of ~100 bytes each, the server in another
process so ``time.process_time()`` here is the client's CPU alone), measured in rounds that
alternate between the uninstrumented client and the same client after
``SageStreamInstrumentor().instrument()`` into the OpenTelemetry SDK: a ``TracerProvider`` whose
``BatchSpanProcessor`` hands the spans to an exporter that drops them, and a ``MeterProvider``
aggregating every metric (read once at the end of each round, as an exporter would). The
difference is what the spans, span events and histogram records cost per part. A third row
leaves out ``gen_ai.client.operation.time_per_output_chunk`` (``instrument(chunk_metric=False)``):
the one histogram record per part the conventions ask for, whose cost is the SDK's.

    python benches/bench_otel.py [--streams 100] [--parts 200] [--rounds 5] [--interval 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any

import _builds
from bench_aio import PART, loopback, run_sagestream


def _providers() -> tuple[Any, Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
    reader = InMemoryMetricReader()
    return tracer_provider, MeterProvider(metric_readers=[reader]), reader


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--parts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.01)
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print(f"# load average at the start: {f.read().strip()}")
    from sagestream.otel import SageStreamInstrumentor

    instrumentor = SageStreamInstrumentor()
    every, lean = _providers(), _providers()
    try:
        with loopback(args.parts, args.interval) as url:
            _compare(args, url, instrumentor, every, lean)
    finally:
        for tracer_provider, meter_provider, _ in (every, lean):
            meter_provider.shutdown()
            tracer_provider.shutdown()
        with open("/proc/loadavg") as f:
            print(f"# load average at the end: {f.read().strip()}")
    return 0


def _compare(args: argparse.Namespace, url: str, instrumentor: Any, every: Any, lean: Any) -> None:
    """The rounds and the table."""
    total_parts = args.streams * args.parts
    expected = total_parts * len(PART)

    def off() -> tuple[float, float, int]:
        return asyncio.run(run_sagestream(url, args.streams, args.parts))

    def on(providers: tuple[Any, Any, Any], chunk_metric: bool) -> tuple[float, float, int]:
        tracer_provider, meter_provider, reader = providers
        instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider, chunk_metric=chunk_metric
        )
        try:
            return asyncio.run(run_sagestream(url, args.streams, args.parts))
        finally:
            instrumentor.uninstrument()
            tracer_provider.force_flush()
            reader.get_metrics_data()

    runners: dict[str, Callable[[], tuple[float, float, int]]] = {
        "instrumentation off": off,
        "instrumentation on": functools.partial(on, every, True),
        "on, chunk_metric=False": functools.partial(on, lean, False),
    }
    for runner in runners.values():  # warm-up: imports, connections, the SDK's first span
        runner()
    results = _builds.rounds(runners, args.rounds, expected)
    print(
        f"# {args.streams} concurrent streams x {args.parts} parts of {len(PART)} B,"
        f" interval {args.interval * 1000:g} ms, {args.rounds} rounds, medians;"
        f" python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print("| client | CPU µs / part | total time s | CPU vs off |")
    print("|---|---:|---:|---:|")
    base = statistics.median(c for c, _ in results["instrumentation off"]) / total_parts
    for name in runners:
        cpu = statistics.median(c for c, _ in results[name]) / total_parts
        wall = statistics.median(w for _, w in results[name])
        ratio = (
            "baseline"
            if cpu == base
            else f"{(cpu - base) / base * 100:+.0f} % ({(cpu - base) * 1e6:+.2f} µs / part)"
        )
        print(f"| sagestream, {name} | {cpu * 1e6:.2f} | {wall:.2f} | {ratio} |")


if __name__ == "__main__":
    raise SystemExit(main())
