"""SageMakerStream's spans, from Ray's worker processes: one per row.

The instrumentation is turned on in every worker by Ray's ``worker_process_setup_hook``, as
docs/observability.md says to; each worker's spans are written, as JSON lines, to a file of
its own that the test reads back.
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

ENDPOINT = "ray-traced"


def _setup_hook(folder: str) -> Any:
    """The hook each Ray worker runs at its start: sagestream instrumented into a tracer
    provider that writes every span, as one JSON line, to a file of this process."""

    def setup() -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
        from sagestream.otel import SageStreamInstrumentor

        out = open(os.path.join(folder, f"spans-{os.getpid()}.jsonl"), "a")  # noqa: SIM115
        exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        SageStreamInstrumentor().instrument(tracer_provider=provider)

    return setup


@pytest.fixture(scope="module")
def spans_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray-spans")


@pytest.fixture(scope="module")
def traced_cluster(spans_folder: Path) -> Iterator[None]:
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"worker_process_setup_hook": _setup_hook(str(spans_folder))},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def _spans(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for path in folder.glob("spans-*.jsonl") for line in path.read_text().splitlines()
    ]


def test_every_row_is_one_span_from_the_actors(traced_cluster: None, spans_folder: Path) -> None:
    rows = 24
    with Emulator(host="127.0.0.1", port=0, endpoints={ENDPOINT: "echo"}, token_delay=0.0) as emu:
        items = [
            {
                "id": i,
                "body": f"row-{i:03d}".encode() * 5,
                "custom_attributes": "fault=model-error" if i % 8 == 3 else "",
            }
            for i in range(rows)
        ]
        ds = ray.data.from_items(items).map_batches(
            sagestream.ray.SageMakerStream,
            fn_constructor_kwargs=dict(
                endpoint_name=ENDPOINT,
                max_in_flight=4,
                endpoint_url=emu.url,
                region_name=emu.region,
                aws_access_key_id=emu.access_key_id,
                aws_secret_access_key=emu.secret_access_key,
                config=Config(retries={"total_max_attempts": 1}),
            ),
            batch_size=6,
            concurrency=2,
            num_cpus=0.5,
        )
        out = ds.take_all()
    assert sagestream.ray.close_endpoint(ENDPOINT)
    assert sorted(row["id"] for row in out) == list(range(rows))
    spans = [s for s in _spans(spans_folder) if s["attributes"].get("gen_ai.request.model") == ENDPOINT]
    assert len(spans) == rows
    assert {s["kind"] for s in spans} == {"SpanKind.CLIENT"}
    assert {s["name"] for s in spans} == {f"generate_content {ENDPOINT}"}
    assert {s["attributes"]["rpc.method"] for s in spans} == {"InvokeEndpointWithResponseStream"}
    failed = [s for s in spans if s["status"]["status_code"] == "ERROR"]
    assert len(failed) == sum(1 for row in out if row["error"] is not None) == rows // 8
    assert {s["attributes"]["error.type"] for s in failed} == {"ModelError"}
    by_parts = sorted(s["attributes"].get("sagestream.stream.parts", 0) for s in spans if s not in failed)
    assert by_parts == sorted(row["parts"] for row in out if row["error"] is None)
    # From the actors' processes, not the driver's.
    assert os.getpid() not in {int(p.stem.split("-")[1]) for p in spans_folder.glob("spans-*.jsonl")}
