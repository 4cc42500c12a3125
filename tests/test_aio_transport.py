"""AsyncClient's HTTP side against a scripted loopback server: signing, retries, errors, transport
failures, cancellation and the event loop never blocking."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import boto3
import botocore.exceptions
import pytest
import sagestream
from _tls import loopback_tls
from botocore.config import Config
from sagestream._core import encode

Handler = Callable[["Exchange"], Awaitable[None]]


def part(payload: bytes) -> bytes:
    return encode(
        {":message-type": "event", ":event-type": "PayloadPart", ":content-type": "application/octet-stream"},
        payload,
    )


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
    b"X-Amzn-SageMaker-Content-Type: text/plain\r\nx-Amzn-Invoked-Production-Variant: AllTraffic\r\n"
    b"X-Amzn-SageMaker-Custom-Attributes: a=1\r\nx-amzn-RequestId: req-1\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def json_error(status: int, reason: str, body: dict[str, Any], extra: bytes = b"") -> bytes:
    data = json.dumps(body).encode()
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nx-amzn-RequestId: req-e\r\n%s"
        b"Content-Length: %d\r\n\r\n%s" % (status, reason.encode(), extra, len(data), data)
    )


class Exchange:
    """One request as the server saw it, and the connection to answer it on."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.request_line = b""
        self.headers: dict[str, str] = {}
        self.body = b""

    async def read_request(self) -> bool:
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return False
        lines = head.split(b"\r\n")
        self.request_line = lines[0]
        for line in lines[1:]:
            if b":" in line:
                name, _, value = line.partition(b":")
                self.headers[name.decode().lower()] = value.decode().strip()
        length = int(self.headers.get("content-length", "0"))
        self.body = await self.reader.readexactly(length) if length else b""
        return True

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class ScriptedServer:
    """Answers each request with the next handler of a script (the last one repeats)."""

    def __init__(self, *handlers: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handlers = list(handlers)
        self.tls = tls
        self.requests: list[Exchange] = []
        self.disconnected = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                exchange = Exchange(reader, writer)
                if not await exchange.read_request():
                    self.disconnected.set()
                    return
                self.requests.append(exchange)
                handler = self.handlers[min(len(self.requests), len(self.handlers)) - 1]
                await handler(exchange)
        except ConnectionError:
            self.disconnected.set()
        finally:
            writer.close()


def stream_of(*payloads: bytes, end: bool = True) -> Handler:
    async def handler(ex: Exchange) -> None:
        await ex.send(
            STREAM_HEAD + b"".join(chunk(part(p)) for p in payloads) + (b"0\r\n\r\n" if end else b"")
        )

    return handler


def client_for(url: str, **config: Any) -> sagestream.AsyncClient:
    session = boto3.Session(
        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-west-2"
    )
    # botocore: max_attempts counts retries, so 3 requests at most.
    options: dict[str, Any] = {"retries": {"max_attempts": 2, "mode": "standard"}, **config}
    return sagestream.AsyncClient(session, endpoint_url=url, config=Config(**options))


@pytest.fixture
async def server_and_client(request: pytest.FixtureRequest) -> AsyncIterator[tuple[ScriptedServer, Any]]:
    handlers = request.param if isinstance(request.param, tuple) else (request.param,)
    async with ScriptedServer(*handlers) as server, client_for(server.url) as client:
        yield server, client


async def read_into(got: list[bytes], client: sagestream.AsyncClient, **kwargs: Any) -> None:
    """Append every part to ``got`` (kept when the stream then fails)."""
    async with client.invoke_stream("ep", b"x", **kwargs) as stream:
        async for p in stream:
            got.append(p)


async def collect(client: sagestream.AsyncClient, **kwargs: Any) -> list[bytes]:
    async with client.invoke_stream("ep", b"{}", **kwargs) as stream:
        return [p async for p in stream]


# --- requests ---------------------------------------------------------------------------------


async def test_stream_request_is_signed_and_headers_are_exposed() -> None:
    async with ScriptedServer(stream_of(b"a", b"bc")) as server, client_for(server.url) as client:
        async with client.invoke_stream(
            "my-endpoint",
            b'{"x":1}',
            content_type="application/json",
            accept="text/plain",
            custom_attributes="k=v",
            inference_id="id-1",
        ) as stream:
            parts = [p async for p in stream]
        assert parts == [b"a", b"bc"]
        assert stream.content_type == "text/plain"
        assert stream.invoked_production_variant == "AllTraffic"
        assert stream.custom_attributes == "a=1"
        assert stream.request_id == "req-1"
        assert stream.metrics.parts == 2
        assert stream.metrics.bytes == 3
        assert stream.metrics.time_to_first_part is not None
        assert stream.closed
    (ex,) = server.requests
    assert ex.request_line == b"POST /endpoints/my-endpoint/invocations-response-stream HTTP/1.1"
    assert ex.body == b'{"x":1}'
    auth = ex.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    assert "/us-west-2/sagemaker/aws4_request" in auth
    assert ex.headers["x-amzn-sagemaker-accept"] == "text/plain"
    assert ex.headers["x-amzn-sagemaker-custom-attributes"] == "k=v"
    assert ex.headers["x-amzn-sagemaker-inference-id"] == "id-1"
    assert ex.headers["content-type"] == "application/json"


async def test_signature_matches_botocore_for_the_same_request() -> None:
    """The signed request is botocore's own: compare with a stock boto3 client's, byte for byte."""
    async with ScriptedServer(stream_of(b"x")) as server, client_for(server.url) as client:
        await collect(client)
        ours = server.requests[0]
        session = boto3.Session(
            aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-west-2"
        )
        stock = session.client(
            "sagemaker-runtime",
            endpoint_url=server.url,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),  # client_for's
        )
        captured: dict[str, Any] = {}

        def grab(request: Any, **_: Any) -> None:
            if not captured:  # the first attempt's, as the one request sagestream sent
                captured.update(request.headers)
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=server.url)

        stock.meta.events.register("before-send", grab)
        with pytest.raises(botocore.exceptions.ConnectionClosedError):
            await asyncio.to_thread(stock.invoke_endpoint_with_response_stream, EndpointName="ep", Body=b"{}")
    stock_headers = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in captured.items()}
    # Every header botocore would send, with the same value, but for the ones that depend on
    # the moment or the call (date, signature, invocation id, user agent feature ids).
    varying = {"authorization", "x-amz-date", "amz-sdk-invocation-id", "user-agent"}
    for name, value in stock_headers.items():
        if name not in varying:
            assert ours.headers[name] == value, name
    assert "x-amz-date" in ours.headers
    assert ours.headers["user-agent"].startswith("Boto3/")

    def scope(auth: str) -> tuple[str, str]:
        credential = auth.split("Credential=")[1].split(",")[0].split("/")
        signed = auth.split("SignedHeaders=")[1].split(",")[0]
        return "/".join([credential[0], *credential[2:]]), signed

    assert scope(ours.headers["authorization"]) == scope(stock_headers["authorization"])


