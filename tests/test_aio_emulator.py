"""AsyncClient against the emulator: results equal stock boto3's, every fault, sessions, load."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest
import sagestream
from botocore.config import Config
from sagestream.emulator import Emulator, bulk_part


def make_client(emulator: Emulator, **config: Any) -> sagestream.AsyncClient:
    session = boto3.Session(
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
        region_name=emulator.region,
    )
    options: dict[str, Any] = {"retries": {"total_max_attempts": 1}, **config}
    return sagestream.AsyncClient(
        session, endpoint_url=emulator.url, config=Config(**options), s3_endpoint_url=emulator.s3_endpoint_url
    )


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[sagestream.AsyncClient]:
    async with make_client(emulator) as c:
        yield c


def stock_parts(runtime_client: Any, **kwargs: Any) -> list[bytes]:
    response = runtime_client.invoke_endpoint_with_response_stream(**kwargs)
    return [event["PayloadPart"]["Bytes"] for event in response["Body"]]


async def read_into(
    got: list[bytes], client: sagestream.AsyncClient, endpoint: str, body: bytes, **kw: Any
) -> None:
    async with client.invoke_stream(endpoint, body, **kw) as stream:
        async for part in stream:
            got.append(part)


# --- results -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "sse", "jsonl"])
async def test_demo_stream_equals_stock_boto3(
    client: sagestream.AsyncClient, runtime_client: Any, fmt: str
) -> None:
    body = json.dumps(
        {"inputs": "tell me about rivers in 40 words", "parameters": {"max_new_tokens": 40}}
    ).encode()
    attributes = f"format={fmt}"
    expected = await asyncio.to_thread(
        stock_parts, runtime_client, EndpointName="demo", Body=body, CustomAttributes=attributes
    )
    async with client.invoke_stream("demo", body, custom_attributes=attributes) as stream:
        parts = [p async for p in stream]
    assert parts == expected
    assert len(parts) >= 40
    assert stream.invoked_production_variant == "AllTraffic"
    assert stream.metrics.parts == len(parts)
    assert stream.metrics.bytes == sum(map(len, parts))


async def test_echo_round_trip_and_content_type(client: sagestream.AsyncClient) -> None:
    body = bytes(range(256)) * 100
    async with client.invoke_stream("echo", body, content_type="application/x-test") as stream:
        parts = [p async for p in stream]
    assert len(parts) > 1
    assert b"".join(parts) == body
    assert stream.content_type == "application/x-test"


async def test_lines_sse_and_json_lines(client: sagestream.AsyncClient, runtime_client: Any) -> None:
    body = json.dumps({"inputs": "hello", "parameters": {"max_new_tokens": 12}}).encode()
    text = b"".join(await asyncio.to_thread(stock_parts, runtime_client, EndpointName="demo", Body=body))
    async with client.invoke_stream("demo", body, custom_attributes="format=sse") as stream:
        events = [e async for e in stream.sse()]
    raw_sse = b"".join(
        await asyncio.to_thread(
            stock_parts, runtime_client, EndpointName="demo", Body=body, CustomAttributes="format=sse"
        )
    )
    assert [e.data for e in events] == [
        line[len(b"data:") :].strip().decode() for line in raw_sse.splitlines() if line.startswith(b"data:")
    ]
    async with client.invoke_stream("demo", body, custom_attributes="format=jsonl") as stream:
        values = [v async for v in stream.json_lines()]
    assert len(values) == 12
    assert all(isinstance(v, dict) for v in values)
    # Lines split across arbitrary parts: the echo model cuts its body every 4 KiB.
    lines_in = [f"line {i} " + "é" * (i % 7) for i in range(2000)]
    async with client.invoke_stream("echo", "\n".join(lines_in).encode()) as stream:
        lines_out = [line async for line in stream.lines()]
    assert lines_out == lines_in
    assert text


async def test_bulk_parts_all_intact(client: sagestream.AsyncClient) -> None:
    async with client.invoke_stream("demo", b"{}", custom_attributes="parts=3000;part_size=100") as stream:
        parts = [p async for p in stream]
    assert parts == [bulk_part(i, 100) for i in range(3000)]


async def test_invoke_and_sessions(client: sagestream.AsyncClient) -> None:
    result = await client.invoke(
        "echo", b'{"a":1}', content_type="application/json", session_id="NEW_SESSION"
    )
    assert result.body == b'{"a":1}'
    assert result.content_type == "application/json"
    assert result.new_session_id
    assert result.new_session_expires is not None
    async with client.invoke_stream("echo", b"in session", session_id=result.new_session_id) as stream:
        assert [p async for p in stream] == [b"in session"]


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["ModelInvocationTimeExceeded", "StreamBroken"])
async def test_model_stream_error_after_parts(client: sagestream.AsyncClient, code: str) -> None:
    got: list[bytes] = []
    with pytest.raises(sagestream.ModelStreamError) as info:
        await read_into(
            got, client, "demo", b"{}", custom_attributes=f"fault=model-stream-error;after=3;code={code}"
        )
    assert len(got) == 3
    assert info.value.error_code == code


async def test_error_frame_after_parts(client: sagestream.AsyncClient) -> None:
    got: list[bytes] = []
    with pytest.raises(sagestream.StreamError) as info:
        await read_into(
            got, client, "demo", b"{}", custom_attributes="fault=error-frame;after=4;code=Throttled"
        )
    assert len(got) == 4
    assert type(info.value) is sagestream.StreamError
    assert info.value.error_code == "Throttled"


async def test_internal_stream_failure_after_parts(client: sagestream.AsyncClient) -> None:
    got: list[bytes] = []
    with pytest.raises(sagestream.InternalStreamFailure):
        await read_into(got, client, "demo", b"{}", custom_attributes="fault=internal-stream-failure;after=5")
    assert len(got) == 5


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("model-error", sagestream.ModelError),
        ("throttle", sagestream.ModelNotReadyException),
        ("unavailable", sagestream.ServiceUnavailable),
        ("internal-failure", sagestream.InternalFailure),
        ("dependency", sagestream.InternalDependencyException),
    ],
)
async def test_http_faults_are_typed(
    client: sagestream.AsyncClient, fault: str, error: type[Exception]
) -> None:
    got: list[bytes] = []
    with pytest.raises(error) as info:
        await read_into(got, client, "demo", b"{}", custom_attributes=f"fault={fault};status=502")
    assert got == []
    if fault == "model-error":
        assert isinstance(info.value, sagestream.ModelError)
        assert info.value.original_status_code == 502
        assert info.value.log_stream_arn
    with pytest.raises(error):
        await client.invoke("demo", b"{}", custom_attributes=f"fault={fault}")


async def test_unknown_endpoint_is_validation_error(client: sagestream.AsyncClient) -> None:
    with pytest.raises(sagestream.ValidationError, match="missing"):
        await read_into([], client, "missing", b"{}")


async def test_cut_mid_frame(client: sagestream.AsyncClient) -> None:
    got: list[bytes] = []
    with pytest.raises((sagestream.ConnectionLostError, sagestream.TruncatedStreamError)):
        await read_into(got, client, "demo", b"{}", custom_attributes="fault=cut;after=4")
    assert len(got) == 4


async def test_stall_hits_the_read_timeout(emulator: Emulator) -> None:
    got: list[bytes] = []
    async with make_client(emulator, read_timeout=0.5) as c:
        started = time.monotonic()
        with pytest.raises(sagestream.ReadTimeoutError):
            await read_into(got, c, "demo", b"{}", custom_attributes="fault=stall;after=2;seconds=3")
        assert time.monotonic() - started < 10
    assert len(got) == 2


async def test_stall_hits_the_deadline(client: sagestream.AsyncClient) -> None:
    got: list[bytes] = []
    started = time.monotonic()
    with pytest.raises(sagestream.DeadlineExceededError):
        await read_into(
            got, client, "demo", b"{}", custom_attributes="fault=stall;after=2;seconds=3", deadline=0.5
        )
    assert time.monotonic() - started < 10
    assert len(got) == 2


async def test_cancellation_mid_stream(client: sagestream.AsyncClient) -> None:
    got: list[bytes] = []
    task = asyncio.create_task(
        read_into(got, client, "demo", b"{}", custom_attributes="fault=stall;after=2;seconds=3")
    )
    while len(got) < 2:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1
    # The client is still usable.
    async with client.invoke_stream("echo", b"after") as stream:
        assert [p async for p in stream] == [b"after"]


# --- load ------------------------------------------------------------------------------------


async def test_one_thousand_concurrent_streams(emulator: Emulator) -> None:
    """1,000 streams at once in one process: each gets exactly its own bytes."""
    n = 1000
    async with make_client(emulator, max_pool_connections=n) as c:

        async def one(i: int) -> bool:
            body = (b"%06d|" % i) * 1500  # 10.5 KB: three echo parts
            async with c.invoke_stream("echo", body) as stream:
                parts = [p async for p in stream]
            return b"".join(parts) == body and len(parts) == 3

        started = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 90)
        elapsed = time.monotonic() - started
    assert all(results)
    assert elapsed < 60


async def test_the_answer_is_read_from_its_headers_when_asked_for(
    client: sagestream.AsyncClient, runtime_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on the sync client: the parts come first, the answer's fields when asked for, as
    stock boto3's answer gives them."""
    import sagestream._stream as stream_module

    reads: list[dict[str, Any]] = []
    of = stream_module.StreamInfo.of
    monkeypatch.setattr(stream_module.StreamInfo, "of", lambda answer: reads.append(answer) or of(answer))
    stock = await asyncio.to_thread(
        runtime_client.invoke_endpoint_with_response_stream,
        EndpointName="demo",
        Body=b"{}",
        CustomAttributes="tokens=3",
    )
    await asyncio.to_thread(list, stock["Body"])
    async with client.invoke_stream("demo", b"{}", custom_attributes="tokens=3") as stream:
        assert len([part async for part in stream]) == 3
        assert reads == []
        assert stream.content_type == stock["ContentType"]
        assert stream.invoked_production_variant == stock["InvokedProductionVariant"]
        assert stream.request_id == stream.headers["x-amzn-requestid"]
        assert set(stream.headers) == set(stock["ResponseMetadata"]["HTTPHeaders"])
    assert len(reads) == 1
