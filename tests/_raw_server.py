"""A raw-socket HTTP/1.1 loopback server for transport tests.

It answers whatever botocore sends (the signature is not checked) with exactly the bytes a test
scripts: status line, headers, and body writes with pauses, cuts and resets in between, so that
mid-chunk and mid-frame cuts, stalls, hostile chunk sizes and connection reuse can be tested
precisely.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sagestream import _core

EVENTSTREAM = "application/vnd.amazon.eventstream"


def payload_frame(data: bytes) -> bytes:
    """A PayloadPart event frame."""
    return _core.encode(
        [
            (":event-type", "PayloadPart"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        data,
    )


def exception_frame(exception_type: str, message: str, error_code: str | None = None) -> bytes:
    """A modeled exception frame (ModelStreamError / InternalStreamFailure)."""
    import json

    body: dict[str, str] = {"Message": message}
    if error_code is not None:
        body["ErrorCode"] = error_code
    return _core.encode(
        [
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json.dumps(body).encode(),
    )


def error_frame(code: str, message: str) -> bytes:
    """An unmodeled ``:message-type: error`` frame."""
    return _core.encode([(":error-code", code), (":error-message", message), (":message-type", "error")], b"")


def chunk(data: bytes, ext: str = "") -> bytes:
    """One HTTP/1.1 chunk."""
    return f"{len(data):x}{ext}\r\n".encode() + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


class Cut:
    """Close the connection here (FIN)."""


class Reset:
    """Reset the connection here (RST)."""


CUT = Cut()
RESET = Reset()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    """What to answer: ``writes`` are bytes, float pauses (seconds), CUT or RESET."""

    status: int = 200
    reason: str = "OK"
    headers: dict[str, str] = field(default_factory=dict)
    writes: list[Any] = field(default_factory=list)
    chunked: bool = True
    content_length: int | None = None
    keep_alive: bool = True
    #: Written in place of the status line and headers, when set: bytes, pauses, CUT or RESET
    #: (interim ``100 Continue`` answers, header bytes trickled one at a time).
    head_writes: Iterable[Any] | None = None


def stream_response(
    frames: Iterable[bytes], *, one_chunk_per_frame: bool = True, end: bool = True, **kw: Any
) -> Response:
    """A 200 event stream answer, chunked, ending with the last chunk when ``end``."""
    frames = list(frames)
    if one_chunk_per_frame:
        writes: list[Any] = [chunk(f) for f in frames]
    else:
        writes = [chunk(b"".join(frames))] if frames else []
    if end:
        writes.append(LAST_CHUNK)
    headers = {
        "Content-Type": EVENTSTREAM,
        "X-Amzn-SageMaker-Content-Type": "text/plain",
        "x-Amzn-Invoked-Production-Variant": "AllTraffic",
        "x-amzn-RequestId": "req-1",
    }
    headers.update(kw.pop("headers", {}))
    return Response(headers=headers, writes=writes, **kw)


Handler = Callable[[Request], Response]


class RawServer:
    """Serve ``handler``'s scripted answers on 127.0.0.1 (a thread per connection)."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.connections = 0
        self.requests: list[Request] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    def __enter__(self) -> RawServer:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for s in [self._sock, *self._conns]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self._threads:
            t.join(timeout=1)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                while len(buf) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                request = Request(method, path, headers, body)
                self.requests.append(request)
                if not self._answer(conn, self.handler(request)):
                    return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _answer(self, conn: socket.socket, resp: Response) -> bool:
        if resp.head_writes is not None:
            if not self._write(conn, resp.head_writes):
                return False
        else:
            head = [f"HTTP/1.1 {resp.status} {resp.reason}"]
            headers = dict(resp.headers)
            if resp.chunked:
                headers["Transfer-Encoding"] = "chunked"
            elif resp.content_length is not None:
                headers["Content-Length"] = str(resp.content_length)
            if not resp.keep_alive:
                headers["Connection"] = "close"
            head += [f"{k}: {v}" for k, v in headers.items()]
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        return self._write(conn, resp.writes) and resp.keep_alive

    def _write(self, conn: socket.socket, writes: Iterable[Any]) -> bool:
        """Carry out ``writes``; False when the connection was ended (or the server stopped)."""
        for w in writes:
            if isinstance(w, float):
                if self._stop.wait(w):
                    return False
            elif isinstance(w, Cut):
                conn.shutdown(socket.SHUT_RDWR)
                return False
            elif isinstance(w, Reset):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return False
            else:
                conn.sendall(w)
        return True


def json_error(status: int, code: str, message: str, **extra: Any) -> Response:
    """A SageMaker-style JSON error answer."""
    import json

    body = json.dumps({"Message": message, **extra}).encode()
    return Response(
        status=status,
        reason="Error",
        headers={"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code},
        writes=[body],
        chunked=False,
        content_length=len(body),
    )
