"""InvokeEndpointAsync and waiting for its result in S3, with both clients, against the emulator
with its embedded S3 and with the emulator pointed at a separately started S3 server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sagestream
from botocore.config import Config
from sagestream._jobs import (
    DEFAULT_INVOCATION_TIMEOUT_SECONDS,
    DEFAULT_REQUEST_TTL_SECONDS,
    WaitProgress,
    as_completed_async,
    wait_many_async,
)
from sagestream.emulator import Emulator

INPUT_BUCKET = "sagestream-inputs"
FAST = {"min_interval": 0.02, "max_interval": 0.2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def external_s3() -> Iterator[str]:
    """A separately started S3-compatible server (moto's server mode) on a free port."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def external_emulator(external_s3: str) -> Iterator[Emulator]:
    """The emulator writing results to the external S3 server, one async job at a time, its
    clock for RequestTTLSeconds / InvocationTimeoutSeconds running 100x faster."""
    with Emulator(
        endpoints={"demo": "demo", "echo": "echo"},
        s3_endpoint_url=external_s3,
        async_max_concurrency=1,
        async_time_scale=0.01,
    ) as emu:
        yield emu


@pytest.fixture(params=["embedded-s3", "external-s3"])
def emu(request: pytest.FixtureRequest) -> Emulator:
    name = "emulator" if request.param == "embedded-s3" else "external_emulator"
    emulator: Emulator = request.getfixturevalue(name)
    s3 = emulator.boto3_client("s3", endpoint_url=emulator.s3_endpoint_url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=INPUT_BUCKET)
    return emulator


def session_for(emulator: Emulator) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
        region_name=emulator.region,
    )


def sync_client(emulator: Emulator) -> sagestream.Client:
    return sagestream.Client(
        session_for(emulator),
        endpoint_url=emulator.url,
        config=Config(retries={"total_max_attempts": 1}),
        s3_endpoint_url=emulator.s3_endpoint_url,
    )


@pytest.fixture
async def aclient(emu: Emulator) -> AsyncIterator[sagestream.AsyncClient]:
    async with sagestream.AsyncClient(
        session_for(emu),
        endpoint_url=emu.url,
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=100),
        s3_endpoint_url=emu.s3_endpoint_url,
    ) as client:
        yield client


PREFIX = f"s3://{INPUT_BUCKET}/in"


# --- success ---------------------------------------------------------------------------------


def test_sync_client_uploads_waits_and_returns_the_output(emu: Emulator) -> None:
    client = sync_client(emu)
    events: list[WaitProgress] = []
    handle = client.invoke_async(
        "echo", input=b'{"hello": "async"}', input_prefix=PREFIX, content_type="application/json"
    )
    assert isinstance(handle, sagestream.AsyncInvocation)
    assert handle.output_location.startswith("s3://")
    assert handle.failure_location.startswith("s3://")
    assert handle.inference_id
    assert handle.wait(timeout=30, progress=events.append, **FAST) == b'{"hello": "async"}'
    assert events[-1].state == "succeeded"
    assert all(e.inference_id == handle.inference_id for e in events)
    assert [e.attempts for e in events] == sorted(e.attempts for e in events)
    assert handle.wait() == b'{"hello": "async"}'  # cached
    assert handle.result() == b'{"hello": "async"}'


def test_text_input_is_the_content_and_a_path_names_a_file(emu: Emulator, tmp_path: Path) -> None:
    client = sync_client(emu)
    # A JSON document given as text is sent as it is, not taken for a file name.
    job = client.invoke_async("echo", input='{"inputs": "hi"}', input_prefix=PREFIX)
    assert job.wait(timeout=30, **FAST) == b'{"inputs": "hi"}'
    path = tmp_path / "in.txt"
    path.write_bytes(b"from a file")
    for given in (path, str(path)):
        assert client.invoke_async("echo", input=given, input_prefix=PREFIX).wait(timeout=30, **FAST) == (
            b"from a file"
        )


def test_from_boto3_reuses_a_stock_client(emu: Emulator) -> None:
    stock = emu.boto3_client("sagemaker-runtime")
    client = sagestream.Client.from_boto3(stock, s3_endpoint_url=emu.s3_endpoint_url)
    assert client.runtime_client is stock
    assert client.fast_path
    assert b"".join(client.invoke_stream("echo", b"hello")) == b"hello"
    job = client.invoke_async("echo", input=b"job", input_prefix=PREFIX)
    assert job.wait(timeout=30, **FAST) == b"job"


async def test_async_from_boto3_reuses_a_stock_client(emu: Emulator) -> None:
    stock = emu.boto3_client("sagemaker-runtime")
    async with sagestream.AsyncClient.from_boto3(stock, s3_endpoint_url=emu.s3_endpoint_url) as client:
        async with client.invoke_stream("echo", b"hello") as stream:
            assert b"".join([p async for p in stream]) == b"hello"
        job = await client.invoke_async("echo", input=b"job", input_prefix=PREFIX)
        assert await job.wait(timeout=30, **FAST) == b"job"


