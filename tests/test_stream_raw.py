"""The streaming transport against a scripted raw-socket server: framing, faults, connection state."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import boto3
import botocore.exceptions
import pytest
from _raw_server import (
    CUT,
    LAST_CHUNK,
    RESET,
    RawServer,
    Request,
    Response,
    chunk,
    error_frame,
    exception_frame,
    json_error,
    payload_frame,
    stream_response,
)
from botocore.config import Config
from sagestream import Client, FallbackWarning, ResponseStream, StreamMetrics, _transport
from sagestream.exceptions import (
    ConnectionLostError,
    DeadlineExceededError,
    FrameTooLargeError,
    InternalStreamFailure,
    InvalidFrameError,
    ModelError,
    ModelNotReadyException,
    ModelStreamError,
    ParamValidationError,
    ReadTimeoutError,
    ServiceUnavailable,
    StreamError,
    TransportError,
    TruncatedStreamError,
    ValidationError,
)

PARTS = [f"part-{i} ".encode() for i in range(20)]
FRAMES = [payload_frame(p) for p in PARTS]


_SESSION = boto3.Session(
    region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret"
)


def es_response(writes: list[object]) -> Response:
    return Response(headers={"Content-Type": "application/vnd.amazon.eventstream"}, writes=writes)


#: Set by the ``path`` fixture: clients get a botocore handler the request path does not know,
#: which sends them down botocore's own path (urllib3, then the Rust decoder).
_BOTOCORE_PATH = {"on": False}


def _observe(request: object, **_: object) -> None:
    """A user's before-send handler that only looks."""


def make_client(url: str, read_timeout: float = 10.0) -> Client:
    client = Client(
        _SESSION,
        endpoint_url=url,
        config=Config(retries={"max_attempts": 1}, read_timeout=read_timeout, connect_timeout=5),
    )
    if _BOTOCORE_PATH["on"]:
        client.runtime_client.meta.events.register("before-send", _observe)
        with pytest.warns(FallbackWarning, match=r"before-send handler .*_observe"):
            assert not client.fast_path
    return client