async def test_connection_is_reused_after_a_complete_stream() -> None:
    async with (
        ScriptedServer(stream_of(b"one"), stream_of(b"two")) as server,
        client_for(server.url) as client,
    ):
        assert await collect(client) == [b"one"]
        assert await collect(client) == [b"two"]
        assert len(server.requests) == 2
        assert server.requests[0].writer is server.requests[1].writer


# --- service errors and retries --------------------------------------------------------------


async def test_model_error_keeps_every_field() -> None:
    body = {
        "Message": "boom",
        "OriginalStatusCode": 500,
        "OriginalMessage": "container said no",
        "LogStreamArn": "arn:aws:logs:us-west-2:1:log-group:x",
    }

    async def handler(ex: Exchange) -> None:
        await ex.send(json_error(424, "Failed Dependency", body, b"x-amzn-ErrorType: ModelError\r\n"))

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        with pytest.raises(sagestream.ModelError) as info:
            await collect(client)
    err = info.value
    assert isinstance(err, botocore.exceptions.ClientError)
    assert err.original_status_code == 500
    assert err.original_message == "container said no"
    assert err.log_stream_arn == body["LogStreamArn"]
    assert err.status_code == 424
    assert len(server.requests) == 1  # not retryable


async def test_invoke_returns_the_whole_answer() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-Amzn-Invoked-Production-Variant: v1\r\n"
            b"X-Amzn-SageMaker-New-Session-Id: sess-1; Expires=2030-01-01T00:00:00Z\r\n"
            b'Content-Length: 7\r\n\r\n{"a":1}'
        )

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        result = await client.invoke("ep", b"x", session_id="NEW_SESSION")
    assert result.body == b'{"a":1}'
    assert result.content_type == "application/json"
    assert result.invoked_production_variant == "v1"
    assert result.new_session_id == "sess-1"
    assert result.new_session_expires is not None
    assert result.new_session_expires.year == 2030
    assert server.requests[0].request_line.startswith(b"POST /endpoints/ep/invocations ")
    assert server.requests[0].headers["x-amzn-sagemaker-session-id"] == "NEW_SESSION"


