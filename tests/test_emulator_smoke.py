"""The emulator fixtures work with stock boto3 (the contract other test modules rely on)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from sagestream.emulator import Emulator


def test_stream_echo_round_trip(runtime_client: Any) -> None:
    body = bytes(range(256)) * 40
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="echo", Body=body, ContentType="application/x-test"
    )
    assert resp["ContentType"] == "application/x-test"
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    parts = [event["PayloadPart"]["Bytes"] for event in resp["Body"]]
    assert len(parts) > 1
    assert b"".join(parts) == body


def test_unknown_endpoint(runtime_client: Any) -> None:
    with pytest.raises(ClientError) as info:
        runtime_client.invoke_endpoint(EndpointName="missing", Body=b"x")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert info.value.response["Error"]["Message"] == "Endpoint missing of account 123456789012 not found."
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_s3_endpoint(emulator: Emulator, s3_client: Any) -> None:
    assert emulator.s3_endpoint_url is not None
    s3_client.create_bucket(Bucket="smoke-bucket")
    s3_client.put_object(Bucket="smoke-bucket", Key="k", Body=b"v")
    assert s3_client.get_object(Bucket="smoke-bucket", Key="k")["Body"].read() == b"v"
