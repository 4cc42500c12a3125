"""InvokeEndpointWithResponseStream and InvokeEndpoint against the emulator, read by stock boto3."""

from __future__ import annotations

import json
import os
import random
import time
import zlib
from typing import Any

import pytest
import urllib3
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError, ResponseStreamingError
from sagestream import _core
from sagestream.emulator import bulk_part, demo_tokens
from sagestream.emulator.protocol import FrameEncoder


def _parts(resp: dict[str, Any]) -> list[bytes]:
    return [event["PayloadPart"]["Bytes"] for event in resp["Body"]]


def _until_error(resp: dict[str, Any], got: list[bytes]) -> None:
    """Append the payloads to ``got`` until the stream raises; always close the body."""
    try:
        for event in resp["Body"]:
            got.append(event["PayloadPart"]["Bytes"])
    finally:
        resp["Body"].close()


# --- frames ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 5, 100, 4096, 70_000])
def test_frame_encoder_matches_the_rust_encoder_and_botocore(size: int) -> None:
    payload = os.urandom(size)
    encoder = FrameEncoder()
    frame = encoder.payload_frame(payload)
    assert frame == _core.encode(
        [
            (":event-type", "PayloadPart"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        payload,
    )
    buf = EventStreamBuffer()
    buf.add_data(frame)
    (message,) = list(buf)
    assert message.payload == payload
    assert message.headers[":event-type"] == "PayloadPart"
    # The batch form is the same frames, each its own HTTP chunk.
    two = encoder.payload_chunks([payload, payload])
    one = b"%x\r\n%b\r\n" % (len(frame), frame)
    assert two == one + one


# --- echo --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 100_000, 6 * 1024 * 1024])
def test_stream_echo_round_trips_random_bodies(runtime_client: Any, size: int) -> None:
    body = random.Random(size).randbytes(size)
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="echo", Body=body, ContentType="application/x-random"
    )
    assert resp["ContentType"] == "application/x-random"
    assert resp["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
    parts = _parts(resp)
    assert b"".join(parts) == body
    assert len(parts) == (size + 4095) // 4096
    assert all(len(p) <= 4096 for p in parts)


def test_invoke_echo_returns_the_body_whole(runtime_client: Any) -> None:
    body = os.urandom(300_000)
    resp = runtime_client.invoke_endpoint(EndpointName="echo", Body=body, ContentType="image/png")
    assert resp["ContentType"] == "image/png"
    assert resp["Body"].read() == body
    assert resp["InvokedProductionVariant"] == "AllTraffic"


def test_body_over_6_mib_is_a_validation_error(runtime_client: Any) -> None:
    for call in (runtime_client.invoke_endpoint, runtime_client.invoke_endpoint_with_response_stream):
        with pytest.raises(ClientError) as info:
            call(EndpointName="echo", Body=b"x" * (6 * 1024 * 1024 + 1))
        assert info.value.response["Error"]["Code"] == "ValidationError"
        assert "6291456" in info.value.response["Error"]["Message"]


# --- demo --------------------------------------------------------------------------------------


def test_demo_stream_text_is_deterministic(runtime_client: Any) -> None:
    body = json.dumps({"inputs": "Tell me a story", "parameters": {"max_new_tokens": 12}})
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=body, ContentType="application/json"
    )
    parts = _parts(resp)
    assert resp["ContentType"] == "text/plain"
    assert [p.decode() for p in parts] == demo_tokens("Tell me a story", 12)
    again = _parts(
        runtime_client.invoke_endpoint_with_response_stream(
            EndpointName="demo", Body=body, ContentType="application/json"
        )
    )
    assert again == parts


def test_demo_stream_tgi_sse(runtime_client: Any) -> None:
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo",
        Body=json.dumps({"inputs": "hi", "parameters": {"max_new_tokens": 5}}),
        Accept="text/event-stream",
    )
    assert resp["ContentType"] == "text/event-stream"
    parts = _parts(resp)
    assert len(parts) == 5
    tokens = demo_tokens("hi", 5)
    for i, part in enumerate(parts):
        assert part.startswith(b"data: ")
        assert part.endswith(b"\n\n")
        doc = json.loads(part[6:])
        assert doc["token"]["text"] == tokens[i]
        assert doc["token"]["special"] is False
        assert isinstance(doc["token"]["id"], int)
        assert isinstance(doc["token"]["logprob"], float)
        assert doc["generated_text"] == ("".join(tokens) if i == 4 else None)
        assert doc["details"] is None