async def test_5xx_is_retried_per_config_then_succeeds() -> None:
    async def unavailable(ex: Exchange) -> None:
        await ex.send(
            json_error(
                503, "Service Unavailable", {"Message": "busy"}, b"x-amzn-ErrorType: ServiceUnavailable\r\n"
            )
        )

    async with ScriptedServer(unavailable, stream_of(b"ok")) as server, client_for(server.url) as client:
        assert await collect(client) == [b"ok"]
    assert len(server.requests) == 2
    assert server.requests[1].headers["amz-sdk-request"].startswith("attempt=2")


async def test_retries_stop_at_max_attempts_with_the_typed_error() -> None:
    async def unavailable(ex: Exchange) -> None:
        await ex.send(
            json_error(
                503, "Service Unavailable", {"Message": "busy"}, b"x-amzn-ErrorType: ServiceUnavailable\r\n"
            )
        )

    async with ScriptedServer(unavailable) as server, client_for(server.url) as client:
        with pytest.raises(sagestream.ServiceUnavailable):
            await collect(client)
    assert len(server.requests) == 3


async def test_adaptive_mode_rate_limiter_runs_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """adaptive mode: botocore's rate limiter sees every send, in a worker thread (it may sleep)."""
    import threading

    from botocore.retries.adaptive import ClientRateLimiter

    seen: list[tuple[bool, bool]] = []
    original = ClientRateLimiter.on_sending_request

    @functools.wraps(original)  # botocore's own handler, seen: the client stays on the request path
    def spy(self: ClientRateLimiter, request: Any, **kwargs: Any) -> None:
        seen.append((threading.current_thread() is threading.main_thread(), self._enabled))
        original(self, request, **kwargs)

    monkeypatch.setattr(ClientRateLimiter, "on_sending_request", spy)

    async def throttled(ex: Exchange) -> None:
        await ex.send(
            json_error(
                400, "Bad Request", {"message": "slow down"}, b"x-amzn-ErrorType: ThrottlingException\r\n"
            )
        )

    async with (
        ScriptedServer(throttled, stream_of(b"ok")) as server,
        client_for(server.url, retries={"max_attempts": 2, "mode": "adaptive"}) as client,
    ):
        assert threading.current_thread() is threading.main_thread()
        assert await collect(client) == [b"ok"]
    assert len(server.requests) == 2
    # Both sends went through the limiter off the loop's thread; the throttle enabled it.
    assert seen == [(False, False), (False, True)]


