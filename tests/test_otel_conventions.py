"""sagestream.otel's names against the conventions' registry, and what it costs while off.

The names live as strings in ``sagestream.otel._conventions`` (the ``otel`` extra needs only
``opentelemetry-api``); here each is checked against the constant the
``opentelemetry-semantic-conventions`` package has for it, and the instruments' units against
the GenAI conventions'.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from typing import Any

import pytest
import sagestream
from _otel_fixtures import BODY, Recorded, config, session_of, telemetry
from opentelemetry.semconv._incubating.attributes import (
    aws_attributes,
    gen_ai_attributes,
    rpc_attributes,
)
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes, http_attributes, server_attributes
from sagestream.emulator import Emulator
from sagestream.otel import SageStreamInstrumentor
from sagestream.otel import _conventions as c

__all__ = ["telemetry"]

#: Each of our names, and the module and name of the package's constant for it.
REGISTRY = [
    (c.GEN_AI_OPERATION_NAME, gen_ai_attributes, "GEN_AI_OPERATION_NAME"),
    (c.GEN_AI_SYSTEM, gen_ai_attributes, "GEN_AI_SYSTEM"),
    (c.GEN_AI_PROVIDER_NAME, gen_ai_attributes, "GEN_AI_PROVIDER_NAME"),
    (c.GEN_AI_REQUEST_MODEL, gen_ai_attributes, "GEN_AI_REQUEST_MODEL"),
    (c.GEN_AI_TOKEN_TYPE, gen_ai_attributes, "GEN_AI_TOKEN_TYPE"),
    (c.GEN_AI_USAGE_INPUT_TOKENS, gen_ai_attributes, "GEN_AI_USAGE_INPUT_TOKENS"),
    (c.GEN_AI_USAGE_OUTPUT_TOKENS, gen_ai_attributes, "GEN_AI_USAGE_OUTPUT_TOKENS"),
    (c.GEN_AI_CLIENT_OPERATION_DURATION, gen_ai_metrics, "GEN_AI_CLIENT_OPERATION_DURATION"),
    (c.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK, gen_ai_metrics, "GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK"),
    (c.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK, gen_ai_metrics, "GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK"),
    (c.GEN_AI_CLIENT_TOKEN_USAGE, gen_ai_metrics, "GEN_AI_CLIENT_TOKEN_USAGE"),
    (c.RPC_SYSTEM, rpc_attributes, "RPC_SYSTEM"),
    (c.RPC_SERVICE, rpc_attributes, "RPC_SERVICE"),
    (c.RPC_METHOD, rpc_attributes, "RPC_METHOD"),
    (c.AWS_REQUEST_ID, aws_attributes, "AWS_REQUEST_ID"),
    (c.SERVER_ADDRESS, server_attributes, "SERVER_ADDRESS"),
    (c.SERVER_PORT, server_attributes, "SERVER_PORT"),
    (c.ERROR_TYPE, error_attributes, "ERROR_TYPE"),
    (c.HTTP_RESPONSE_STATUS_CODE, http_attributes, "HTTP_RESPONSE_STATUS_CODE"),
]


@pytest.mark.parametrize(("ours", "module", "constant"), REGISTRY, ids=[name for name, _, _ in REGISTRY])
def test_names_are_the_registrys(ours: str, module: Any, constant: str) -> None:
    registry = getattr(module, constant, None)
    if registry is None:
        pytest.skip(f"this opentelemetry-semantic-conventions has no {constant}")
    assert ours == registry


def test_operation_names_are_well_known_values() -> None:
    values = {v.value for v in gen_ai_attributes.GenAiOperationNameValues}
    assert {c.OPERATION_GENERATE_CONTENT, c.OPERATION_CHAT, c.OPERATION_TEXT_COMPLETION} <= values


def test_metrics_have_the_conventions_units(telemetry: Recorded, emulator: Emulator) -> None:
    with (
        sagestream.Client(session_of(emulator), endpoint_url=emulator.url, config=config()) as client,
        client.invoke_stream("demo", BODY, custom_attributes="tokens=3") as stream,
    ):
        list(stream)
    found = telemetry.metrics()
    for name in (
        c.GEN_AI_CLIENT_OPERATION_DURATION,
        c.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK,
        c.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK,
    ):
        assert found[name].unit == "s"
    for point in telemetry.points(c.GEN_AI_CLIENT_OPERATION_DURATION):
        assert list(point.explicit_bounds) == list(c.BUCKETS_SECONDS)
        # Per endpoint: the metrics' dimensions name the endpoint and the operation.
        assert point.attributes[c.GEN_AI_REQUEST_MODEL] == "demo"
        assert point.attributes[c.RPC_METHOD] == "InvokeEndpointWithResponseStream"


def test_the_entry_point_names_the_instrumentor() -> None:
    (found,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "sagestream"]
    assert found.load() is SageStreamInstrumentor


def test_stability_opt_in_is_read_as_a_list() -> None:
    assert not c.mode_from_environment({}).latest
    assert not c.mode_from_environment({c.STABILITY_ENV: "http,database"}).latest
    assert c.mode_from_environment({c.STABILITY_ENV: " http , gen_ai_latest_experimental"}).latest
    assert not c.content_from_environment({})
    assert c.content_from_environment({c.CONTENT_ENV: "SPAN_ONLY"})
    assert not c.content_from_environment({c.CONTENT_ENV: "event_only"})


def test_while_off_nothing_of_opentelemetry_is_imported_or_run(emulator: Emulator) -> None:
    """Uninstrumented, a process that imports sagestream and calls both operations loads no
    OpenTelemetry module, and each call's stream reads the Rust iterator directly."""
    code = textwrap.dedent(
        f"""
        import sys, boto3, sagestream
        from botocore.config import Config
        session = boto3.Session(aws_access_key_id={emulator.access_key_id!r},
                                aws_secret_access_key={emulator.secret_access_key!r},
                                region_name={emulator.region!r})
        with sagestream.Client(session, endpoint_url={emulator.url!r}, config=Config()) as client:
            client.invoke("demo", b'{{"inputs": "Hi"}}', custom_attributes="tokens=2")
            with client.invoke_stream("demo", b'{{"inputs": "Hi"}}', custom_attributes="tokens=2") as s:
                assert type(s._parts).__module__ == "sagestream._core", type(s._parts)
                list(s)
        loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "sagestream.otel")))
        assert not loaded, loaded
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _sent_headers(instrumented: bool, tracer_provider: Any = None) -> tuple[dict[str, str], dict[str, str]]:
    """The headers of one InvokeEndpoint on sagestream's client and on boto3's, inside an
    application span (the span of a request the app is serving)."""
    import boto3
    from _raw_server import RawServer, Response
    from opentelemetry import trace

    answer = Response(headers={"Content-Type": "application/json", "x-amzn-RequestId": "r"},
                      writes=[b"{}"], chunked=False, content_length=2)  # fmt: skip
    session = boto3.Session(aws_access_key_id="AKID", aws_secret_access_key="secret", region_name="us-east-1")
    tracer = trace.get_tracer("app", tracer_provider=tracer_provider)
    with RawServer(lambda request: answer) as server, tracer.start_as_current_span("request"):
        if instrumented:
            SageStreamInstrumentor().instrument(tracer_provider=tracer_provider)
        try:
            with sagestream.Client(session, endpoint_url=server.url, config=config()) as client:
                client.invoke("demo", b"{}")
            session.client("sagemaker-runtime", endpoint_url=server.url).invoke_endpoint(
                EndpointName="demo", Body=b"{}"
            )
        finally:
            SageStreamInstrumentor().uninstrument()
        ours, botocores = server.requests
    return ours.headers, botocores.headers


TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.mark.parametrize("lambda_", [False, True], ids=["outside Lambda", "in Lambda"])
def test_the_trace_header_is_sent_as_botocore_sends_it(
    lambda_: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    if lambda_:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "gateway")
    else:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    provider = TracerProvider()
    plain, _ = _sent_headers(False, provider)
    ours, botocores = _sent_headers(True, provider)
    provider.shutdown()
    # Instrumented or not, the same headers are sent (no traceparent, nothing new)...
    assert "traceparent" not in ours
    assert set(ours) == set(plain)
    # ...and the X-Ray header exactly when botocore sends it: in Lambda, the environment's.
    assert ours.get("x-amzn-trace-id") == botocores.get("x-amzn-trace-id")
    assert ("x-amzn-trace-id" in ours) is lambda_
