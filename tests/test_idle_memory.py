"""What an open, idle stream holds: C heap bytes per stream, counted by glibc's allocator.

Streams wait on the model far longer than they read, so the memory each one holds while it
waits bounds how many a process can keep open. A stream's body is read from the socket, not
through hyper's HTTP/1.1 connection, which is taken apart once the head is in (it held about
24 KiB: a read buffer, a header write buffer and its request channel's first block), and between
reads the body holds no buffer: about 12 KiB in all today; see docs/benchmarks.md. The bound
fails if a stream keeps hyper's connection again (or any per-stream buffer of that size), not on
noise.

Counted as heap in use (``_heap.py``), not resident memory, which depends on the allocator's
layout.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sagestream
from _heap import AVAILABLE, heap_in_use
from _raw_server import EVENTSTREAM, chunk, payload_frame
from botocore.config import Config

#: Streams held open at once.
STREAMS = 200
#: The most C heap bytes one idle stream may hold (about 12 KiB today, 29 with hyper's
#: connection kept).
BOUND = 20 * 1024
#: The most C heap bytes one idle pooled connection may hold (about 0.4 KiB today, 26 with
#: hyper's connection kept with its socket).
POOLED_BOUND = 8 * 1024


pytestmark = pytest.mark.skipif(not AVAILABLE, reason="needs glibc's mallinfo2")


def heap() -> int:
    in_use = heap_in_use()
    assert in_use is not None
    return in_use


#: Every request's body: a request is in once its head and this are.
BODY = b"{}"
ANSWER = (
    f"HTTP/1.1 200 OK\r\nContent-Type: {EVENTSTREAM}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    + chunk(payload_frame(b"first"))
)


class QuietStreams:
    """A server answering each connection's one request with the first part of a stream, and
    then nothing until :meth:`end` sends every stream's last chunk (the connections stay open).
    One thread serves every connection in turn (the client opens them one after the other), so
    that the server adds next to nothing to this process's heap."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                self.held.append(conn)
                request = b""
                while not request.endswith(b"\r\n\r\n" + BODY) and (data := conn.recv(65536)):
                    request += data
                conn.sendall(ANSWER)

    def end(self) -> None:
        """Every stream's last chunk."""
        for conn in self.held:
            conn.sendall(b"0\r\n\r\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self.listener.close()
        for conn in self.held:
            conn.close()
        self.thread.join(timeout=5)


@contextlib.contextmanager
def quiet_streams() -> Iterator[QuietStreams]:
    server = QuietStreams()
    try:
        yield server
    finally:
        server.close()


def client_of(url: str) -> sagestream.AsyncClient:
    session = boto3.Session(
        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name="us-west-2"
    )
    config = Config(max_pool_connections=STREAMS, retries={"max_attempts": 0})
    return sagestream.AsyncClient(session, endpoint_url=url, config=config)


async def open_streams(client: sagestream.AsyncClient) -> tuple[int, list[Any]]:
    """The heap in use once the client made what it makes once (one stream first), and then
    ``STREAMS`` streams opened, their first part read."""
    warm = await client.invoke_stream("ep", BODY)
    assert await warm.__anext__() == b"first"
    await warm.aclose()
    gc.collect()
    before = heap()
    opened = []
    for _ in range(STREAMS):
        stream = await client.invoke_stream("ep", BODY)
        assert await stream.__anext__() == b"first"
        opened.append(stream)
    return before, opened


async def test_an_idle_open_stream_holds_a_bounded_heap() -> None:
    with quiet_streams() as server:
        async with client_of(server.url) as client:
            before, opened = await open_streams(client)
            gc.collect()
            per_stream = (heap() - before) / STREAMS
            for stream in opened:
                await stream.aclose()
    assert per_stream < BOUND, f"{per_stream / 1024:.1f} KiB of C heap per idle open stream"


async def test_a_pooled_idle_connection_holds_its_socket_and_little_else() -> None:
    """Streams read to their end give their connections to the pool; kept there, idle, each
    holds its socket, not an HTTP client's buffers (they are made when it is used again)."""
    with quiet_streams() as server:
        async with client_of(server.url) as client:
            before, opened = await open_streams(client)
            server.end()
            for stream in opened:
                assert [part async for part in stream] == []
            del opened, stream
            gc.collect()
            per_connection = (heap() - before) / STREAMS
            # Every connection is in the pool (else there would be nothing to count).
            assert client.idle_connections() == STREAMS
    assert per_connection < POOLED_BOUND, f"{per_connection / 1024:.1f} KiB of heap per pooled connection"