def test_demo_stream_json_lines_via_custom_attributes(runtime_client: Any) -> None:
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"plain prompt", CustomAttributes="format=jsonl;tokens=4"
    )
    assert resp["ContentType"] == "application/jsonlines"
    assert "CustomAttributes" not in resp  # the demo sets none unless asked to
    lines = [json.loads(p) for p in _parts(resp)]
    assert [line["token"]["text"] for line in lines] == demo_tokens("plain prompt", tokens=4)
    assert lines[-1]["generated_text"] == "".join(demo_tokens("plain prompt", tokens=4))


def test_demo_invoke_formats(runtime_client: Any) -> None:
    body = json.dumps({"inputs": "abc", "parameters": {"max_new_tokens": 7}})
    text = "".join(demo_tokens("abc", 7))
    resp = runtime_client.invoke_endpoint(EndpointName="demo", Body=body, ContentType="application/json")
    assert resp["ContentType"] == "application/json"
    assert json.loads(resp["Body"].read()) == [{"generated_text": text}]
    resp = runtime_client.invoke_endpoint(EndpointName="demo", Body=body, Accept="text/plain")
    assert resp["Body"].read().decode() == text


def test_demo_pacing(emulator: Any, runtime_client: Any) -> None:
    started = time.perf_counter()
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"x", CustomAttributes="tokens=5;delay_ms=40"
    )
    stamps = []
    for _event in resp["Body"]:
        stamps.append(time.perf_counter() - started)
    assert len(stamps) == 5
    # Paced: the parts arrive one by one, not in one burst at the end.
    assert stamps[-1] - stamps[0] >= 0.12


def test_bulk_parts(runtime_client: Any) -> None:
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"", CustomAttributes="parts=5000;part_size=100;delay_ms=0"
    )
    parts = _parts(resp)
    assert len(parts) == 5000
    assert parts == [bulk_part(i, 100) for i in range(5000)]
    assert all(len(p) == 100 for p in parts)


# --- stream faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [0, 1, 3, 600])
@pytest.mark.parametrize("code", [None, "StreamBroken"])
def test_model_stream_error_after_n_parts(runtime_client: Any, after: int, code: str | None) -> None:
    attrs = f"fault=model-stream-error;after={after};parts=1000;part_size=10"
    if code:
        attrs += f";code={code}"
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"x", CustomAttributes=attrs
    )
    got: list[bytes] = []
    with pytest.raises(EventStreamError) as info:
        _until_error(resp, got)
    assert got == [bulk_part(i, 10) for i in range(after)]
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    # One default message per ErrorCode.
    expected = "stream broke" if code == "StreamBroken" else "time exceeded"
    assert expected in info.value.response["Error"]["Message"]


def test_model_stream_error_frame_carries_error_code(emulator: Any) -> None:
    # botocore keeps only Message; check the frame itself for ErrorCode with a raw request.
    raw = _raw_stream(emulator, "fault=model-stream-error;after=1;code=StreamBroken")
    buf = EventStreamBuffer()
    buf.add_data(raw)
    messages = list(buf)
    assert [m.headers[":message-type"] for m in messages] == ["event", "exception"]
    assert messages[1].headers[":exception-type"] == "ModelStreamError"
    assert messages[1].headers[":content-type"] == "application/json"
    doc = json.loads(messages[1].payload)
    assert doc["ErrorCode"] == "StreamBroken"
    assert doc["Message"]


def test_internal_stream_failure_after_n_parts(runtime_client: Any) -> None:
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"x", CustomAttributes="fault=internal-stream-failure;after=2;tokens=10"
    )
    got: list[bytes] = []
    with pytest.raises(EventStreamError) as info:
        _until_error(resp, got)
    assert len(got) == 2
    assert info.value.response["Error"]["Code"] == "InternalStreamFailure"


@pytest.mark.parametrize(
    ("attrs", "code", "message"),
    [
        ("fault=error-frame;after=2;tokens=10;code=Throttled;message=slow down", "Throttled", "slow down"),
        ("fault=error-frame;after=0", "InternalError", "The stream failed."),
    ],
)
def test_error_frame_after_n_parts(runtime_client: Any, attrs: str, code: str, message: str) -> None:
    """A ``:message-type: error`` frame: botocore raises EventStreamError with its code."""
    after = int(attrs.split("after=")[1].split(";")[0])
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"x", CustomAttributes=attrs
    )
    got: list[bytes] = []
    with pytest.raises(EventStreamError) as info:
        _until_error(resp, got)
    assert len(got) == after
    assert info.value.response["Error"] == {"Code": code, "Message": message}