@pytest.fixture(params=["fast", "fallback"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through the request path and through botocore's own path."""
    monkeypatch.setitem(_BOTOCORE_PATH, "on", request.param == "fallback")
    return str(request.param)


def serve(resp: Response | list[Response]) -> RawServer:
    answers = resp if isinstance(resp, list) else [resp]
    count = iter(range(10**6))

    def handler(req: Request) -> Response:
        return answers[min(next(count), len(answers) - 1)]

    return RawServer(handler)


def collect(stream: Iterator[bytes]) -> tuple[list[bytes], BaseException | None]:
    got: list[bytes] = []
    try:
        for part in stream:
            got.append(part)
    except Exception as exc:
        return got, exc
    return got, None


def test_parts_headers_and_metrics(path: str) -> None:
    with serve(stream_response(FRAMES)) as srv:
        client = make_client(srv.url)
        assert client.fast_path is (path == "fast")
        stream = client.invoke_stream("ep", b"{}", content_type="application/json")
        assert isinstance(stream, ResponseStream)
        assert list(stream) == PARTS
        assert stream.content_type == "text/plain"
        assert stream.invoked_production_variant == "AllTraffic"
        assert stream.request_id == "req-1"
        m = stream.metrics
        assert m.parts == len(PARTS)
        assert m.bytes == sum(map(len, PARTS))
        assert m.time_to_first_part is not None
        assert m.time_to_first_part > 0
        assert m.duration is not None
        assert m.duration >= m.time_to_first_part
        assert stream.closed
        req = srv.requests[0]
        assert req.path == "/endpoints/ep/invocations-response-stream"
        assert req.headers["authorization"].startswith("AWS4-HMAC-SHA256")
        assert req.headers["content-type"] == "application/json"


def test_many_frames_in_one_chunk_and_one_frame_over_many_chunks(path: str) -> None:
    big = payload_frame(b"x" * 300_000)
    writes = [chunk(b"".join(FRAMES))]
    writes += [chunk(big[i : i + 7000]) for i in range(0, len(big), 7000)]
    writes.append(LAST_CHUNK)
    with serve(es_response(writes)) as srv:
        assert list(make_client(srv.url).invoke_stream("ep", b"")) == [*PARTS, b"x" * 300_000]


def test_connection_reused_after_complete_body(path: str) -> None:
    resp = stream_response(FRAMES[:3])
    resp.writes[-1] = b"0;ext=1\r\nX-Trailer: yes\r\n\r\n"
    with serve(resp) as srv:
        client = make_client(srv.url)
        for _ in range(3):
            stream = client.invoke_stream("ep", b"")
            assert list(stream) == PARTS[:3]
        assert srv.connections == 1


def test_bytes_after_the_body_close_the_connection() -> None:
    resp = stream_response(FRAMES[:2])
    resp.writes.append(b"garbage")
    with serve(resp) as srv:
        client = make_client(srv.url)
        assert list(client.invoke_stream("ep", b"")) == PARTS[:2]
        assert list(client.invoke_stream("ep", b"")) == PARTS[:2]
        assert srv.connections == 2


def test_close_during_iteration_closes_the_connection(path: str) -> None:
    resp = stream_response(FRAMES[:2], end=False)
    resp.writes.append(5.0)  # would stall; close() must not wait for it
    with serve([resp, stream_response(FRAMES[:1])]) as srv:
        client = make_client(srv.url)
        stream = client.invoke_stream("ep", b"")
        assert next(stream) == PARTS[0]
        stream.close()
        assert stream.closed
        assert list(stream) == []
        assert list(client.invoke_stream("ep", b"")) == PARTS[:1]
        assert srv.connections == 2


def test_context_manager_closes() -> None:
    resp = stream_response(FRAMES, end=False)
    resp.writes.append(5.0)
    with serve([resp, stream_response(FRAMES[:1])]) as srv:
        client = make_client(srv.url)
        with client.invoke_stream("ep", b"") as stream:
            assert next(stream) == PARTS[0]
        assert stream.closed
        assert list(client.invoke_stream("ep", b"")) == PARTS[:1]


def test_first_part_is_yielded_before_the_next_arrives(path: str) -> None:
    """No read-ahead: the server sends part 2 only after the client has seen part 1."""
    seen_first = threading.Event()

    def handler(req: Request) -> Response:
        return stream_response(FRAMES[:2])

    with RawServer(handler) as srv:
        original = srv._answer

        def answer(conn, resp):  # type: ignore[no-untyped-def]
            head = Response(
                status=resp.status, headers=resp.headers, writes=[resp.writes[0]], keep_alive=True
            )
            original(conn, head)
            assert seen_first.wait(10), "client never yielded the first part"
            for w in resp.writes[1:]:
                conn.sendall(w)
            return True

        srv._answer = answer  # type: ignore[method-assign]
        stream = make_client(srv.url).invoke_stream("ep", b"")
        assert next(stream) == PARTS[0]
        seen_first.set()
        assert list(stream) == [PARTS[1]]


@pytest.mark.parametrize(
    ("frame", "cls", "code"),
    [
        (exception_frame("ModelStreamError", "boom", "StreamBroken"), ModelStreamError, "StreamBroken"),
        (exception_frame("InternalStreamFailure", "oops"), InternalStreamFailure, None),
        (error_frame("ThrottlingException", "slow down"), StreamError, None),
    ],
)
def test_in_stream_errors_after_parts(path: str, frame: bytes, cls: type, code: str | None) -> None:
    with serve(stream_response([*FRAMES[:5], frame, *FRAMES[5:]])) as srv:
        got, exc = collect(make_client(srv.url).invoke_stream("ep", b""))
    assert got == PARTS[:5]
    assert type(exc) is cls
    assert isinstance(exc, botocore.exceptions.EventStreamError)
    if code is not None:
        assert exc.error_code == code  # type: ignore[union-attr]


def test_cut_mid_frame_is_truncated(path: str) -> None:
    half = FRAMES[3][:10]
    writes = [chunk(f) for f in FRAMES[:3]] + [chunk(half), 0.05, CUT]
    with serve(es_response(writes)) as srv:
        got, exc = collect(make_client(srv.url).invoke_stream("ep", b""))
    assert got == PARTS[:3]
    assert isinstance(exc, TruncatedStreamError)


def test_cut_mid_chunk_between_frames_is_connection_lost(path: str) -> None:
    body = b"".join(FRAMES[:4])
    writes = [f"{len(body) + 50:x}\r\n".encode() + body, 0.05, CUT]
    with serve(es_response(writes)) as srv:
        got, exc = collect(make_client(srv.url).invoke_stream("ep", b""))
    assert got == PARTS[:4]
    assert isinstance(exc, ConnectionLostError)


def test_missing_last_chunk_is_connection_lost(path: str) -> None:
    with serve(_no_last_chunk()) as srv:
        got, exc = collect(make_client(srv.url).invoke_stream("ep", b""))
    assert got == PARTS[:4]
    assert isinstance(exc, ConnectionLostError)


def _no_last_chunk() -> Response:
    resp = stream_response(FRAMES[:4], end=False)
    resp.writes += [0.05, CUT]
    return resp


def test_reset_mid_frame(path: str) -> None:
    writes = [chunk(f) for f in FRAMES[:3]] + [0.2, chunk(FRAMES[3][:10]), 0.2, RESET]
    with serve(es_response(writes)) as srv:
        got, exc = collect(make_client(srv.url).invoke_stream("ep", b""))
    assert got == PARTS[:3]
    assert isinstance(exc, (TruncatedStreamError, ConnectionLostError))


def test_read_timeout(path: str) -> None:
    resp = stream_response(FRAMES[:2], end=False)
    resp.writes.append(3.0)
    with serve(resp) as srv:
        got, exc = collect(make_client(srv.url, read_timeout=0.3).invoke_stream("ep", b""))
    assert got == PARTS[:2]
    assert isinstance(exc, ReadTimeoutError)
    assert isinstance(exc, TimeoutError)
    assert isinstance(exc, TransportError)


def test_deadline(path: str) -> None:
    writes: list[object] = []
    for f in FRAMES[:10]:
        writes += [chunk(f), 0.15]
    writes.append(LAST_CHUNK)
    with serve(es_response(writes)) as srv:
        stream = make_client(srv.url).invoke_stream("ep", b"", deadline=0.5)
        got, exc = collect(stream)
    assert 1 <= len(got) < 10
    assert got == PARTS[: len(got)]
    assert isinstance(exc, DeadlineExceededError)
    assert stream.closed


def test_deadline_must_be_positive() -> None:
    with pytest.raises(ParamValidationError, match="deadline"):
        make_client("http://127.0.0.1:9").invoke_stream("ep", b"", deadline=0)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (b"fffffffffffffffff\r\n", InvalidFrameError),
        (b"zz\r\n", InvalidFrameError),
        (b"5\r\nabcdeXX", InvalidFrameError),
        # hyper reads past a NUL in a chunk extension and a padded size line, and then meets
        # the end of the connection.
        (b"4;\x00\r\n", ConnectionLostError),
        (b"1" + b" " * 5000, ConnectionLostError),
    ],
)
def test_malformed_chunking(bad: bytes, error: type) -> None:
    writes = [chunk(FRAMES[0]), bad, 0.05, CUT]
    with serve(es_response(writes)) as srv:
        got, exc = collect(make_client(srv.url).invoke_stream("ep", b""))
    assert got == PARTS[:1]
    assert type(exc) is error
    if error is InvalidFrameError:
        assert "chunk" in str(exc)
    assert len(srv.requests) == 1