def test_from_boto3_refuses_another_service(emu: Emulator) -> None:
    with pytest.raises(TypeError, match="sagemaker-runtime"):
        sagestream.Client.from_boto3(emu.boto3_client("s3"))


async def test_async_client_uploads_a_file_and_waits(
    aclient: sagestream.AsyncClient, tmp_path: Path, emu: Emulator
) -> None:
    path = tmp_path / "request.json"
    path.write_bytes(b"x" * 100_000)
    handle = await aclient.invoke_async(
        "echo",
        input=path,
        input_prefix=PREFIX + "/files/",
        filename="result.bin",
        s3_output_path_extension="run-1",
    )
    assert isinstance(handle, sagestream.AsyncInvocationAsync)
    assert handle.output_location.endswith("/run-1/result.bin")
    assert await handle.wait(timeout=30, **FAST) == b"x" * 100_000
    # The input really went to the prefix, named after the file.
    s3 = emu.boto3_client("s3", endpoint_url=emu.s3_endpoint_url)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=INPUT_BUCKET, Prefix="in/files/")["Contents"]]
    assert any(k.endswith("-request.json") for k in keys)


async def test_given_input_location_is_used_as_is(aclient: sagestream.AsyncClient, emu: Emulator) -> None:
    s3 = emu.boto3_client("s3", endpoint_url=emu.s3_endpoint_url)
    s3.put_object(Bucket=INPUT_BUCKET, Key="given/input.txt", Body=b"given input")
    handle = await aclient.invoke_async(
        "echo", input_location=f"s3://{INPUT_BUCKET}/given/input.txt", inference_id="my-id-1"
    )
    assert handle.inference_id == "my-id-1"
    assert await handle.wait(timeout=30, **FAST) == b"given input"


# --- failure, expiry, timeout ----------------------------------------------------------------


async def test_model_failure_raises_with_the_failure_document(aclient: sagestream.AsyncClient) -> None:
    handle = await aclient.invoke_async(
        "echo", input=b"x", input_prefix=PREFIX, custom_attributes="fault=model-error;message=bad input"
    )
    with pytest.raises(sagestream.AsyncInferenceFailed) as info:
        await handle.wait(timeout=30, **FAST)
    assert info.value.failure_location == handle.failure_location
    document = json.loads(info.value.failure)
    assert document["InferenceId"] == handle.inference_id
    assert document["ErrorCode"]
    assert "bad input" in json.dumps(document)
    assert handle.error is info.value
    with pytest.raises(sagestream.AsyncInferenceFailed):
        handle.result()


def test_sync_model_failure(emu: Emulator) -> None:
    handle = sync_client(emu).invoke_async(
        "echo", input=b"x", input_prefix=PREFIX, custom_attributes="fault=model-error"
    )
    with pytest.raises(sagestream.AsyncInferenceFailed) as info:
        handle.wait(timeout=30, **FAST)
    assert json.loads(info.value.failure)["InferenceId"] == handle.inference_id


async def test_expired_ttl_is_a_failure(external_emulator: Emulator) -> None:
    """One job at a time on this emulator: a 2 s job holds the slot while the next request's
    RequestTTLSeconds (60 s, 0.6 s on its 100x clock) runs out in the queue."""
    emu = external_emulator
    s3 = emu.boto3_client("s3", endpoint_url=emu.s3_endpoint_url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=INPUT_BUCKET)
    async with sagestream.AsyncClient(
        session_for(emu), endpoint_url=emu.url, s3_endpoint_url=emu.s3_endpoint_url
    ) as client:
        blocker = await client.invoke_async(
            "echo", input=b"slow", input_prefix=PREFIX, custom_attributes="fault=stall;seconds=2"
        )
        expiring = await client.invoke_async(
            "echo", input=b"late", input_prefix=PREFIX, request_ttl_seconds=60
        )
        assert expiring.lifetime == 60 + DEFAULT_INVOCATION_TIMEOUT_SECONDS
        with pytest.raises(sagestream.AsyncInferenceFailed) as info:
            await expiring.wait(timeout=30, **FAST)
        assert json.loads(info.value.failure)["ErrorCode"] == "RequestExpired"
        assert await blocker.wait(timeout=30, **FAST) == b"slow"


