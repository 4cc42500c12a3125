"""End-to-end streaming benchmark: sagestream vs stock boto3 vs boto3 + patch_botocore().

A loopback HTTP/1.1 server in a separate process streams N PayloadPart events of ~100 bytes,
one HTTP chunk per event (as SageMaker and the emulator do). Each client runs in this process,
alternating, several times; client CPU comes from ``time.process_time()``, so the server's
work is not counted. Time to first part is measured against a scenario where the server
pauses after the first event, and compared with a raw socket reading the same response.

    python benches/bench_e2e.py [--parts 100000] [--size 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/vnd.amazon.eventstream\r\n"
    b"X-Amzn-SageMaker-Content-Type: text/plain\r\n"
    b"x-Amzn-Invoked-Production-Variant: AllTraffic\r\n"
    b"x-amzn-RequestId: bench\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
TTFB_PAUSE = 0.05
#: sagestream's first part, counted from botocore returning the response headers.
AFTER_HEADERS: list[float] = []


def _frame(payload: bytes) -> bytes:
    from sagestream import _core

    return _core.encode(
        [
            (":event-type", "PayloadPart"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        payload,
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _serve(port_queue: Any, parts: int, size: int) -> None:
    """The server process: ``bulk`` streams everything at once, ``ttfb`` pauses after part 1."""
    bulk = bytearray()
    for i in range(parts):
        body = (b"%08d " % i).ljust(size, b"x")
        bulk += _chunk(_frame(body))
    bulk += b"0\r\n\r\n"
    first = _chunk(_frame(b"FIRST".ljust(size, b"x")))
    rest = b"".join(_chunk(_frame(b"y" * size)) for _ in range(9)) + b"0\r\n\r\n"
    bulk_bytes = bytes(bulk)

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port_queue.put(sock.getsockname()[1])

    def handle(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                if b"/ttfb/" in head.split(b"\r\n", 1)[0]:
                    conn.sendall(HEAD + first)
                    time.sleep(TTFB_PAUSE)
                    conn.sendall(rest)
                else:
                    conn.sendall(HEAD)
                    conn.sendall(bulk_bytes)

    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def _boto3_client(url: str) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.Session(aws_access_key_id="AKID", aws_secret_access_key="secret", region_name="us-east-1")
    return session.client(
        "sagemaker-runtime", endpoint_url=url, config=Config(retries={"total_max_attempts": 1})
    )


def _measure(
    run: Callable[[str], tuple[int, float | None]], endpoint: str
) -> tuple[float, float, int, float | None]:
    """(cpu seconds, wall seconds, parts, time to first part) of one run."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    parts, ttfp = run(endpoint)
    return time.process_time() - cpu0, time.perf_counter() - wall0, parts, ttfp


def make_runners(url: str) -> dict[str, Callable[[str], tuple[int, float | None]]]:
    import sagestream

    client = sagestream.Client(
        region_name="us-east-1", endpoint_url=url, aws_access_key_id="AKID", aws_secret_access_key="secret"
    )
    stock = _boto3_client(url)

    def run_sagestream(endpoint: str) -> tuple[int, float | None]:
        t0 = time.perf_counter()
        first = None
        n = 0
        stream = client.invoke_stream(endpoint, b"{}")
        headers_at = time.perf_counter()  # invoke_stream returns once the headers are in
        for _ in stream:
            if first is None:
                now = time.perf_counter()
                first = now - t0
                if endpoint == "ttfb":
                    AFTER_HEADERS.append(now - headers_at)
            n += 1
        return n, first

    def run_boto3(endpoint: str) -> tuple[int, float | None]:
        t0 = time.perf_counter()
        first = None
        n = 0
        resp = stock.invoke_endpoint_with_response_stream(EndpointName=endpoint, Body=b"{}")
        for event in resp["Body"]:
            event["PayloadPart"]["Bytes"]
            if first is None:
                first = time.perf_counter() - t0
            n += 1
        return n, first

    def run_patched(endpoint: str) -> tuple[int, float | None]:
        sagestream.patch_botocore()
        try:
            return run_boto3(endpoint)
        finally:
            sagestream.unpatch_botocore()

    return {"boto3": run_boto3, "boto3 + patch_botocore()": run_patched, "sagestream": run_sagestream}


class RawSocketClient:
    """A bare keep-alive socket: request to first complete event, no SDK, no signing."""

    REQUEST = (
        b"POST /endpoints/ttfb/invocations-response-stream HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    )

    def __init__(self, port: int, size: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.first = len(HEAD) + len(_chunk(_frame(b"FIRST".ljust(size, b"x"))))

    def ttfp(self) -> float:
        t0 = time.perf_counter()
        self.sock.sendall(self.REQUEST)
        buf = b""
        while len(buf) < self.first:
            buf += self.sock.recv(65536)
        elapsed = time.perf_counter() - t0
        while not buf.endswith(b"0\r\n\r\n"):
            buf += self.sock.recv(65536)
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ttfp-samples", type=int, default=25)
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    server = ctx.Process(target=_serve, args=(q, args.parts, args.size), daemon=True)
    server.start()
    try:
        port = q.get(timeout=60)
        url = f"http://127.0.0.1:{port}"
        runners = make_runners(url)
        results: dict[str, list[tuple[float, float, int, float | None]]] = {k: [] for k in runners}
        ttfp: dict[str, list[float]] = {k: [] for k in runners}
        ttfp["raw socket"] = []
        raw = RawSocketClient(port, args.size)
        for run in runners.values():  # warm up: imports, connections, caches
            run("bulk")
            run("ttfb")
        for _ in range(args.runs):
            for name, run in runners.items():
                cpu, wall, parts, _ = _measure(run, "bulk")
                if parts != args.parts:
                    raise SystemExit(f"{name}: {parts} parts, expected {args.parts}")
                results[name].append((cpu, wall, parts, None))
        for _ in range(args.ttfp_samples):
            for name, run in runners.items():
                first = run("ttfb")[1]
                assert first is not None
                ttfp[name].append(first)
            ttfp["raw socket"].append(raw.ttfp())
    finally:
        server.kill()
        server.join()

    base_cpu = statistics.median(r[0] for r in results["boto3"]) / args.parts
    print(
        f"\n{args.parts:,} PayloadPart events of {args.size} B, one HTTP chunk each, loopback; "
        f"medians of {args.runs} runs, {args.ttfp_samples} samples for time to first part\n"
    )
    print("| client | CPU µs/part | vs boto3 | parts/s | time to first part |")
    print("|---|---:|---:|---:|---:|")
    for name in runners:
        cpu = statistics.median(r[0] for r in results[name]) / args.parts
        wall = statistics.median(r[1] for r in results[name])
        first = statistics.median(ttfp[name]) * 1000
        ratio = base_cpu / cpu
        print(f"| {name} | {cpu * 1e6:.2f} | {ratio:.1f}x | {args.parts / wall:,.0f} | {first:.2f} ms |")
    raw_ms = statistics.median(ttfp["raw socket"]) * 1000
    print(f"| raw socket (no SDK, no signing) | | | | {raw_ms:.2f} ms |")
    after = statistics.median(AFTER_HEADERS) * 1e6
    print(f"\nsagestream yields the first part {after:.0f} µs after invoke_stream returns (the headers in).")
    print(
        f"\nTime to first part: the server sends event 1, then pauses {TTFB_PAUSE * 1000:.0f} ms "
        "before the rest; a client that read ahead would wait for the pause. The clients' figures "
        "include building and signing the request; the raw socket's sends a fixed one."
    )


if __name__ == "__main__":
    main()