async def test_before_send_handlers_see_each_request() -> None:
    async with ScriptedServer(stream_of(b"ok")) as server, client_for(server.url) as client:
        runtime = client.runtime_client
        urls: list[str] = []
        runtime.meta.events.register("before-send", lambda request, **_: urls.append(request.url))
        with pytest.warns(sagestream.FallbackWarning, match="before-send handler is registered"):
            assert await collect(client) == [b"ok"]
        assert urls == [f"{server.url}/endpoints/ep/invocations-response-stream"]

        runtime.meta.events.register("before-send", lambda request, **_: object())
        with pytest.raises(NotImplementedError, match="sends every request itself"):
            await collect(client)
    assert len(server.requests) == 1


async def test_a_stubbed_client_is_refused_not_ignored() -> None:
    from botocore.stub import Stubber

    async with ScriptedServer(stream_of(b"ok")) as server, client_for(server.url) as client:
        with Stubber(client.runtime_client) as stubber:
            stubber.add_response("invoke_endpoint", {"Body": b"stubbed"})
            with pytest.raises(NotImplementedError, match="before-call"):
                await client.invoke("ep", b"x")
    assert server.requests == []


async def test_connection_refused_is_a_connect_error_after_botocores_retries() -> None:
    async with ScriptedServer(stream_of(b"x")) as server:
        url = server.url
    async with client_for(url, retries={"max_attempts": 2, "mode": "standard"}) as client:
        with pytest.raises(sagestream.ConnectError) as info:
            await collect(client)
    assert info.value.kind == "unreachable"
    assert isinstance(info.value, sagestream.TransportError)
    # What botocore's retry handler was shown, and judged retryable.
    assert isinstance(info.value.__cause__, botocore.exceptions.EndpointConnectionError)


async def test_bad_parameters_fail_before_sending() -> None:
    async with ScriptedServer(stream_of(b"x")) as server, client_for(server.url) as client:
        with pytest.raises(sagestream.ParamValidationError):
            await collect(client, custom_attributes="é")
        with pytest.raises(sagestream.ParamValidationError):
            await client.invoke("bad name!", b"x")
        with pytest.raises(sagestream.ParamValidationError):
            await client.invoke_async("ep", input_location="s3://b/k", request_ttl_seconds=59)
        with pytest.raises(sagestream.ParamValidationError):
            client.invoke_stream("ep", b"x", deadline=0)
    assert server.requests == []


# --- the stream ends badly -------------------------------------------------------------------


async def test_error_frame_after_parts_in_one_read() -> None:
    error = encode(
        {
            ":message-type": "exception",
            ":exception-type": "ModelStreamError",
            ":content-type": "application/json",
        },
        b'{"Message":"model broke","ErrorCode":"StreamBroken"}',
    )

    async def handler(ex: Exchange) -> None:
        # The error frame arrives with the parts; the connection then stays open: the error must
        # still be raised at once, after the parts.
        await ex.send(STREAM_HEAD + chunk(part(b"1") + part(b"2") + error))
        await ex.reader.read()

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        got: list[bytes] = []
        with pytest.raises(sagestream.ModelStreamError) as info:
            await asyncio.wait_for(read_into(got, client), 10)
        assert got == [b"1", b"2"]
        assert info.value.error_code == "StreamBroken"
        await asyncio.wait_for(server.disconnected.wait(), 5)


async def test_cut_connection_inside_a_frame_is_truncated() -> None:
    async def handler(ex: Exchange) -> None:
        frame = part(b"second")
        await ex.send(STREAM_HEAD + chunk(part(b"first")) + b"%x\r\n" % len(frame) + frame[:10])
        ex.writer.transport.abort()

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        got: list[bytes] = []
        with pytest.raises(sagestream.TruncatedStreamError):
            await asyncio.wait_for(read_into(got, client), 10)
        assert got == [b"first"]


async def test_cut_connection_between_frames_is_connection_lost() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.send(STREAM_HEAD + chunk(part(b"first")))
        await asyncio.sleep(0.1)
        ex.writer.transport.abort()

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        got: list[bytes] = []
        with pytest.raises(sagestream.ConnectionLostError):
            await asyncio.wait_for(read_into(got, client), 10)
        assert got == [b"first"]