def test_huge_length_prefix_is_refused_on_the_prelude(path: str) -> None:
    import struct
    import zlib

    prelude = struct.pack(">II", 200 * 1024 * 1024, 0)
    hostile = prelude + struct.pack(">I", zlib.crc32(prelude))
    writes = [chunk(FRAMES[0]), chunk(hostile), 5.0]
    with serve(es_response(writes)) as srv:
        got, exc = collect(make_client(srv.url).invoke_stream("ep", b""))
    assert got == PARTS[:1]
    assert isinstance(exc, FrameTooLargeError)


def test_content_length_body(path: str) -> None:
    body = b"".join(FRAMES)
    resp = Response(
        headers={"Content-Type": "application/vnd.amazon.eventstream"},
        writes=[body],
        chunked=False,
        content_length=len(body),
    )
    with serve(resp) as srv:
        client = make_client(srv.url)
        assert list(client.invoke_stream("ep", b"")) == PARTS
        assert list(client.invoke_stream("ep", b"")) == PARTS
        assert srv.connections == 1


def test_content_length_body_cut_short(path: str) -> None:
    body = b"".join(FRAMES)
    resp = Response(
        headers={"Content-Type": "application/vnd.amazon.eventstream"},
        writes=[body[:-5], 0.05, CUT],
        chunked=False,
        content_length=len(body),
    )
    with serve(resp) as srv:
        got, exc = collect(make_client(srv.url).invoke_stream("ep", b""))
    assert got == PARTS[:-1]
    assert isinstance(exc, (TruncatedStreamError, ConnectionLostError))


