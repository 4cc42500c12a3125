"""End to end as a user runs it: ``opentelemetry-instrument python app.py`` with no code change,
exporting over OTLP/HTTP to a receiver on 127.0.0.1 that decodes the protobuf as a collector does.

The app streams from the emulator and calls InvokeEndpoint; the instrumentor is found by its
``opentelemetry_instrumentor`` entry point and configured by ``opentelemetry-distro`` from the
``OTEL_*`` environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.distro")

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sagestream.emulator import Emulator


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP receiver: the request bodies of /v1/traces and /v1/metrics."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {"/v1/traces": [], "/v1/metrics": []}
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.setdefault(self.path, []).append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


def test_opentelemetry_instrument_exports_spans_and_metrics(
    receiver: Receiver, emulator: Emulator, tmp_path: Path
) -> None:
    command = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    assert command is not None
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            f"""
            import boto3, sagestream
            session = boto3.Session(aws_access_key_id={emulator.access_key_id!r},
                                    aws_secret_access_key={emulator.secret_access_key!r},
                                    region_name={emulator.region!r})
            with sagestream.Client(session, endpoint_url={emulator.url!r}) as client:
                with client.invoke_stream("demo", b'{{"inputs": "Hi"}}', custom_attributes="tokens=4") as s:
                    print(len(list(s)))
                client.invoke("demo", b'{{"inputs": "Hi"}}', custom_attributes="tokens=2")
            """
        )
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "AWS_"))}
    env.update(
        OTEL_SERVICE_NAME="gateway",
        OTEL_TRACES_EXPORTER="otlp_proto_http",
        OTEL_METRICS_EXPORTER="otlp_proto_http",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="threading",
    )
    done = subprocess.run(
        [command, sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr

    spans = []
    for body in receiver.bodies["/v1/traces"]:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            assert _attributes(resource.resource.attributes)["service.name"] == "gateway"
            for scope in resource.scope_spans:
                assert scope.scope.name == "sagestream"
                spans.extend(scope.spans)
    by_method = {_attributes(s.attributes)["rpc.method"]: s for s in spans}
    assert set(by_method) == {"InvokeEndpointWithResponseStream", "InvokeEndpoint"}
    stream = _attributes(by_method["InvokeEndpointWithResponseStream"].attributes)
    assert stream["rpc.system"] == "aws-api"
    assert stream["gen_ai.request.model"] == "demo"
    assert stream["sagestream.stream.parts"] == int(done.stdout.strip())
    assert by_method["InvokeEndpoint"].kind == by_method["InvokeEndpoint"].SPAN_KIND_CLIENT

    names = set()
    for body in receiver.bodies["/v1/metrics"]:
        request = ExportMetricsServiceRequest.FromString(body)
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                names.update(metric.name for metric in scope.metrics)
    assert {
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
        "sagestream.client.attempts",
    } <= names
