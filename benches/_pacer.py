"""A loopback SageMaker Runtime look-alike for benchmarks, run in a process of its own so that
``time.process_time()`` in the benchmark is the client's CPU alone.

Each request says what it wants in ``X-Amzn-SageMaker-Custom-Attributes``:
``tokens=N;size=B;interval=S`` streams N PayloadPart frames of B bytes, one HTTP chunk each, S
seconds apart (0: back to back); ``first_pause=S`` pauses after the first part. A request to
``/invocations`` (InvokeEndpoint) gets a small JSON body. Signatures are not checked: this is a
load generator, not the emulator.

Paced streams are written by one ticker per process (every millisecond it writes the tokens that
are due), each stream starting at its own phase: as many wake-ups on the server as a model
server would cost, tokens spread over time as many independent streams spread them.
"""

from __future__ import annotations

import asyncio
import heapq
import socket
from typing import Any

_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
    b"X-Amzn-SageMaker-Content-Type: text/event-stream\r\n"
    b"x-Amzn-Invoked-Production-Variant: AllTraffic\r\nx-amzn-RequestId: bench\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_JSON = b'{"generated_text": "ok"}'
_INVOKE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"x-Amzn-Invoked-Production-Variant: AllTraffic\r\nx-amzn-RequestId: bench\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_JSON), _JSON)
)


def _frames(size: int) -> bytes:
    from sagestream._core import encode

    frame = encode(
        {":message-type": "event", ":event-type": "PayloadPart", ":content-type": "application/octet-stream"},
        b"t" * size,
    )
    return b"%x\r\n%s\r\n" % (len(frame), frame)


class _Ticker:
    """Writes the due tokens of every paced stream, once a millisecond."""

    def __init__(self) -> None:
        self.due: list[tuple[float, int, Any]] = []
        self.seq = 0
        self.task: asyncio.Task[None] | None = None

    def add(self, when: float, stream: Any) -> None:
        self.seq += 1
        heapq.heappush(self.due, (when, self.seq, stream))
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.due:
            now = loop.time()
            while self.due and self.due[0][0] <= now:
                _, _, stream = heapq.heappop(self.due)
                stream.tick(now)
            await asyncio.sleep(0.001)
        self.task = None


class _Stream:
    def __init__(self, protocol: _Protocol, tokens: int, chunk: bytes, interval: float, phase: float) -> None:
        self.protocol = protocol
        self.left = tokens
        self.chunk = chunk
        self.interval = interval
        self.next_at = phase

    def tick(self, now: float) -> None:
        transport = self.protocol.transport
        if transport is None or transport.is_closing():
            return
        transport.write(self.chunk)
        self.left -= 1
        if self.left <= 0:
            transport.write(b"0\r\n\r\n")
            self.protocol.busy = False
            self.protocol.serve_buffered()
            return
        self.next_at += self.interval
        self.protocol.server.ticker.add(self.next_at, self)


class _Protocol(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.busy = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.serve_buffered()

    def serve_buffered(self) -> None:
        while not self.busy:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            attributes = ""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"x-amzn-sagemaker-custom-attributes":
                    attributes = value.strip().decode()
            if len(self.buffer) < end + 4 + length:
                return
            path = head.split(b" ", 2)[1]
            self.buffer = self.buffer[end + 4 + length :]
            self.answer(path, attributes)

    def answer(self, path: bytes, attributes: str) -> None:
        assert self.transport is not None
        if not path.endswith(b"/invocations-response-stream"):
            self.transport.write(_INVOKE)
            return
        knobs = dict(kv.split("=", 1) for kv in attributes.split(";") if "=" in kv)
        tokens = int(knobs.get("tokens", "1"))
        chunk = self.server.chunk(int(knobs.get("size", "20")))
        interval = float(knobs.get("interval", "0"))
        first_pause = float(knobs.get("first_pause", "0"))
        if interval <= 0 and not first_pause:
            self.transport.write(_HEAD + chunk * tokens + b"0\r\n\r\n")
            return
        self.transport.write(_HEAD + chunk)
        if tokens <= 1:
            self.transport.write(b"0\r\n\r\n")
            return
        self.busy = True
        loop = asyncio.get_running_loop()
        wait = first_pause or interval
        phase = loop.time() + wait
        self.server.ticker.add(phase, _Stream(self, tokens - 1, chunk, interval or 0.0, phase))


class _Server:
    def __init__(self) -> None:
        self.ticker = _Ticker()
        self._chunks: dict[int, bytes] = {}

    def chunk(self, size: int) -> bytes:
        found = self._chunks.get(size)
        if found is None:
            found = self._chunks[size] = _frames(size)
        return found


def serve(port: int, ready: Any) -> None:
    """Serve on 127.0.0.1:``port`` until killed (``ready.set()`` once listening)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        state = _Server()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Protocol(state), "127.0.0.1", port, backlog=4096)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start() -> tuple[str, Any]:
    """Start the server process; its URL and the process (``terminate()`` it when done)."""
    import multiprocessing

    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    process = ctx.Process(target=serve, args=(port, ready), daemon=True)
    process.start()
    if not ready.wait(30):
        raise RuntimeError("the benchmark server did not start")
    return f"http://127.0.0.1:{port}", process