def test_connection_close_header_is_honoured(path: str) -> None:
    resp = stream_response(FRAMES[:2], keep_alive=False)
    with serve(resp) as srv:
        client = make_client(srv.url)
        for _ in range(2):
            stream = client.invoke_stream("ep", b"")
            assert list(stream) == PARTS[:2]
        assert srv.connections == 2


def test_body_until_close() -> None:
    resp = Response(
        headers={"Content-Type": "application/vnd.amazon.eventstream"},
        writes=[b"".join(FRAMES[:5]), CUT],
        chunked=False,
        keep_alive=False,
    )
    with serve(resp) as srv:
        assert list(make_client(srv.url).invoke_stream("ep", b"")) == PARTS[:5]


@pytest.mark.parametrize(
    ("resp", "cls"),
    [
        (json_error(400, "ValidationError", "Endpoint ep not found"), ValidationError),
        (json_error(429, "ModelNotReadyException", "not ready"), ModelNotReadyException),
        (json_error(503, "ServiceUnavailable", "later"), ServiceUnavailable),
    ],
)
def test_http_errors_are_typed(resp: Response, cls: type) -> None:
    with serve(resp) as srv, pytest.raises(cls) as info:
        make_client(srv.url).invoke_stream("ep", b"")
    # The typed error is botocore's ClientError too, with botocore's parsed answer.
    assert isinstance(info.value, botocore.exceptions.ClientError)
    assert info.value.response["Error"]["Code"] == cls.code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == resp.status


def test_model_error_keeps_every_field() -> None:
    resp = json_error(
        424,
        "ModelError",
        "Received client error (400) from primary",
        OriginalStatusCode=400,
        OriginalMessage='{"error": "bad input"}',
        LogStreamArn="arn:aws:logs:us-east-1:123:log-group:/aws/sagemaker/Endpoints/ep",
    )
    with serve(resp) as srv, pytest.raises(ModelError) as info:
        make_client(srv.url).invoke_stream("ep", b"")
    err = info.value
    assert err.original_status_code == 400
    assert err.original_message == '{"error": "bad input"}'
    assert err.log_stream_arn is not None
    assert err.log_stream_arn.startswith("arn:aws:logs")
    assert err.status_code == 424


def test_invalid_params_send_nothing() -> None:
    with serve(stream_response(FRAMES)) as srv:
        client = make_client(srv.url)
        with pytest.raises(ParamValidationError):
            client.invoke_stream("bad_name", b"")
        with pytest.raises(ParamValidationError):
            client.invoke_stream("ep", b"", custom_attributes="\u00e9")
        assert srv.requests == []