async def test_body_ending_inside_a_frame_is_truncated() -> None:
    async def handler(ex: Exchange) -> None:
        frame = part(b"second")
        await ex.send(STREAM_HEAD + chunk(part(b"first")) + chunk(frame[:10]) + b"0\r\n\r\n")

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        got: list[bytes] = []
        with pytest.raises(sagestream.TruncatedStreamError):
            await asyncio.wait_for(read_into(got, client), 10)
        assert got == [b"first"]


#: Marks a test response to be followed by a connection reset.
CUT = b"<reset>"
HOSTILE_PRELUDE = b"\xff\xff\xff\xff\x00\x00\x00\x00" + zlib.crc32(
    b"\xff\xff\xff\xff\x00\x00\x00\x00"
).to_bytes(4, "big")


def _corrupt(frame: bytes) -> bytes:
    """``frame`` with one payload bit flipped: its message CRC no longer matches."""
    return frame[:-5] + bytes([frame[-5] ^ 0x01]) + frame[-4:]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        # A prelude claiming 4 GiB (valid prelude CRC): refused on its 12 bytes.
        (chunk(HOSTILE_PRELUDE), sagestream.FrameTooLargeError),
        (chunk(_corrupt(part(b"second"))), sagestream.ChecksumMismatchError),
        # Half a frame, then the connection is reset: a truncated stream.
        (b"%x\r\n" % len(part(b"second")) + part(b"second")[:9] + CUT, sagestream.TruncatedStreamError),
    ],
)
async def test_bad_bytes_after_parts_are_typed_errors(bad: bytes, error: type | None) -> None:
    """Whatever the server sends after good parts: those parts, then a sagestream error (never
    a raw aiohttp exception, a hang or a silent end)."""

    async def handler(ex: Exchange) -> None:
        await ex.send(STREAM_HEAD)
        await asyncio.sleep(0.1)  # the response has begun; then the good part and the bad bytes
        data, cut = (bad[: -len(CUT)], True) if bad.endswith(CUT) else (bad, False)
        await ex.send(chunk(part(b"first")) + data)  # in one segment, so in one read
        if cut:
            ex.writer.transport.abort()
        else:
            await ex.reader.read()

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        got: list[bytes] = []
        with pytest.raises(sagestream.SageStreamError) as info:
            await asyncio.wait_for(read_into(got, client), 10)
        assert got == [b"first"]
        if error is not None:
            assert type(info.value) is error
        await asyncio.wait_for(server.disconnected.wait(), 5)


async def test_malformed_chunking_after_parts_is_invalid_framing() -> None:
    """Bad HTTP chunk framing once the body has begun: the parts before it, then
    InvalidFrameError naming the chunking (as on the sync client), never a hang."""

    async def handler(ex: Exchange) -> None:
        await ex.send(STREAM_HEAD)
        await asyncio.sleep(0.1)
        await ex.send(chunk(part(b"first")) + b"zz\r\n" + part(b"second") + b"\r\n0\r\n\r\n")
        await ex.reader.read()

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        got: list[bytes] = []
        with pytest.raises(sagestream.InvalidFrameError, match="chunk"):
            await asyncio.wait_for(read_into(got, client), 10)
        assert got == [b"first"]
    assert len(server.requests) == 1


async def test_malformed_chunking_in_a_whole_answer_is_an_error_not_a_hang() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        await asyncio.sleep(0.1)
        await ex.send(chunk(b'{"a":') + b"zz\r\n1}\r\n0\r\n\r\n")
        await ex.reader.read()

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        with pytest.raises(sagestream.InvalidFrameError, match="chunk"):
            await asyncio.wait_for(client.invoke("ep", b"x"), 10)
    assert len(server.requests) == 1


async def test_read_timeout_mid_stream() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.send(STREAM_HEAD + chunk(part(b"first")))
        await ex.reader.read()

    async with ScriptedServer(handler) as server, client_for(server.url, read_timeout=0.3) as client:
        got: list[bytes] = []
        with pytest.raises(sagestream.ReadTimeoutError):
            await asyncio.wait_for(read_into(got, client), 10)
        assert got == [b"first"]


