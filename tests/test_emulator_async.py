"""InvokeEndpointAsync end to end through S3, with stock boto3."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sagestream.emulator import Emulator, demo_tokens

INPUT_BUCKET = "sagestream-test-inputs"


def _split(uri: str) -> tuple[str, str]:
    assert uri.startswith("s3://")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _upload(s3_client: Any, data: bytes) -> str:
    try:
        s3_client.create_bucket(Bucket=INPUT_BUCKET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    key = f"in/{uuid.uuid4()}.json"
    s3_client.put_object(Bucket=INPUT_BUCKET, Key=key, Body=data)
    return f"s3://{INPUT_BUCKET}/{key}"


def _wait(s3_client: Any, resp: dict[str, Any], timeout: float = 15.0) -> tuple[str, bytes, str]:
    """Poll both locations; returns ("output" | "failure", body, content type)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kind, uri in (("output", resp["OutputLocation"]), ("failure", resp["FailureLocation"])):
            bucket, key = _split(uri)
            try:
                obj = s3_client.get_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                    continue
                raise
            return kind, obj["Body"].read(), obj["ContentType"]
        time.sleep(0.05)
    raise AssertionError("no async result in time")


def test_demo_end_to_end(runtime_client: Any, s3_client: Any) -> None:
    location = _upload(
        s3_client, json.dumps({"inputs": "async prompt", "parameters": {"max_new_tokens": 9}}).encode()
    )
    resp = runtime_client.invoke_endpoint_async(
        EndpointName="demo", InputLocation=location, ContentType="application/json"
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 202
    inference_id = resp["InferenceId"]
    assert resp["OutputLocation"] == f"s3://sagestream-async/output/{inference_id}.out"
    assert resp["FailureLocation"] == f"s3://sagestream-async/failure/{inference_id}-error.out"
    kind, body, content_type = _wait(s3_client, resp)
    assert kind == "output"
    assert content_type == "application/json"
    assert json.loads(body) == [{"generated_text": "".join(demo_tokens("async prompt", 9))}]


def test_echo_with_extension_filename_and_inference_id(runtime_client: Any, s3_client: Any) -> None:
    members = runtime_client.meta.service_model.operation_model("InvokeEndpointAsync").input_shape.members
    if "Filename" not in members:
        pytest.skip("this botocore's model predates Filename and S3OutputPathExtension (< 1.42.54)")
    payload = bytes(range(256)) * 100
    location = _upload(s3_client, payload)
    resp = runtime_client.invoke_endpoint_async(
        EndpointName="echo",
        InputLocation=location,
        ContentType="application/x-bin",
        InferenceId="my-inference-1",
        S3OutputPathExtension="team/run-7",
        Filename="result.bin",
    )
    assert resp["InferenceId"] == "my-inference-1"
    assert resp["OutputLocation"] == "s3://sagestream-async/output/team/run-7/result.bin"
    assert resp["FailureLocation"] == "s3://sagestream-async/failure/team/run-7/my-inference-1-error.out"
    kind, body, content_type = _wait(s3_client, resp)
    assert (kind, body, content_type) == ("output", payload, "application/x-bin")


def _model_has_inline_bodies(client: Any) -> bool:
    model = client.meta.service_model.operation_model("InvokeEndpointAsync")
    return "Body" in model.input_shape.members


def test_inline_body_end_to_end(runtime_client: Any, s3_client: Any) -> None:
    """InvokeEndpointAsync with the input in the request (2026), as stock boto3 sends it."""
    if not _model_has_inline_bodies(runtime_client):
        pytest.skip("this botocore's model predates inline async bodies (botocore < 1.43.117)")
    payload = b'{"x": 1}'
    resp = runtime_client.invoke_endpoint_async(
        EndpointName="echo", Body=payload, ContentType="application/json"
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert _wait(s3_client, resp) == ("output", payload, "application/json")


@pytest.mark.parametrize("given", ["both", "neither"])
def test_inline_body_or_location_exactly_one(runtime_client: Any, given: str) -> None:
    if not _model_has_inline_bodies(runtime_client):
        pytest.skip("this botocore's model predates inline async bodies (botocore < 1.43.117)")
    params: dict[str, Any] = {"EndpointName": "echo"}
    if given == "both":
        params.update(Body=b"x", InputLocation="s3://b/k")
    with pytest.raises(ClientError) as info:
        runtime_client.invoke_endpoint_async(**params)
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "exactly one" in info.value.response["Error"]["Message"]


def test_inline_body_over_its_limit_is_refused(emulator: Emulator, runtime_client: Any) -> None:
    if not _model_has_inline_bodies(runtime_client):
        pytest.skip("this botocore's model predates inline async bodies (botocore < 1.43.117)")
    from botocore.config import Config

    # botocore's own validation would refuse it first: turn it off to see the service's answer.
    unchecked = emulator.boto3_client(
        "sagemaker-runtime", config=Config(parameter_validation=False, retries={"total_max_attempts": 1})
    )
    with pytest.raises(ClientError) as info:
        unchecked.invoke_endpoint_async(EndpointName="echo", Body=b"x" * 128_001)
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "less than or equal to 128000" in info.value.response["Error"]["Message"]


def test_model_error_writes_a_failure_document(runtime_client: Any, s3_client: Any) -> None:
    location = _upload(s3_client, b"x")
    resp = runtime_client.invoke_endpoint_async(
        EndpointName="demo",
        InputLocation=location,
        CustomAttributes="fault=model-error;status=500;message=boom",
    )
    kind, body, _ = _wait(s3_client, resp)
    assert kind == "failure"
    doc = json.loads(body)
    assert doc["ErrorCode"] == "ModelError"
    assert doc["OriginalStatusCode"] == 500
    assert doc["OriginalMessage"] == "boom"
    assert doc["InferenceId"] == resp["InferenceId"]


def test_missing_input_writes_a_failure_document(runtime_client: Any, s3_client: Any) -> None:
    resp = runtime_client.invoke_endpoint_async(
        EndpointName="demo", InputLocation=f"s3://{INPUT_BUCKET}/missing"
    )
    kind, body, _ = _wait(s3_client, resp)
    assert kind == "failure"
    assert "missing" in json.loads(body)["Message"]


@pytest.mark.parametrize(("fault", "status"), [("unavailable", 503), ("internal-failure", 500)])
def test_http_faults_on_the_async_call(runtime_client: Any, fault: str, status: int) -> None:
    with pytest.raises(ClientError) as info:
        runtime_client.invoke_endpoint_async(
            EndpointName="demo", InputLocation="s3://b/k", CustomAttributes=f"fault={fault}"
        )
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_unknown_endpoint(runtime_client: Any) -> None:
    with pytest.raises(ClientError) as info:
        runtime_client.invoke_endpoint_async(EndpointName="nope", InputLocation="s3://b/k")
    assert info.value.response["Error"]["Code"] == "ValidationError"


@pytest.fixture
def scaled(emulator: Emulator) -> Iterator[Emulator]:
    """An emulator whose async clock runs 100x faster (a 60 s TTL lasts 0.6 s), one at a time."""
    with Emulator(
        endpoints={"demo": "demo"},
        s3_endpoint_url=emulator.s3_endpoint_url,
        async_time_scale=0.01,
        async_max_concurrency=1,
    ) as emu:
        yield emu


def test_invocation_timeout(scaled: Emulator, s3_client: Any) -> None:
    client = scaled.boto3_client()
    location = _upload(s3_client, b"x")
    resp = client.invoke_endpoint_async(
        EndpointName="demo",
        InputLocation=location,
        InvocationTimeoutSeconds=10,  # 0.1 s here
        CustomAttributes="fault=stall;seconds=1",
    )
    kind, body, _ = _wait(s3_client, resp)
    assert kind == "failure"
    assert "InvocationTimeoutSeconds=10" in json.loads(body)["Message"]


def test_request_ttl(scaled: Emulator, s3_client: Any) -> None:
    client = scaled.boto3_client()
    location = _upload(s3_client, b"x")
    slow = client.invoke_endpoint_async(
        EndpointName="demo", InputLocation=location, CustomAttributes="fault=stall;seconds=1"
    )
    queued = client.invoke_endpoint_async(EndpointName="demo", InputLocation=location, RequestTTLSeconds=60)
    kind, body, _ = _wait(s3_client, queued)
    assert kind == "failure"
    assert json.loads(body)["ErrorCode"] == "RequestExpired"
    assert _wait(s3_client, slow)[0] == "output"


def test_readme_async_example_with_the_service_specific_endpoint_variables(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME and AWS_ENDPOINT_URL_S3, the emulator's input prefix:
    the README's example runs as written, with no bucket created by hand."""
    import sagestream

    assert emulator.s3_endpoint_url is not None
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", emulator.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", emulator.s3_endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", emulator.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", emulator.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", emulator.region)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    job = sagestream.Client().invoke_async(
        "demo", input=b'{"inputs": "Hi"}', input_prefix="s3://sagestream-async/input/"
    )
    assert json.loads(job.wait(timeout=30)) == [{"generated_text": "".join(demo_tokens("Hi"))}]
