"""The OpenTelemetry drop-in over aiobotocore: a patched aiobotocore stream is one span, its
chunks timed, its errors typed, as on botocore (tests/test_otel_more.py). aiobotocore pins an
older botocore, so these run in its own environment (`make test-aio`)."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sagestream
from _emulator_fixtures import aiobotocore_client

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("aiobotocore") is None,
        reason="aiobotocore is not installed here: `make test-aio` runs these",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("opentelemetry.sdk") is None,
        reason="the OpenTelemetry SDK is not installed here",
    ),
]

if importlib.util.find_spec("opentelemetry.sdk") is not None:
    from _otel_fixtures import BODY, Recorded, telemetry  # noqa: F401  (a fixture)


@pytest.fixture
async def aio_client(emulator: Any) -> AsyncIterator[Any]:
    sagestream.patch_botocore()
    try:
        async with aiobotocore_client(emulator) as client:
            yield client
    finally:
        sagestream.unpatch_botocore()


async def test_an_aiobotocore_stream_is_one_span(telemetry: Recorded, aio_client: Any) -> None:
    response = await aio_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=BODY, CustomAttributes="tokens=5"
    )
    events = [event async for event in response["Body"]]
    span = telemetry.one_span()
    a = span.attributes
    assert a is not None
    assert a["rpc.method"] == "InvokeEndpointWithResponseStream"
    assert a["aws.request_id"] == response["ResponseMetadata"]["RequestId"]
    assert a["sagestream.stream.parts"] == len(events) >= 5
    assert telemetry.count("gen_ai.client.operation.time_per_output_chunk") == len(events) - 1
    assert a["sagestream.stream.time_to_first_chunk"] > 0


async def test_aiobotocore_stream_errors_and_failed_calls(telemetry: Recorded, aio_client: Any) -> None:
    response = await aio_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=BODY, CustomAttributes="tokens=5;fault=model-stream-error;after=2"
    )
    body = response["Body"]
    with pytest.raises(sagestream.ModelStreamError):
        async for _ in body:
            pass
    body.close()
    with pytest.raises(aio_client.exceptions.ModelError):
        await aio_client.invoke_endpoint_with_response_stream(
            EndpointName="demo", Body=BODY, CustomAttributes="fault=model-error"
        )
    stream_span, call_span = telemetry.finished()
    assert stream_span.attributes is not None
    assert call_span.attributes is not None
    assert stream_span.attributes["error.type"] == "ModelStreamError"
    assert stream_span.attributes["sagestream.stream.parts"] == 2
    assert call_span.attributes["error.type"] == "ModelError"
    assert call_span.attributes["http.response.status_code"] == 424