def test_request_headers_for_every_parameter() -> None:
    with serve(stream_response(FRAMES[:1])) as srv:
        stream = make_client(srv.url).invoke_stream(
            "ep",
            b"x",
            content_type="application/json",
            accept="text/event-stream",
            custom_attributes="a=1",
            target_variant="v1",
            target_container_hostname="c1",
            inference_id="inf-1",
            inference_component_name="ic1",
            session_id="sess-1",
        )
        assert list(stream) == PARTS[:1]
        h = srv.requests[0].headers
    assert h["x-amzn-sagemaker-accept"] == "text/event-stream"
    assert h["x-amzn-sagemaker-custom-attributes"] == "a=1"
    assert h["x-amzn-sagemaker-target-variant"] == "v1"
    assert h["x-amzn-sagemaker-target-container-hostname"] == "c1"
    assert h["x-amzn-sagemaker-inference-id"] == "inf-1"
    assert h["x-amzn-sagemaker-inference-component"] == "ic1"
    assert h["x-amzn-sagemaker-session-id"] == "sess-1"


def test_invoke_with_sessions() -> None:
    body = b'{"generated_text": "hi"}'
    resp = Response(
        headers={
            "Content-Type": "application/json",
            "x-Amzn-Invoked-Production-Variant": "AllTraffic",
            "X-Amzn-SageMaker-Custom-Attributes": "k=v",
            "X-Amzn-SageMaker-New-Session-Id": "sess-42; Expires=2026-11-23T10:00:00Z",
            "X-Amzn-SageMaker-Closed-Session-Id": "sess-7",
        },
        writes=[body],
        chunked=False,
        content_length=len(body),
    )
    with serve(resp) as srv:
        result = make_client(srv.url).invoke("ep", "{}", session_id="NEW_SESSION", target_model="m.tar.gz")
        h = srv.requests[0].headers
    assert result.body == body
    assert result.content_type == "application/json"
    assert result.invoked_production_variant == "AllTraffic"
    assert result.custom_attributes == "k=v"
    assert result.new_session_id == "sess-42"
    assert result.new_session_expires is not None
    assert result.new_session_expires.isoformat() == "2026-11-23T10:00:00+00:00"
    assert result.closed_session_id == "sess-7"
    assert h["x-amzn-sagemaker-session-id"] == "NEW_SESSION"
    assert h["x-amzn-sagemaker-target-model"] == "m.tar.gz"


def test_invoke_error_typed() -> None:
    with (
        serve(json_error(424, "ModelError", "bad", OriginalStatusCode=500)) as srv,
        pytest.raises(ModelError) as info,
    ):
        make_client(srv.url).invoke("ep", b"")
    assert info.value.original_status_code == 500


def test_stream_metrics_from_the_rust_counters() -> None:
    class Stats:
        parts, bytes, first_part_at, last_part_at, max_gap, ended_at = 3, 12, 10.5, 11.5, 0.8, 12.0

    m = StreamMetrics.of(Stats(), started=10.0)
    assert m.time_to_first_part == pytest.approx(0.5)
    assert (m.parts, m.bytes) == (3, 12)
    assert m.max_gap == pytest.approx(0.8)
    assert m.duration == pytest.approx(2.0)
    assert m.parts_per_second == pytest.approx(1.5)
    assert StreamMetrics(started=10.0).parts_per_second is None


def test_iterating_a_temporary_stream(path: str) -> None:
    """``for part in client.invoke_stream(...)`` holds no reference to the ResponseStream."""
    import gc

    with serve(stream_response(FRAMES)) as srv:
        got = []
        for part in make_client(srv.url).invoke_stream("ep", b""):
            if not got:  # a collection mid-stream would find a stream nothing holds
                gc.collect()
            got.append(part)
    assert got == PARTS


class _NoRead1:
    """A urllib3 response seen through an older API: no read1, only read_chunked/stream."""

    def __init__(self, raw: object) -> None:
        self._raw = raw

    def __getattr__(self, name: str) -> object:
        if name == "read1":
            raise AttributeError(name)
        return getattr(self._raw, name)


