"""Streams through an HTTP proxy, as ``Config(proxies=...)`` asks: forwarded in absolute form for
``http://`` endpoints, tunnelled by ``CONNECT`` for ``https://`` ones, with the proxied
connection kept for the next call; stock boto3 through the same proxy alongside."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import sagestream
from _raw_server import RawServer, payload_frame, stream_response
from _tls import loopback_tls
from botocore.config import Config

PARTS = [b"part %d " % i * 20 for i in range(300)]


class Proxy:
    """A forwarding HTTP proxy on 127.0.0.1: ``CONNECT host:port`` opens a tunnel; any other
    request is sent on, as it came, to the host its absolute-form target names, and the
    connection is then relayed both ways. It records each connection's first request line."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.first_lines: list[str] = []
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self._open.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(65536)
            if not data:
                return
            head += data
        line = head.split(b"\r\n", 1)[0].decode()
        self.first_lines.append(line)
        method, target, _ = line.split(" ", 2)
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            head = head.split(b"\r\n\r\n", 1)[1]
        else:
            origin = urlsplit(target)
            upstream = socket.create_connection((origin.hostname, origin.port or 80))
        self._open.append(upstream)
        upstream.sendall(head)
        threading.Thread(target=self._relay, args=(upstream, client), daemon=True).start()
        self._relay(client, upstream)

    @staticmethod
    def _relay(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for s in [self._sock, *self._open]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    return loopback_tls(tmp_path_factory.mktemp("tls"))


def kwargs(server: RawServer, proxy: Proxy, verify: Any) -> dict[str, Any]:
    scheme = urlsplit(server.url).scheme
    config = Config(proxies={scheme: proxy.url}, retries={"total_max_attempts": 1}, read_timeout=5)
    return {"endpoint_url": server.url, "config": config, "verify": verify}


def session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")


def read_twice(client: str, options: dict[str, Any]) -> list[list[bytes]]:
    """Two streams, read whole, on one client of kind ``client``."""
    if client == "boto3":
        runtime = session().client("sagemaker-runtime", **options)

        def boto3_parts() -> list[bytes]:
            answer = runtime.invoke_endpoint_with_response_stream(EndpointName="ep", Body=b"")
            return [event["PayloadPart"]["Bytes"] for event in answer["Body"]]

        return [boto3_parts(), boto3_parts()]
    if client == "Client":
        sync = sagestream.Client(session(), **options)
        return [list(sync.invoke_stream("ep", b"")), list(sync.invoke_stream("ep", b""))]

    async def run() -> list[list[bytes]]:
        async with sagestream.AsyncClient(session(), **options) as aio:
            got = []
            for _ in range(2):
                got.append([p async for p in await aio.invoke_stream("ep", b"")])
            return got

    return asyncio.run(run())


def answers() -> RawServer:
    frames = [payload_frame(p) for p in PARTS]
    return RawServer(lambda _: stream_response(frames))


@pytest.mark.parametrize("client", ["boto3", "Client", "AsyncClient"])
def test_a_forward_proxy_carries_streams_in_absolute_form(proxy: Proxy, client: str) -> None:
    with answers() as server:
        assert read_twice(client, kwargs(server, proxy, None)) == [PARTS, PARTS]
        targets = {r.path for r in server.requests}
        assert targets == {server.url + "/endpoints/ep/invocations-response-stream"}, targets
        # One proxied connection, kept for the second call.
        assert server.connections == 1
        assert len(proxy.first_lines) == 1


@pytest.mark.parametrize("client", ["boto3", "Client", "AsyncClient"])
def test_a_connect_tunnel_carries_tls_streams(
    proxy: Proxy, tls: tuple[ssl.SSLContext, Path], client: str
) -> None:
    context, ca = tls
    frames = [payload_frame(p) for p in PARTS]
    with RawServer(lambda _: stream_response(frames), tls=context) as server:
        assert read_twice(client, kwargs(server, proxy, str(ca))) == [PARTS, PARTS]
        assert {r.path for r in server.requests} == {"/endpoints/ep/invocations-response-stream"}
        authority = urlsplit(server.url).netloc
        # http.client (boto3) asks in HTTP/1.0, hyper-util (sagestream) in HTTP/1.1.
        assert [line.rsplit(".", 1)[0] for line in proxy.first_lines] == [f"CONNECT {authority} HTTP/1"]
        assert server.connections == 1