async def test_wait_timeout_names_both_locations(aclient: sagestream.AsyncClient) -> None:
    handle = await aclient.invoke_async(
        "echo", input=b"x", input_prefix=PREFIX, custom_attributes="fault=stall;seconds=1.5"
    )
    events: list[WaitProgress] = []
    started = time.monotonic()
    with pytest.raises(sagestream.AsyncInferenceTimeout) as info:
        await handle.wait(timeout=0.3, progress=events.append, **FAST)
    assert time.monotonic() - started < 3
    assert info.value.output_location == handle.output_location
    assert info.value.failure_location == handle.failure_location
    assert handle.output_location in str(info.value)
    assert handle.failure_location in str(info.value)
    assert events[-1].state == "timed_out"
    assert isinstance(info.value, TimeoutError)
    # The timeout is not an outcome: waiting longer still gets the output.
    assert await handle.wait(timeout=30, **FAST) == b"x"


def test_default_bound_is_ttl_plus_invocation_timeout(emu: Emulator) -> None:
    client = sync_client(emu)
    handle = client.invoke_async("echo", input=b"x", input_prefix=PREFIX)
    assert handle.lifetime == DEFAULT_REQUEST_TTL_SECONDS + DEFAULT_INVOCATION_TIMEOUT_SECONDS == 22_500
    handle = client.invoke_async(
        "echo", input=b"x", input_prefix=PREFIX, request_ttl_seconds=120, invocation_timeout_seconds=30
    )
    assert handle.lifetime == 150
    assert handle.wait(**FAST) == b"x"


@pytest.mark.parametrize(
    ("fault", "error"),
    [("unavailable", sagestream.ServiceUnavailable), ("internal-failure", sagestream.InternalFailure)],
)
async def test_submission_errors_are_typed(
    aclient: sagestream.AsyncClient, emu: Emulator, fault: str, error: type[Exception]
) -> None:
    location = f"s3://{INPUT_BUCKET}/never-read"
    with pytest.raises(error):
        await aclient.invoke_async("echo", input_location=location, custom_attributes=f"fault={fault}")
    with pytest.raises(error):
        await asyncio.to_thread(
            sync_client(emu).invoke_async, "echo", input_location=location, custom_attributes=f"fault={fault}"
        )


# --- many ------------------------------------------------------------------------------------


async def test_many_concurrent_invocations(aclient: sagestream.AsyncClient) -> None:
    n = 40
    bodies = [b"request %d " % i * (i + 1) for i in range(n)]
    handles = await asyncio.gather(
        *(aclient.invoke_async("echo", input=b, input_prefix=PREFIX) for b in bodies)
    )
    assert len({h.inference_id for h in handles}) == n
    events: list[WaitProgress] = []
    outputs = await sagestream.wait_many_async(handles, timeout=60, progress=events.append, **FAST)
    assert outputs == bodies
    assert {e.inference_id for e in events if e.state == "succeeded"} == {h.inference_id for h in handles}


async def test_as_completed_yields_each_handle_once(aclient: sagestream.AsyncClient) -> None:
    handles = [
        await aclient.invoke_async("echo", input=b"ok %d" % i, input_prefix=PREFIX) for i in range(5)
    ] + [
        await aclient.invoke_async(
            "echo", input=b"x", input_prefix=PREFIX, custom_attributes="fault=model-error"
        )
    ]
    seen = [h async for h in sagestream.as_completed_async(handles, timeout=60, **FAST)]
    assert sorted(map(id, seen)) == sorted(map(id, handles))
    failed = [h for h in seen if h.error is not None]
    assert len(failed) == 1
    assert isinstance(failed[0].error, sagestream.AsyncInferenceFailed)
    assert sorted(h.result() for h in seen if h.error is None) == [b"ok %d" % i for i in range(5)]
    with pytest.raises(sagestream.AsyncInferenceFailed):
        await wait_many_async(handles, **FAST)
    results = await wait_many_async(handles, return_exceptions=True, **FAST)
    assert isinstance(results[-1], sagestream.AsyncInferenceFailed)
    assert results[:5] == [b"ok %d" % i for i in range(5)]


async def test_as_completed_marks_unfinished_handles_timed_out(aclient: sagestream.AsyncClient) -> None:
    quick = await aclient.invoke_async("echo", input=b"quick", input_prefix=PREFIX)
    # Done before the window opens, so that only the slow job's stall (which outlasts the
    # window whatever the machine's load) decides what times out.
    await quick.wait(60, **FAST)
    slow = await aclient.invoke_async(
        "echo", input=b"slow", input_prefix=PREFIX, custom_attributes="fault=stall;seconds=1.5"
    )
    seen = [h async for h in as_completed_async([slow, quick], timeout=0.5, **FAST)]
    assert seen == [quick, slow]
    assert quick.result() == b"quick"
    assert isinstance(slow.error, sagestream.AsyncInferenceTimeout)


