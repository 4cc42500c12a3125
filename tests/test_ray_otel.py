"""SageMakerStream's spans, from Ray's worker processes: one per row; and its rows in Ray's
own metrics (``ray_metrics=True``).

The instrumentation is turned on in every worker by Ray's ``worker_process_setup_hook``, as
docs/observability.md says to; each worker's spans are written, as JSON lines, to a file of
its own that the test reads back. The same hook has ``ray.util.metrics``' Counter and Histogram
also write what they are given to such a file (Ray's own export, its Prometheus endpoint, needs
``ray[default]``), so the test reads what the actors recorded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import sagestream.ray  # noqa: E402
from botocore.config import Config  # noqa: E402
from sagestream.emulator import Emulator  # noqa: E402

pytestmark = [
    pytest.mark.timeout(900),  # a hang guard (see test_ray.py)
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

TRACED = "ray-traced"
MEASURED = "ray-measured"


def _setup_hook(folder: str) -> Any:
    """The hook each Ray worker runs at its start: sagestream instrumented into a tracer
    provider that writes every span, as one JSON line, to a file of this process; and Ray's
    Counter and Histogram writing what they record to another."""

    def setup() -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
        from ray.util import metrics
        from sagestream.otel import SageStreamInstrumentor

        def written(name: str, value: float, default: dict[str, str], tags: dict[str, str] | None) -> None:
            line = json.dumps({"name": name, "value": value, "tags": {**default, **(tags or {})}})
            with open(os.path.join(folder, f"metrics-{os.getpid()}.jsonl"), "a") as out:
                out.write(line + "\n")

        class Counter(metrics.Counter):
            def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
                super().inc(value, tags)
                written(self._name, value, self._default_tags, tags)

        class Histogram(metrics.Histogram):
            def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
                super().observe(value, tags)
                written(self._name, value, self._default_tags, tags)

        metrics.Counter = Counter  # type: ignore[misc]
        metrics.Histogram = Histogram  # type: ignore[misc]

        out = open(os.path.join(folder, f"spans-{os.getpid()}.jsonl"), "a")  # noqa: SIM115
        exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        SageStreamInstrumentor().instrument(tracer_provider=provider)

    return setup


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray-signals")


@pytest.fixture(scope="module")
def traced_cluster(folder: Path) -> Iterator[None]:
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"worker_process_setup_hook": _setup_hook(str(folder))},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def _lines(folder: Path, kind: str, endpoint: str) -> list[dict[str, Any]]:
    """What the workers wrote of ``kind`` (spans, metrics) about ``endpoint``."""
    found = [
        json.loads(line) for path in folder.glob(f"{kind}-*.jsonl") for line in path.read_text().splitlines()
    ]
    key = "attributes" if kind == "spans" else "tags"
    return [
        item
        for item in found
        if endpoint in (item[key].get("gen_ai.request.model"), item[key].get("endpoint"))
    ]


def _run(endpoint: str, rows: int, **options: Any) -> list[dict[str, Any]]:
    """``rows`` rows through SageMakerStream on ``endpoint`` (every 8th failing): the rows."""
    items = [
        {
            "id": i,
            "body": f"row-{i:03d}".encode() * 5,
            "custom_attributes": "fault=model-error" if i % 8 == 3 else "",
        }
        for i in range(rows)
    ]
    with Emulator(host="127.0.0.1", port=0, endpoints={endpoint: "echo"}, token_delay=0.0) as emu:
        ds = ray.data.from_items(items).map_batches(
            sagestream.ray.SageMakerStream,
            fn_constructor_kwargs=dict(
                endpoint_name=endpoint,
                max_in_flight=4,
                endpoint_url=emu.url,
                region_name=emu.region,
                aws_access_key_id=emu.access_key_id,
                aws_secret_access_key=emu.secret_access_key,
                config=Config(retries={"total_max_attempts": 1}),
                **options,
            ),
            batch_size=6,
            concurrency=2,
            num_cpus=0.5,
        )
        out = ds.take_all()
    assert sagestream.ray.close_endpoint(endpoint)
    assert sorted(row["id"] for row in out) == list(range(rows))
    return out


def test_every_row_is_one_span_from_the_actors(traced_cluster: None, folder: Path) -> None:
    rows = 24
    out = _run(TRACED, rows)
    spans = _lines(folder, "spans", TRACED)
    assert len(spans) == rows
    assert {s["kind"] for s in spans} == {"SpanKind.CLIENT"}
    assert {s["name"] for s in spans} == {f"generate_content {TRACED}"}
    assert {s["attributes"]["rpc.method"] for s in spans} == {"InvokeEndpointWithResponseStream"}
    failed = [s for s in spans if s["status"]["status_code"] == "ERROR"]
    assert len(failed) == sum(1 for row in out if row["error"] is not None) == rows // 8
    assert {s["attributes"]["error.type"] for s in failed} == {"ModelError"}
    by_parts = sorted(s["attributes"].get("sagestream.stream.parts", 0) for s in spans if s not in failed)
    assert by_parts == sorted(row["parts"] for row in out if row["error"] is None)
    # From the actors' processes, not the driver's.
    assert os.getpid() not in {int(p.stem.split("-")[1]) for p in folder.glob("spans-*.jsonl")}
    # Ray's metrics only on request.
    assert _lines(folder, "metrics", TRACED) == []


def test_ray_metrics_count_every_row_on_request(traced_cluster: None, folder: Path) -> None:
    rows = 16
    out = _run(MEASURED, rows, ray_metrics=True)
    recorded = _lines(folder, "metrics", MEASURED)

    def values(name: str, **tags: str) -> list[float]:
        return [m["value"] for m in recorded if m["name"] == name and tags.items() <= m["tags"].items()]

    done = [row for row in out if row["error"] is None]
    assert sum(values("sagestream_rows", outcome="done")) == len(done)
    assert sum(values("sagestream_rows", outcome="failed", error_type="ModelError")) == rows - len(done) == 2
    assert sum(values("sagestream_attempts")) == sum(row["attempts"] for row in out) == rows
    assert sum(values("sagestream_parts")) == sum(row["parts"] or 0 for row in out)
    first_parts = [row["time_to_first_part"] for row in out if row["time_to_first_part"] is not None]
    assert sorted(values("sagestream_time_to_first_part_seconds")) == sorted(first_parts)
    assert sorted(values("sagestream_row_duration_seconds")) == sorted(row["duration"] for row in out)