@pytest.mark.parametrize("chunked", [True, False])
def test_fallback_without_read1(monkeypatch: pytest.MonkeyPatch, chunked: bool) -> None:
    """Older urllib3: read_chunked() for chunked bodies, stream() otherwise."""
    original = _transport.open_body

    def open_body(raw, **kw):  # type: ignore[no-untyped-def]
        return original(_NoRead1(raw), **kw)

    monkeypatch.setattr("sagestream._client.open_body", open_body)
    monkeypatch.setitem(_BOTOCORE_PATH, "on", True)
    frames = [*FRAMES[:4], exception_frame("ModelStreamError", "boom", "StreamBroken")]
    if chunked:
        resp = stream_response(frames)
    else:
        body = b"".join(frames)
        resp = Response(
            headers={"Content-Type": "application/vnd.amazon.eventstream"},
            writes=[body],
            chunked=False,
            content_length=len(body),
        )
    with serve(resp) as srv:
        client = make_client(srv.url)
        assert not client.fast_path
        got, exc = collect(client.invoke_stream("ep", b""))
    assert got == PARTS[:4]
    assert isinstance(exc, ModelStreamError)
    assert exc.error_code == "StreamBroken"


def _peer_closed(conn: socket.socket, within: float = 5.0) -> bool:
    """Whether the client closed its end of the server's connection ``conn`` (the server closes
    its own end only when a write fails because the client went away)."""
    if conn.fileno() == -1:
        return True
    conn.settimeout(within)
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        # A socket closed with bytes still unread in it ends with a reset, not a FIN: whether
        # the client had read all the server sent before it closed is a matter of timing.
        return True
    except TimeoutError:
        return False
    except OSError:
        # Closed meanwhile by the server's thread, which it does once the client has gone.
        return conn.fileno() == -1


def test_abandoned_stream_closes_its_connection(path: str) -> None:
    import gc
    import warnings

    resp = stream_response(FRAMES, end=False)
    resp.writes.append(5.0)
    with serve(resp) as srv:
        stream = make_client(srv.url).invoke_stream("ep", b"")
        assert next(stream) == PARTS[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            del stream
            gc.collect()
        assert _peer_closed(srv._conns[0])


def test_close_from_another_thread_interrupts_a_blocked_read(path: str) -> None:
    resp = stream_response(FRAMES[:1], end=False)
    resp.writes.append(10.0)
    with serve(resp) as srv:
        stream = make_client(srv.url).invoke_stream("ep", b"")
        outcome: list[object] = []

        def reader() -> None:
            got, exc = collect(stream)
            outcome.extend([got, exc])

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.3)
        stream.close()
        t.join(5)
        assert not t.is_alive(), "close() did not interrupt the blocked read"
    assert outcome[0] == PARTS[:1]
    assert outcome[1] is None or isinstance(outcome[1], (TransportError, TruncatedStreamError))


def test_the_observer_is_told_of_every_attempt() -> None:
    seen: list[tuple[object, ...]] = []

    class Observer:
        def attempt_started(self, url: str, attempt: int) -> None:
            seen.append(("started", attempt))

        def attempt_ended(self, url: str, attempt: int, failure: str | None, retry_in: float | None) -> None:
            seen.append(("ended", attempt, failure, retry_in is not None))

    answers = [json_error(503, "ServiceUnavailable", "later"), stream_response(FRAMES[:2])]
    with serve(answers) as srv:
        client = Client(
            _SESSION,
            endpoint_url=srv.url,
            config=Config(retries={"total_max_attempts": 2, "mode": "standard"}),
            observer=Observer(),
        )
        assert list(client.invoke_stream("ep", b"")) == PARTS[:2]
    assert seen == [
        ("started", 1),
        ("ended", 1, "HTTP 503", True),
        ("started", 2),
        ("ended", 2, None, False),
    ]