def test_error_frame_on_the_wire(emulator: Any) -> None:
    raw = _raw_stream(emulator, "fault=error-frame;after=1;code=Boom.Bad-1")
    buf = EventStreamBuffer()
    buf.add_data(raw)
    messages = list(buf)
    assert [m.headers[":message-type"] for m in messages] == ["event", "error"]
    assert messages[1].headers[":error-code"] == "Boom.Bad-1"
    assert messages[1].headers[":error-message"] == "The stream failed."
    assert messages[1].payload == b""


def test_error_frame_code_must_look_like_a_code(runtime_client: Any) -> None:
    with pytest.raises(ClientError) as info:
        runtime_client.invoke_endpoint_with_response_stream(
            EndpointName="demo", Body=b"x", CustomAttributes="fault=error-frame;code=9 lives"
        )
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 400


def test_fault_after_the_last_part_fires_at_the_end(runtime_client: Any) -> None:
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"x", CustomAttributes="fault=model-stream-error;after=50;tokens=3"
    )
    got: list[bytes] = []
    with pytest.raises(EventStreamError):
        _until_error(resp, got)
    assert len(got) == 3


@pytest.mark.parametrize("after", [0, 3, 1500])
def test_cut_mid_frame_is_not_a_clean_end(runtime_client: Any, after: int) -> None:
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"x", CustomAttributes=f"fault=cut;after={after};parts=2000;part_size=64"
    )
    got: list[bytes] = []
    # botocore does not wrap it: urllib3's ProtocolError (IncompleteRead) escapes the iterator.
    with pytest.raises(urllib3.exceptions.ProtocolError):
        _until_error(resp, got)
    assert got == [bulk_part(i, 64) for i in range(after)]


def test_cut_on_invoke_endpoint(runtime_client: Any) -> None:
    resp = runtime_client.invoke_endpoint(EndpointName="echo", Body=b"y" * 5000, CustomAttributes="fault=cut")
    try:
        with pytest.raises(ResponseStreamingError):
            resp["Body"].read()
    finally:
        resp["Body"].close()


def test_stall_pauses_then_continues(runtime_client: Any) -> None:
    started = time.perf_counter()
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"x", CustomAttributes="fault=stall;after=2;seconds=0.4;tokens=4"
    )
    stamps = [(time.perf_counter() - started, e["PayloadPart"]["Bytes"]) for e in resp["Body"]]
    assert [p for _, p in stamps] == [t.encode() for t in demo_tokens("x", tokens=4)]
    assert stamps[1][0] < 0.3
    assert stamps[2][0] - stamps[1][0] >= 0.35


# --- HTTP faults and errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("throttle", 429, "ModelNotReadyException"),
        ("unavailable", 503, "ServiceUnavailable"),
        ("internal-failure", 500, "InternalFailure"),
        ("dependency", 530, "InternalDependencyException"),
    ],
)
@pytest.mark.parametrize("operation", ["invoke_endpoint", "invoke_endpoint_with_response_stream"])
def test_http_faults(runtime_client: Any, fault: str, status: int, code: str, operation: str) -> None:
    with pytest.raises(ClientError) as info:
        getattr(runtime_client, operation)(EndpointName="demo", Body=b"x", CustomAttributes=f"fault={fault}")
    response = info.value.response
    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["RequestId"]
    assert type(info.value).__name__ == code  # botocore's modeled exception class


@pytest.mark.parametrize("operation", ["invoke_endpoint", "invoke_endpoint_with_response_stream"])
def test_model_error_fields(runtime_client: Any, operation: str) -> None:
    with pytest.raises(ClientError) as info:
        getattr(runtime_client, operation)(
            EndpointName="demo", Body=b"x", CustomAttributes="fault=model-error;status=422;message=bad input"
        )
    response = info.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 422
    assert response["OriginalMessage"] == "bad input"
    assert response["LogStreamArn"] == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/demo"
    )
    assert 'Received client error (422) from primary with message "bad input"' in response["Error"]["Message"]
    assert isinstance(info.value, runtime_client.exceptions.ModelError)


