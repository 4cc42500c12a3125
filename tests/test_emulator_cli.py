"""``sagestream serve`` as a subprocess, driven by boto3 and by the AWS CLI unchanged."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _emulator_fixtures import ACCESS_KEY, REGION, SECRET_KEY, Served, start_serve, stop_serve
from sagestream.emulator import demo_tokens


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    s = start_serve("--endpoint", "chat=demo", "--endpoint", "mirror=echo")
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.communicate()


def test_serve_prints_and_serves(served: Served) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    assert any("endpoint chat -> demo" in line for line in served.banner)
    client = served.client()
    resp = client.invoke_endpoint_with_response_stream(EndpointName="mirror", Body=b"abc" * 5000)
    assert b"".join(e["PayloadPart"]["Bytes"] for e in resp["Body"]) == b"abc" * 5000
    with pytest.raises(client.exceptions.ValidationError):
        client.invoke_endpoint(EndpointName="other", Body=b"x")


@pytest.fixture
def aws_env(tmp_path: Path) -> dict[str, str]:
    if shutil.which("aws") is None:
        pytest.skip("the AWS CLI is not installed")
    config = tmp_path / "config"
    config.write_text(f"[default]\nregion = {REGION}\n")
    credentials = tmp_path / "credentials"
    credentials.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def _aws(env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = subprocess.run(["aws", *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_aws_cli_invoke_endpoint(served: Served, aws_env: dict[str, str], tmp_path: Path) -> None:
    body = tmp_path / "in.json"
    body.write_text(json.dumps({"inputs": "cli", "parameters": {"max_new_tokens": 6}}))
    out = tmp_path / "out.json"
    meta = _aws(
        aws_env,
        "sagemaker-runtime",
        "invoke-endpoint",
        "--endpoint-name",
        "chat",
        "--body",
        f"fileb://{body}",
        "--content-type",
        "application/json",
        "--custom-attributes",
        "trace=cli;echo_attributes=1",
        "--endpoint-url",
        served.url,
        str(out),
    )
    assert meta["ContentType"] == "application/json"
    assert meta["InvokedProductionVariant"] == "AllTraffic"
    assert meta["CustomAttributes"] == "trace=cli;echo_attributes=1"
    assert json.loads(out.read_text()) == [{"generated_text": "".join(demo_tokens("cli", 6))}]


def test_aws_cli_invoke_endpoint_async(served: Served, aws_env: dict[str, str]) -> None:
    s3 = served.client("s3")
    s3.create_bucket(Bucket="cli-inputs", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="cli-inputs", Key="in.bin", Body=b"payload for the cli")
    meta = _aws(
        aws_env,
        "sagemaker-runtime",
        "invoke-endpoint-async",
        "--endpoint-name",
        "mirror",
        "--input-location",
        "s3://cli-inputs/in.bin",
        "--content-type",
        "application/octet-stream",
        "--endpoint-url",
        served.url,
    )
    assert meta["OutputLocation"] == f"s3://sagestream-async/output/{meta['InferenceId']}.out"
    key = meta["OutputLocation"].split("/", 3)[3]
    deadline = time.monotonic() + 15
    while True:
        try:
            data = s3.get_object(Bucket="sagestream-async", Key=key)["Body"].read()
            break
        except s3.exceptions.NoSuchKey:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert data == b"payload for the cli"


def test_aws_cli_sees_service_errors(served: Served, aws_env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            "aws",
            "sagemaker-runtime",
            "invoke-endpoint",
            "--endpoint-name",
            "chat",
            "--body",
            "x",
            "--custom-attributes",
            "fault=model-error;status=400;message=nope",
            "--endpoint-url",
            served.url,
            str(tmp_path / "o"),
        ],
        env=aws_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "ModelError" in proc.stderr
    assert "nope" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signals(sig: int) -> None:
    served = start_serve()
    client = served.client()
    resp = client.invoke_endpoint(EndpointName="anything-goes", Body=b"x")
    assert resp["Body"].read()
    code, out, err = stop_serve(served, sig)
    assert code == 0, err
    assert "stopping" in out
    # One log line per request.
    assert '"POST /endpoints/anything-goes/invocations" 200' in err
    assert "Traceback" not in err


def test_endpoint_with_a_default_format() -> None:
    served = start_serve("--endpoint", "events=demo:sse")
    try:
        assert any("endpoint events -> demo:sse" in line for line in served.banner)
        resp = served.client().invoke_endpoint_with_response_stream(
            EndpointName="events", Body=b"hi", CustomAttributes="tokens=3"
        )
        assert resp["ContentType"] == "text/event-stream"
        parts = [e["PayloadPart"]["Bytes"] for e in resp["Body"]]
        assert [json.loads(p[len(b"data: ") :])["token"]["text"] for p in parts] == demo_tokens(
            "hi", tokens=3
        )
    finally:
        stop_serve(served)


def test_unknown_model_spec_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sagestream", "serve", "--endpoint", "x=demo:xml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "demo:FORMAT" in proc.stderr
    assert "Traceback" not in proc.stderr