async def test_deadline_bounds_the_whole_stream() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.send(STREAM_HEAD)
        for _ in range(100):
            await ex.send(chunk(part(b"tick")))
            await asyncio.sleep(0.05)
        await ex.reader.read()

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        got: list[bytes] = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(sagestream.DeadlineExceededError):
            await asyncio.wait_for(read_into(got, client, deadline=0.4), 10)
        assert 0.3 < loop.time() - started < 3
        assert 2 <= len(got) < 100
        await asyncio.wait_for(server.disconnected.wait(), 5)


# --- cancellation and the event loop ---------------------------------------------------------


async def test_cancelling_the_consumer_closes_the_connection() -> None:
    first_part = asyncio.Event()

    async def handler(ex: Exchange) -> None:
        await ex.send(STREAM_HEAD + chunk(part(b"first")))
        await ex.reader.read()  # returns b"" when the client closes the connection

    async with ScriptedServer(handler) as server, client_for(server.url) as client:

        async def consume() -> None:
            stream = await client.invoke_stream("ep", b"x")  # no context manager on purpose
            async for _ in stream:
                first_part.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first_part.wait(), 5)
        assert not server.disconnected.is_set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(server.disconnected.wait(), 5)


async def test_leaving_the_context_early_closes_the_connection() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.send(STREAM_HEAD + chunk(part(b"first")) + chunk(part(b"second")))
        await ex.reader.read()

    async with ScriptedServer(handler) as server, client_for(server.url) as client:
        async with client.invoke_stream("ep", b"x") as stream:
            assert await stream.__anext__() == b"first"
        assert stream.closed
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        await asyncio.wait_for(server.disconnected.wait(), 5)


def slow_refreshing_session(refresh_threads: list[str], seconds: float) -> boto3.Session:
    """A session whose credentials are expired and take ``seconds`` to refresh, like IMDS or STS."""
    import threading
    from datetime import datetime, timedelta, timezone

    from botocore.credentials import RefreshableCredentials
    from botocore.session import get_session

    def refresh() -> dict[str, str]:
        refresh_threads.append(threading.current_thread().name)
        time.sleep(seconds)
        expiry = datetime.now(timezone.utc) + timedelta(hours=1)
        return {
            "access_key": "AKIDREFRESH",
            "secret_key": "s",
            "token": "t",
            "expiry_time": expiry.isoformat(),
        }

    botocore_session = get_session()
    botocore_session._credentials = RefreshableCredentials.create_from_metadata(
        metadata={
            "access_key": "AKIDOLD",
            "secret_key": "s",
            "token": "t",
            "expiry_time": "2000-01-01T00:00:00Z",
        },
        refresh_using=refresh,
        method="test",
    )
    return boto3.Session(botocore_session=botocore_session, region_name="us-west-2")


async def test_no_blocking_call_on_the_event_loop(caplog: pytest.LogCaptureFixture) -> None:
    """asyncio debug mode logs every callback slower than slow_callback_duration: none may be.

    The credentials take 2 s to refresh (as IMDS or STS can); the boto3 session, the botocore
    client and the TLS context are created on first use. All of it must happen off the loop.
    """
    refresh_threads: list[str] = []
    session = slow_refreshing_session(refresh_threads, 2.0)
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    # Below the 2 s a refresh takes, so a refresh on the loop is always flagged; far above the
    # 0.1 s default, so an ordinary step stalled by a busy machine or a full garbage collection
    # late in a long test run (0.28 s seen on a 2-core CI machine, 0.6 s at a load average of
    # 10 on 2 cores) is not.
    loop.slow_callback_duration = 1.5
    caplog.set_level(logging.WARNING, logger="asyncio")
    try:
        async with (
            ScriptedServer(stream_of(*[b"p%d" % i for i in range(50)])) as server,
            sagestream.AsyncClient(session, endpoint_url=server.url) as client,
        ):
            for _ in range(5):
                assert len(await collect(client)) == 50
            result = await asyncio.gather(*(collect(client) for _ in range(20)))
            assert all(len(r) == 50 for r in result)
    finally:
        loop.set_debug(False)
    # The test's own server shares the loop: a stalled step of its (a busy machine's doing, the
    # accept of a connection) says nothing about the client.
    slow = [
        r.getMessage()[:300]
        for r in caplog.records
        if "Executing" in r.getMessage() and "_accept_connection" not in r.getMessage()
    ]
    assert slow == []
    assert len(refresh_threads) == 1
    assert all("Credential=AKIDREFRESH/" in ex.headers["authorization"] for ex in server.requests)