def test_bad_knob_is_a_model_error(runtime_client: Any) -> None:
    with pytest.raises(ClientError) as info:
        runtime_client.invoke_endpoint(EndpointName="demo", Body=b"x", CustomAttributes="fault=explode")
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 400


@pytest.mark.parametrize("endpoint", ["demo", "echo"])
def test_custom_attributes_only_when_the_model_sets_them(runtime_client: Any, endpoint: str) -> None:
    # The service does not echo CustomAttributes: a response carries them only when the model
    # sets them, which the built-in models do on request (echo_attributes=1). Each body is read
    # to the end so its connection goes back to the pool.
    resp = runtime_client.invoke_endpoint(EndpointName=endpoint, Body=b"x", CustomAttributes="trace=abc-123")
    assert resp["Body"].read()
    assert "CustomAttributes" not in resp
    attrs = "trace=abc-123;echo_attributes=1"
    resp = runtime_client.invoke_endpoint(EndpointName=endpoint, Body=b"x", CustomAttributes=attrs)
    assert resp["Body"].read()
    assert resp["CustomAttributes"] == attrs
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, Body=b"x", CustomAttributes=attrs
    )
    assert _parts(resp)
    assert resp["CustomAttributes"] == attrs
    resp = runtime_client.invoke_endpoint(EndpointName=endpoint, Body=b"x")
    assert resp["Body"].read()
    assert "CustomAttributes" not in resp


def test_target_variant(runtime_client: Any) -> None:
    resp = runtime_client.invoke_endpoint(EndpointName="demo", Body=b"x", TargetVariant="AllTraffic")
    assert resp["Body"].read()
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    with pytest.raises(ClientError) as info:
        runtime_client.invoke_endpoint(EndpointName="demo", Body=b"x", TargetVariant="Canary")
    assert info.value.response["Error"]["Code"] == "ValidationError"


# --- raw access -----------------------------------------------------------------------------------


def _raw_stream(emulator: Any, custom_attributes: str) -> bytes:
    """The raw event stream body of a signed request (botocore signs, urllib3 sends)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{emulator.url}/endpoints/demo/invocations-response-stream"
    request = AWSRequest(
        method="POST",
        url=url,
        data=b"x",
        headers={"X-Amzn-SageMaker-Custom-Attributes": custom_attributes, "Content-Type": "text/plain"},
    )
    SigV4Auth(
        Credentials(emulator.access_key_id, emulator.secret_access_key), "sagemaker", emulator.region
    ).add_auth(request)
    with urllib3.PoolManager() as pool:
        resp = pool.request("POST", url, body=b"x", headers=dict(request.headers.items()))
        assert resp.status == 200
        return bytes(resp.data)


def test_one_http_chunk_per_frame(emulator: Any) -> None:
    import socket

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{emulator.url}/endpoints/demo/invocations-response-stream"
    request = AWSRequest(
        method="POST", url=url, data=b"x", headers={"X-Amzn-SageMaker-Custom-Attributes": "tokens=6"}
    )
    SigV4Auth(
        Credentials(emulator.access_key_id, emulator.secret_access_key), "sagemaker", emulator.region
    ).add_auth(request)
    head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
    with socket.create_connection((emulator.host, emulator.port), timeout=10) as sock:
        path = url.split(str(emulator.port), 1)[1]
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {emulator.host}:{emulator.port}\r\n{head}"
            f"Content-Length: 1\r\nConnection: close\r\n\r\nx".encode()
        )
        raw = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            raw += data
    header, _, body = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in header
    frames = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        frames.append(body[:size])
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]
    assert [_core.decode(f)[0].payload.decode() for f in frames] == demo_tokens("x", tokens=6)
    assert all(zlib.crc32(f[:8]) == int.from_bytes(f[8:12], "big") for f in frames)


def test_client_going_away_mid_stream_does_not_hurt_the_server(emulator: Any, runtime_client: Any) -> None:
    before = emulator.stats.parts
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="demo", Body=b"", CustomAttributes="parts=1000000;part_size=1000;delay_ms=0"
    )
    events = iter(resp["Body"])
    for _ in range(10):
        next(events)
    resp["Body"].close()
    # The server notices, stops producing (far fewer than a million parts) and keeps serving.
    deadline = time.monotonic() + 10
    while emulator.stats.parts == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 10 <= emulator.stats.parts - before < 1_000_000
    assert _parts(runtime_client.invoke_endpoint_with_response_stream(EndpointName="echo", Body=b"ok")) == [
        b"ok"
    ]
