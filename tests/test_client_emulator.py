"""sagestream.Client against the emulator: the full signed path, every fault, sessions, parity with boto3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from sagestream import Client
from sagestream.emulator import Emulator
from sagestream.exceptions import (
    ConnectionLostError,
    InternalDependencyException,
    InternalFailure,
    InternalStreamFailure,
    ModelError,
    ModelNotReadyException,
    ModelStreamError,
    ParamValidationError,
    ReadTimeoutError,
    ServiceUnavailable,
    StreamError,
    TruncatedStreamError,
    ValidationError,
)

BODY = b'{"inputs": "Tell me about rivers", "parameters": {"max_new_tokens": 40}}'


def make(emulator: Emulator, **config: Any) -> Client:
    session = boto3.Session(
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
        region_name=emulator.region,
    )
    return Client(
        session, endpoint_url=emulator.url, config=Config(retries={"total_max_attempts": 1}, **config)
    )


@pytest.fixture(scope="module")
def client(emulator: Emulator) -> Iterator[Client]:
    with make(emulator) as c:
        yield c


def drain(parts: Any, got: list[bytes]) -> None:
    """Append every part to ``got`` until the stream ends or raises."""
    got.extend(parts)


def stock_parts(runtime_client: Any, **params: Any) -> list[bytes]:
    resp = runtime_client.invoke_endpoint_with_response_stream(**params)
    return [e["PayloadPart"]["Bytes"] for e in resp["Body"]]


@pytest.mark.parametrize(
    "attrs",
    [
        None,
        "format=sse;tokens=30",
        "format=jsonl;tokens=12",
        "tokens=0",
        "parts=5000;part_size=100;delay_ms=0",
    ],
)
def test_same_parts_as_boto3(client: Client, runtime_client: Any, attrs: str | None) -> None:
    extra = {"CustomAttributes": attrs} if attrs else {}
    expected = stock_parts(runtime_client, EndpointName="demo", Body=BODY, **extra)
    assert client.fast_path
    stream = client.invoke_stream("demo", BODY, custom_attributes=attrs)
    assert list(stream) == expected
    assert stream.metrics.parts == len(expected)
    assert stream.content_type is not None
    assert stream.invoked_production_variant


def test_reassembly_on_demo_output(client: Client) -> None:
    text = b"".join(client.invoke_stream("demo", BODY, custom_attributes="tokens=20"))
    lines = list(client.invoke_stream("demo", BODY, custom_attributes="tokens=20").lines())
    assert "\n".join(lines) == text.decode().rstrip("\n")
    events = list(client.invoke_stream("demo", BODY, custom_attributes="format=sse;tokens=10").sse())
    assert len(events) >= 10
    docs = list(client.invoke_stream("demo", BODY, custom_attributes="format=jsonl;tokens=10").json_lines())
    assert len(docs) >= 10
    assert all(isinstance(d, dict) for d in docs)


def test_echo_and_parameters(client: Client) -> None:
    stream = client.invoke_stream(
        "echo",
        b"ping",
        content_type="text/plain",
        accept="text/plain",
        inference_id="inf-1",
        target_variant="AllTraffic",
    )
    assert b"".join(stream) == b"ping"


def test_connection_reused(client: Client) -> None:
    for _ in range(3):
        stream = client.invoke_stream("demo", BODY, custom_attributes="tokens=5")
        list(stream)
        # The connection went back to the pool before the end was handed out.
        assert client.idle_connections() == 1


@pytest.mark.parametrize(
    ("attrs", "cls", "code"),
    [
        ("fault=model-stream-error;after=3", ModelStreamError, "ModelInvocationTimeExceeded"),
        ("fault=model-stream-error;after=2;code=StreamBroken", ModelStreamError, "StreamBroken"),
        ("fault=internal-stream-failure;after=4", InternalStreamFailure, None),
        ("fault=error-frame;after=3;code=Throttled", StreamError, "Throttled"),
    ],
)
def test_stream_faults(client: Client, runtime_client: Any, attrs: str, cls: type, code: str | None) -> None:
    after = int(attrs.split("after=")[1].split(";")[0])
    got: list[bytes] = []
    stream = client.invoke_stream("demo", BODY, custom_attributes=attrs)
    with pytest.raises(cls) as info:
        drain(stream, got)
    assert len(got) == after
    if code is not None:
        assert info.value.error_code == code
    assert stream.closed


def test_cut_mid_frame(client: Client) -> None:
    got: list[bytes] = []
    with pytest.raises((TruncatedStreamError, ConnectionLostError)):
        drain(client.invoke_stream("demo", BODY, custom_attributes="fault=cut;after=4"), got)
    assert len(got) == 4


def test_stall_is_a_read_timeout(emulator: Emulator) -> None:
    with make(emulator, read_timeout=0.5) as c:
        got: list[bytes] = []
        with pytest.raises(ReadTimeoutError):
            drain(c.invoke_stream("demo", BODY, custom_attributes="fault=stall;after=2;seconds=3"), got)
        assert len(got) == 2


@pytest.mark.parametrize(
    ("attrs", "cls"),
    [
        ("fault=model-error", ModelError),
        ("fault=throttle", ModelNotReadyException),
        ("fault=unavailable", ServiceUnavailable),
        ("fault=internal-failure", InternalFailure),
        ("fault=dependency", InternalDependencyException),
    ],
)
def test_http_faults_are_typed(client: Client, attrs: str, cls: type) -> None:
    with pytest.raises(cls):
        client.invoke_stream("demo", BODY, custom_attributes=attrs)
    with pytest.raises(cls):
        client.invoke("demo", BODY, custom_attributes=attrs)


def test_model_error_fields(client: Client) -> None:
    with pytest.raises(ModelError) as info:
        client.invoke_stream(
            "demo", BODY, custom_attributes="fault=model-error;status=503;message=overloaded"
        )
    assert info.value.original_status_code == 503
    assert info.value.original_message is not None


def test_unknown_endpoint(client: Client) -> None:
    with pytest.raises(ValidationError):
        client.invoke_stream("no-such-endpoint", BODY)


def test_sessions(client: Client) -> None:
    result = client.invoke("echo", b"hello", session_id="NEW_SESSION")
    assert result.body == b"hello"
    assert result.new_session_id
    assert result.new_session_expires is not None
    assert b"".join(client.invoke_stream("echo", b"again", session_id=result.new_session_id)) == b"again"
    closed = client.invoke(
        "echo", b"bye", session_id=result.new_session_id, custom_attributes="session=close"
    )
    assert closed.closed_session_id == result.new_session_id
    with pytest.raises(ParamValidationError):
        client.invoke_stream("echo", b"x", session_id="NEW_SESSION")


def test_close_midway_then_reuse_client(client: Client) -> None:
    stream = client.invoke_stream("demo", BODY, custom_attributes="parts=100000;part_size=100;delay_ms=0")
    assert len(next(stream)) == 100
    stream.close()
    assert stream.closed
    assert list(client.invoke_stream("demo", BODY, custom_attributes="tokens=3"))


@pytest.mark.parametrize("pool", [4, 32])
def test_one_client_shared_by_many_threads(emulator: Emulator, pool: int) -> None:
    """botocore clients are thread-safe; so is a Client, with fewer pooled connections than
    threads too (botocore then opens extra ones and drops them when the pool is full)."""
    import random
    import threading
    from concurrent.futures import ThreadPoolExecutor

    bodies = [random.Random(i).randbytes(random.Random(i).randrange(1, 40_000)) for i in range(160)]
    threads: set[str] = set()

    def one(body: bytes) -> bytes:
        threads.add(threading.current_thread().name)
        with shared.invoke_stream("echo", body, content_type="application/octet-stream") as stream:
            return b"".join(stream)

    with make(emulator, max_pool_connections=pool) as shared, ThreadPoolExecutor(16) as executor:
        got = list(executor.map(one, bodies, timeout=60))
    assert got == bodies
    assert len(threads) > 1


def test_stream_from_a_stock_boto3_response(runtime_client: Any) -> None:
    import sagestream

    expected = stock_parts(runtime_client, EndpointName="demo", Body=BODY, CustomAttributes="tokens=12")
    response = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=BODY, CustomAttributes="tokens=12"
    )
    stream = sagestream.stream_from_boto3(response)
    assert stream.content_type == response["ContentType"]
    assert list(stream) == expected
    assert stream.metrics.parts == len(expected)
    failing = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=BODY, CustomAttributes="fault=model-stream-error;after=2"
    )
    got: list[bytes] = []
    with pytest.raises(ModelStreamError):
        got.extend(sagestream.stream_from_boto3(failing))
    assert len(got) == 2
    with pytest.raises(TypeError):
        sagestream.stream_from_boto3({"Body": b"not a stream"})


def test_sse_on_a_plain_text_answer_warns_once_per_call(client: Client) -> None:
    import sagestream

    with (
        client.invoke_stream("demo", BODY, accept="text/plain") as stream,
        pytest.warns(sagestream.ContentTypeWarning, match="text/plain"),
    ):
        events = list(stream.sse())
    assert events == []  # what the warning announced
    with client.invoke_stream("demo", BODY, custom_attributes="format=sse;tokens=3") as stream:
        assert len(list(stream.sse())) >= 3  # an event stream: no warning (warnings are errors here)


def test_the_answer_is_read_from_its_headers_when_asked_for(
    client: Client, runtime_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream's parts come without its answer's fields being read; asked for after them,
    they say what stock boto3's answer to the same request says."""
    import sagestream._stream as stream_module

    reads: list[dict[str, Any]] = []
    of = stream_module.StreamInfo.of
    monkeypatch.setattr(stream_module.StreamInfo, "of", lambda answer: reads.append(answer) or of(answer))
    stock = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=BODY, CustomAttributes="tokens=3"
    )
    list(stock["Body"])
    stream = client.invoke_stream("demo", BODY, custom_attributes="tokens=3")
    assert len(list(stream)) == 3
    assert reads == []
    assert stream.content_type == stock["ContentType"]
    assert stream.invoked_production_variant == stock["InvokedProductionVariant"]
    assert stream.request_id == stream.headers["x-amzn-requestid"]
    assert stream.response_metadata["HTTPStatusCode"] == stock["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert set(stream.headers) == set(stock["ResponseMetadata"]["HTTPHeaders"])
    assert len(reads) == 1  # read once, kept