def test_sync_wait_many_and_as_completed(emu: Emulator) -> None:
    client = sync_client(emu)
    handles = [client.invoke_async("echo", input=b"sync %d" % i, input_prefix=PREFIX) for i in range(8)]
    assert sagestream.wait_many(handles, timeout=60, **FAST) == [b"sync %d" % i for i in range(8)]
    more = [client.invoke_async("echo", input=b"again %d" % i, input_prefix=PREFIX) for i in range(4)]
    done = list(sagestream.as_completed(more, timeout=60, **FAST))
    assert sorted(h.result() for h in done) == [b"again %d" % i for i in range(4)]
    assert len(done) == 4


def test_each_waiting_function_takes_one_kind_of_job(emu: Emulator) -> None:
    from sagestream._operations import AsyncAnswer

    job = sync_client(emu).invoke_async("echo", input=b"x", input_prefix=PREFIX)
    other = sagestream.AsyncInferenceJob(None, AsyncAnswer("id", "s3://b/o", "s3://b/f"), 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="wait_many_async"):
        sagestream.wait_many([job, other])
    with pytest.raises(TypeError, match="as_completed_async"):
        list(sagestream.as_completed([other]))
    with pytest.raises(TypeError, match="wait_many for InferenceJob"):
        asyncio.run(sagestream.wait_many_async([job]))


def test_the_old_names_still_work() -> None:
    assert sagestream.AsyncInvocation is sagestream.InferenceJob
    assert sagestream.AsyncInvocationAsync is sagestream.AsyncInferenceJob
    assert sagestream.AsyncInferenceFailed is sagestream.AsyncInferenceFailedError
    assert sagestream.AsyncInferenceTimeout is sagestream.AsyncInferenceTimeoutError


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_location": "s3://b/k", "request_ttl_seconds": 59},
        {"input_location": "s3://b/k", "request_ttl_seconds": 21601},
        {"input_location": "s3://b/k", "invocation_timeout_seconds": 0},
        {"input_location": "s3://b/k", "invocation_timeout_seconds": 3601},
        {"input_location": "s3://b/k", "filename": "x" * 33},
        {"input_location": "s3://b/k", "custom_attributes": "tab\x01"},
        {"input_location": "not-a-uri"},
        {"input_location": "s3://b/k", "input": b"both"},
        {},
        {"input": b"no prefix"},
        {"input": b"x", "input_prefix": "http://not-s3"},
        {"input": 12, "input_prefix": "s3://b/p"},
        {"input": Path("/no/such/file"), "input_prefix": "s3://b/p"},
    ],
)
async def test_invalid_parameters_send_nothing(kwargs: dict[str, Any]) -> None:
    # Both clients point at a closed port: reaching the network would be a connection error.
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(sagestream.ParamValidationError):
        sagestream.Client(session, endpoint_url=url, s3_endpoint_url=url).invoke_async("ep", **kwargs)
    async with sagestream.AsyncClient(session, endpoint_url=url, s3_endpoint_url=url) as client:
        with pytest.raises(sagestream.ParamValidationError):
            await client.invoke_async("ep", **kwargs)


# --- a result larger than the client reads into memory --------------------------------------------


def test_sync_wait_refuses_a_result_larger_than_its_bound(emulator: Emulator) -> None:
    s3 = emulator.boto3_client("s3", endpoint_url=emulator.s3_endpoint_url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=INPUT_BUCKET)
    client = sagestream.Client(
        session_for(emulator),
        endpoint_url=emulator.url,
        config=Config(retries={"total_max_attempts": 1}),
        s3_endpoint_url=emulator.s3_endpoint_url,
        response_limits=sagestream.ResponseLimits(async_output=64),
    )
    job = client.invoke_async("echo", input=b"x" * 65, input_prefix=PREFIX)
    with pytest.raises(sagestream.ResponseTooLargeError) as caught:
        job.wait(timeout=30, **FAST)
    assert caught.value.limit == 64
    small = client.invoke_async("echo", input=b"y" * 64, input_prefix=PREFIX)
    assert small.wait(timeout=30, **FAST) == b"y" * 64


async def test_async_wait_refuses_a_result_larger_than_its_bound(emulator: Emulator) -> None:
    s3 = emulator.boto3_client("s3", endpoint_url=emulator.s3_endpoint_url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=INPUT_BUCKET)
    async with sagestream.AsyncClient(
        session_for(emulator),
        endpoint_url=emulator.url,
        config=Config(retries={"total_max_attempts": 1}),
        s3_endpoint_url=emulator.s3_endpoint_url,
        response_limits=sagestream.ResponseLimits(async_output=64),
    ) as client:
        job = await client.invoke_async("echo", input=b"x" * 65, input_prefix=PREFIX)
        with pytest.raises(sagestream.ResponseTooLargeError) as caught:
            await job.wait(timeout=30, **FAST)
        assert caught.value.limit == 64
        small = await client.invoke_async("echo", input=b"y" * 64, input_prefix=PREFIX)
        assert await small.wait(timeout=30, **FAST) == b"y" * 64
