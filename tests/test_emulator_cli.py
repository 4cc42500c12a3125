"""``sagestream serve`` as a subprocess, driven by boto3 and by the AWS CLI unchanged."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _emulator_fixtures import ACCESS_KEY, REGION, SECRET_KEY, Served, s3_object, start_serve, stop_serve
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
    assert s3_object(s3, meta["OutputLocation"]) == b"payload for the cli"


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


def _free_ports(n: int) -> list[int]:
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
    try:
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _exports(served: Served) -> list[str]:
    """The banner's export lines (the last one names the S3 URL)."""
    assert served.proc.stdout is not None
    lines: list[str] = []
    while not (lines and lines[-1].startswith("export AWS_ENDPOINT_URL_S3=")):
        line = served.proc.stdout.readline()
        assert line, lines
        if line.startswith("export "):
            lines.append(line.rstrip("\n"))
    return lines


def _print_env(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sagestream", "serve", *args, "--print-env"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_print_env_matches_the_banner_and_the_s3_port_holds_across_starts() -> None:
    """`eval "$(sagestream serve --print-env)"` sets what the banner prints for the same options:
    credentials, region and the three endpoint URLs, the S3 one on a fixed port."""
    port, duplex_port, s3_port = _free_ports(3)
    options = ["--port", str(port), "--duplex-port", str(duplex_port), "--s3-port", str(s3_port)]
    options += ["--no-duplex-tls", "--region", REGION, "--access-key-id", ACCESS_KEY]
    options += ["--secret-access-key", SECRET_KEY]
    printed = _print_env(*options)
    assert printed.returncode == 0, printed.stderr
    env = dict(line.removeprefix("export ").split("=", 1) for line in printed.stdout.splitlines())
    assert env == {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://127.0.0.1:{port}",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2": f"http://127.0.0.1:{duplex_port}",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3_port}",
    }
    for _ in range(2):  # the same URLs on every start
        served = start_serve(*options)
        try:
            assert _exports(served) == printed.stdout.splitlines()
            assert served.s3_url == env["AWS_ENDPOINT_URL_S3"]
            buckets = [b["Name"] for b in served.client("s3").list_buckets()["Buckets"]]
            assert "sagestream-examples" in buckets  # the documentation's examples use it
        finally:
            code, _, err = stop_serve(served)
        assert code == 0, err


def test_print_env_needs_fixed_ports_and_names_an_external_s3() -> None:
    done = _print_env("--port", "0")
    assert done.returncode == 2
    assert "fixed ports" in done.stderr
    assert done.stdout == ""
    done = _print_env("--s3-endpoint-url", "http://s3.example:9000", "--secret-access-key", "a b'c")
    assert done.returncode == 0, done.stderr
    assert "export AWS_ENDPOINT_URL_S3=http://s3.example:9000" in done.stdout.splitlines()
    shell = subprocess.run(
        ["sh", "-c", 'eval "$1" && printf %s "$AWS_SECRET_ACCESS_KEY"', "sh", done.stdout],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == "a b'c"  # quoted for the shell


def test_a_taken_s3_port_stops_serve_with_a_message() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "sagestream", "serve", "--port", "0", "--s3-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"S3 on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