async def test_refreshable_credentials_are_refreshed_off_the_loop() -> None:
    """Credentials that need a refresh are refreshed in a worker thread, then reused inline."""
    import threading

    refresh_threads: list[str] = []
    session = slow_refreshing_session(refresh_threads, 0.0)
    async with (
        ScriptedServer(stream_of(b"x")) as server,
        sagestream.AsyncClient(session, endpoint_url=server.url) as client,
    ):
        assert await collect(client) == [b"x"]
        assert await collect(client) == [b"x"]
    assert len(refresh_threads) == 1
    assert threading.main_thread().name not in refresh_threads
    assert all("Credential=AKIDREFRESH/" in ex.headers["authorization"] for ex in server.requests)


def test_a_client_is_bound_to_its_event_loop() -> None:
    async def first(client: sagestream.AsyncClient) -> None:
        await client._ready()

    client = client_for("http://127.0.0.1:9")
    asyncio.run(first(client))
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(client.invoke("ep", b"x"))


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    """A self-signed certificate for 127.0.0.1: the server's context and the CA file."""
    context, cert_path = loopback_tls(tmp_path_factory.mktemp("tls"))
    return context, str(cert_path)


@pytest.mark.parametrize("verify", ["ca-file", False, None])
async def test_tls_verification_follows_verify(tls: tuple[ssl.SSLContext, str], verify: Any) -> None:
    context, ca_file = tls
    session = boto3.Session(
        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-west-2"
    )
    async with ScriptedServer(stream_of(b"secure"), tls=context) as server:
        client = sagestream.AsyncClient(
            session,
            endpoint_url=server.url,
            config=Config(retries={"total_max_attempts": 1}),
            verify=ca_file if verify == "ca-file" else verify,
        )
        async with client:
            if verify is None:  # the default CAs do not know this certificate
                with pytest.raises(sagestream.ConnectError) as info:
                    await collect(client)
                assert info.value.kind == "tls"
                assert isinstance(info.value.__cause__, botocore.exceptions.SSLError)
            else:
                assert await collect(client) == [b"secure"]


@pytest.mark.parametrize(("pool", "idle"), [(2, 2), (None, 6)])
async def test_max_pool_connections_bounds_idle_connections_as_botocore(pool: int | None, idle: int) -> None:
    """Config(max_pool_connections=N) is botocore's: N idle connections are kept per host; busy,
    the client opens more (urllib3's non-blocking pool) and closes the extra ones afterwards."""
    open_now = 0
    most = 0

    async def slow(ex: Exchange) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        await ex.send(STREAM_HEAD + chunk(part(b"x")))
        await asyncio.sleep(0.2)
        open_now -= 1
        await ex.send(b"0\r\n\r\n")

    extra = {} if pool is None else {"max_pool_connections": pool}
    async with ScriptedServer(slow) as server, client_for(server.url, **extra) as client:
        results = await asyncio.gather(*(collect(client) for _ in range(6)))
        for _ in range(50):  # a finished connection is pooled once hyper says it is idle
            if client.idle_connections() == idle:
                break
            await asyncio.sleep(0.02)
        assert client.idle_connections() == idle
    assert results == [[b"x"]] * 6
    assert most == 6
