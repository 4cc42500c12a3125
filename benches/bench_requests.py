"""The workloads users run, side by side in one run: client CPU per request and ratios.

A loopback server in a separate process (``_pacer.py``) answers; ``time.process_time()`` here
is the client's CPU alone (every thread of this process, the transport's included). Each
workload runs every client once per round, rounds alternating, and reports medians:

- ``fixed``: the fixed cost of one request, sequentially: a 1-part stream and an
  InvokeEndpoint, sync and asyncio, against boto3 / aiobotocore and a raw pre-signed request
  on a kept-alive socket (the floor: no SDK, no signing per request);
- ``gateway``: N concurrent asyncio streams x 200 tokens of 20 bytes, 20 ms apart (an LLM
  gateway), against aiobotocore and a bare asyncio Protocol that only counts bytes (the
  floor of asyncio itself), and that Protocol resuming a task per stream with what each read
  brings (the floor of any async iterator); sagestream and the Protocols also on uvloop when it
  is installed;
- ``threads``: 100 threads on the sync client, the same streams, against boto3 threads;
- ``short``: 1,000 concurrent InvokeEndpoint calls in asyncio, against aiobotocore;
- ``ttfp``: time to first part, against the raw socket, after an idle pause and back to back;
- ``long``: one stream of 100,000 back-to-back parts, sync and asyncio (µs per part), and
  asyncio on uvloop;
- ``hold``: one stream of 8,000 back-to-back tokens read beside a 1 ms ticker task, against
  aiobotocore: the longest the ticker ran late, i.e. the longest the reader held the event loop
  (with no work per token, and with 20 µs of it, as a framework's callback costs);
- ``layers``: the fixed cost of a 1-part stream on the sync client, layer by layer: the raw
  pre-signed request, ``_core.Transport.send`` unsigned and signed, and ``Client.invoke_stream``,
  in the calling thread's own user and system time (Linux: ``RUSAGE_THREAD``);
- ``idle``: memory per open, idle stream, against a bare asyncio Protocol holding as many
  connections (each in a fresh interpreter): resident, and on glibc the C heap in use
  (``mallinfo2``; pages an allocation never touched are not resident, and freed ones are
  reused, so the two differ).

    python benches/bench_requests.py [--only gateway,short] [--rounds 3] [--quick]
        [--baseline DIR]

Build the extension in release mode first (``maturin develop -r``). ``--baseline DIR`` adds
the rows of another build of sagestream (see ``_builds.py``) to every workload but ``threads``
and ``short``: both builds then run in fresh interpreters, rounds alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import _builds
import _pacer

CREDS = {"aws_access_key_id": "AKIDBENCH", "aws_secret_access_key": "secret", "region_name": "us-east-1"}
PACED = "tokens=200;size=20;interval=0.02"
R = TypeVar("R")


# --- clients ---------------------------------------------------------------------------------


def sagestream_client(url: str, pool: int = 10) -> Any:
    import boto3
    import sagestream
    from botocore.config import Config

    return sagestream.Client(
        boto3.Session(**CREDS),
        endpoint_url=url,
        config=Config(max_pool_connections=pool, retries={"max_attempts": 0}),
    )


def sagestream_async(url: str, pool: int = 10) -> Any:
    import boto3
    import sagestream
    from botocore.config import Config

    return sagestream.AsyncClient(
        boto3.Session(**CREDS),
        endpoint_url=url,
        config=Config(max_pool_connections=pool, retries={"max_attempts": 0}),
    )


def boto3_client(url: str, pool: int = 10) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.Session(**CREDS).client(
        "sagemaker-runtime",
        endpoint_url=url,
        config=Config(max_pool_connections=pool, retries={"max_attempts": 0}),
    )


def aiobotocore_client(url: str, pool: int = 10) -> Any:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    return get_session().create_client(
        "sagemaker-runtime",
        endpoint_url=url,
        config=AioConfig(max_pool_connections=pool, retries={"max_attempts": 0}),
        **CREDS,
    )


def presigned(url: str, path: str, attributes: str) -> bytes:
    """The bytes of one request botocore signed, to send again and again (the floor)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    host = url.split("//", 1)[1]
    request = AWSRequest(
        "POST",
        f"{url}{path}",
        data=b"{}",
        headers={"X-Amzn-SageMaker-Custom-Attributes": attributes, "Content-Type": "application/json"},
    )
    SigV4Auth(Credentials("AKIDBENCH", "secret"), "sagemaker", "us-east-1").add_auth(request)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Length: 2"]
    lines += [f"{k}: {v}" for k, v in request.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + b"{}"


class RawConnection:
    """A kept-alive socket sending a pre-signed request and reading the answer to its end."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//", 1)[1].split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(self, request: bytes, *, stream: bool, first_only: bool = False) -> bytes:
        self.sock.sendall(request)
        data = b""
        while True:
            data += self.sock.recv(65536)
            head, sep, body = data.partition(b"\r\n\r\n")
            if not sep:
                continue
            if first_only and len(body) > 16:
                return body
            if stream and body.endswith(b"0\r\n\r\n"):
                return body
            if not stream:
                length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
                if len(body) >= length:
                    return body


STREAM_PATH = "/endpoints/bench/invocations-response-stream"
INVOKE_PATH = "/endpoints/bench/invocations"


# --- aiobotocore, in its own environment ------------------------------------------------------
# aiobotocore pins an older botocore than the newest, which sagestream is measured on: its rows
# run in a fresh interpreter of an environment of its own (_builds.aiobotocore_python), each
# call warming up, then measuring itself with the same clock (this process's CPU).


class Peer:
    """One aiobotocore measurement, run in aiobotocore's environment when called."""

    def __init__(self, function: str, *args: Any) -> None:
        self.function, self.args = function, args

    def __call__(self) -> tuple[float, float, int]:
        cpu, wall, n = _builds.call(
            None, "bench_requests", self.function, *self.args, python=_builds.aiobotocore_python()
        )
        return float(cpu), float(wall), int(n)


peer = Peer


def fixed_aiobotocore(url: str, count: int, kind: str) -> tuple[float, float, int]:
    """``count`` sequential 1-part streams (``kind="stream"``) or InvokeEndpoint calls."""

    async def run(client: Any, n: int) -> int:
        for _ in range(n):
            if kind == "stream":
                r = await client.invoke_endpoint_with_response_stream(
                    EndpointName="bench", Body=b"{}", CustomAttributes="tokens=1"
                )
                async for _ in r["Body"]:
                    pass
            else:
                r = await client.invoke_endpoint(EndpointName="bench", Body=b"{}")
                await r["Body"].read()
        return n

    async def main() -> tuple[float, float, int]:
        async with aiobotocore_client(url) as client:
            await run(client, 5)  # warm-up: the pool, the first call's set-up
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            n = await run(client, count)
            return time.process_time() - cpu, time.perf_counter() - wall, n

    return asyncio.run(main())


def gateway_aiobotocore(url: str, streams: int) -> tuple[float, float, int]:
    """One gateway run on aiobotocore, after a warm-up run of 10 streams."""

    async def run(n: int) -> int:
        async with aiobotocore_client(url, pool=n) as client:

            async def one() -> None:
                r = await client.invoke_endpoint_with_response_stream(
                    EndpointName="bench", Body=b"{}", CustomAttributes=PACED
                )
                async for _ in r["Body"]:
                    pass

            await asyncio.gather(*(one() for _ in range(n)))
        return n

    run_async(lambda: run(10))
    return run_async(lambda: run(streams))


def short_aiobotocore(url: str, calls: int) -> tuple[float, float, int]:
    """``calls`` concurrent InvokeEndpoint calls on warm connections."""

    async def main() -> tuple[float, float, int]:
        async with aiobotocore_client(url, pool=calls) as client:

            async def one() -> None:
                r = await client.invoke_endpoint(EndpointName="bench", Body=b"{}")
                await r["Body"].read()

            await asyncio.gather(*(one() for _ in range(calls)))
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one() for _ in range(calls)))
            return time.process_time() - cpu, time.perf_counter() - wall, calls

    return asyncio.run(main())


# --- measuring -------------------------------------------------------------------------------


def measure(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, requests) of one run of ``fn``."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    requests = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, requests


def new_loop(uvloop_loop: bool = False) -> asyncio.AbstractEventLoop:
    """A fresh event loop: uvloop's, or asyncio's own."""
    if uvloop_loop:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def run_async(coro_fn: Callable[[], Awaitable[int]], uvloop_loop: bool = False) -> tuple[float, float, int]:
    """``measure`` for a coroutine function, each run on a fresh event loop."""
    loop = new_loop(uvloop_loop)
    try:
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        requests = loop.run_until_complete(coro_fn())
        return time.process_time() - cpu, time.perf_counter() - wall, requests
    finally:
        loop.close()


def table(
    title: str, rows: dict[str, list[tuple[float, float, int]]], baseline: str, unit: str = "ms"
) -> None:
    scale = 1e3 if unit == "ms" else 1e6
    print(f"\n{title}")
    print(f"| client | CPU {unit} / request | wall s | vs {baseline} |")
    print("|---|---:|---:|---:|")
    base = statistics.median(c / n for c, _, n in rows[baseline])
    for name, runs in rows.items():
        per = statistics.median(c / n for c, _, n in runs)
        wall = statistics.median(w for _, w, _ in runs)
        ratio = base / per if per else float("inf")
        print(
            f"| {name} | {per * scale:.3f} | {wall:.2f} | {ratio:.1f}x less |"
            if name != baseline
            else f"| {name} | {per * scale:.3f} | {wall:.2f} | baseline |"
        )


# --- workloads -------------------------------------------------------------------------------


def has_uvloop() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


def ours(name: str, baseline: str | None) -> list[tuple[str, str | None]]:
    """The rows of sagestream client ``name``: one, or this build's and the baseline's."""
    if baseline is None:
        return [(name, None)]
    return [(f"{name}, this build", None), (f"{name}, baseline build", baseline)]


def in_rounds(runs: dict[str, Callable[[], R]], rounds: int) -> dict[str, list[R]]:
    """Every run once per round, the order reversed every other round (``_builds.turns``: what
    goes first in a round costs more), each run's results in the order of the rounds."""
    got: dict[str, list[R]] = {name: [] for name in runs}
    for round_ in range(rounds):
        for name, fn in _builds.turns(list(runs.items()), round_):
            got[name].append(fn())
    return got


def compare(rows: dict[str, list[tuple[float, float, int]]], baseline: str | None) -> None:
    """With a baseline, the per-round ratio of CPU per unit, this build against the baseline,
    for each sagestream client (``_builds.paired``)."""
    if baseline is None:
        return
    for name in rows:
        if name.endswith(", this build"):
            this, base = rows[name], rows[name.replace(", this build", ", baseline build")]
            ratio = _builds.paired([c / n for c, _, n in this], [c / n for c, _, n in base])
            print(f"- {name.removesuffix(', this build')}: CPU per unit, {ratio}")


def on(build: str | None, baseline: str | None, function: str, *args: Any) -> Any:
    """``function(*args)`` of this module: here, or in a fresh interpreter of ``build`` when
    builds are compared (so both are measured alike)."""
    if baseline is None:
        return globals()[function](*args)
    return _builds.call(build, "bench_requests", function, *args)


def fixed_sagestream(url: str, count: int, kind: str, client: str) -> tuple[float, float, int]:
    """``count`` sequential 1-part streams (``kind="stream"``) or InvokeEndpoint calls on the
    sagestream ``client`` (``sync``, ``asyncio``), after a warm-up (the pool, the proof)."""
    if client == "sync":
        c = sagestream_client(url)

        def run(n: int) -> int:
            for _ in range(n):
                if kind == "stream":
                    for _ in c.invoke_stream("bench", b"{}", custom_attributes="tokens=1"):
                        pass
                else:
                    c.invoke("bench", b"{}")
            return n

        run(5)
        return measure(lambda: run(count))
    a = sagestream_async(url)

    async def arun(n: int) -> int:
        for _ in range(n):
            if kind == "stream":
                async with a.invoke_stream("bench", b"{}", custom_attributes="tokens=1") as s:
                    async for _ in s:
                        pass
            else:
                await a.invoke("bench", b"{}")
        return n

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(arun(5))
        return measure(lambda: loop.run_until_complete(arun(count)))
    finally:
        loop.run_until_complete(a.close())
        loop.close()


def fixed(url: str, rounds: int, count: int, baseline: str | None = None) -> None:
    stock = boto3_client(url)
    raw = RawConnection(url)
    requests = {"stream": presigned(url, STREAM_PATH, "tokens=1"), "invoke": presigned(url, INVOKE_PATH, "")}

    def b3(kind: str) -> Callable[[], tuple[float, float, int]]:
        def run() -> int:
            for _ in range(count):
                if kind == "stream":
                    for _ in stock.invoke_endpoint_with_response_stream(
                        EndpointName="bench", Body=b"{}", CustomAttributes="tokens=1"
                    )["Body"]:
                        pass
                else:
                    stock.invoke_endpoint(EndpointName="bench", Body=b"{}")["Body"].read()
            return count

        return lambda: measure(run)

    def raw_run(kind: str) -> Callable[[], tuple[float, float, int]]:
        def run() -> int:
            for _ in range(count):
                raw.exchange(requests[kind], stream=kind == "stream")
            return count

        return lambda: measure(run)

    def sage(build: str | None, kind: str, client: str) -> Callable[[], tuple[float, float, int]]:
        return lambda: tuple(on(build, baseline, "fixed_sagestream", url, count, kind, client))

    for title, kind in (("1-part stream", "stream"), ("InvokeEndpoint", "invoke")):
        clients: dict[str, Callable[[], tuple[float, float, int]]] = {}
        for name, build in ours("sagestream Client", baseline):
            clients[name] = sage(build, kind, "sync")
        clients["boto3"] = b3(kind)
        for name, build in ours("sagestream AsyncClient", baseline):
            clients[name] = sage(build, kind, "asyncio")
        clients["aiobotocore"] = peer("fixed_aiobotocore", url, count, kind)
        clients["raw pre-signed request, kept-alive socket"] = raw_run(kind)
        for fn in (b3(kind), raw_run(kind)):  # warm-up: the pool, the User-Agent
            fn()
        rows = in_rounds(clients, rounds)
        table(f"fixed cost, {title} ({count} sequential requests)", rows, "boto3", unit="µs")
        floor = statistics.median(c / n for c, _, n in rows["raw pre-signed request, kept-alive socket"])
        for name in rows:
            if name.startswith("sagestream"):
                per = statistics.median(c / n for c, _, n in rows[name])
                print(f"- {name}: {per / floor:.2f}x the raw pre-signed request")
        compare(rows, baseline)


async def _gateway_sagestream(url: str, streams: int) -> int:
    client = sagestream_async(url, pool=streams)

    async def one() -> None:
        async with client.invoke_stream("bench", b"{}", custom_attributes=PACED) as s:
            async for _ in s:
                pass

    async with client:
        await asyncio.gather(*(one() for _ in range(streams)))
    return streams


def gateway_sagestream(url: str, streams: int, uvloop_loop: bool = False) -> tuple[float, float, int]:
    """One gateway run of the sagestream in this interpreter, after a warm-up (a fresh one's
    imports and first connections); on uvloop if asked."""
    run_async(lambda: _gateway_sagestream(url, 10), uvloop_loop)
    return run_async(lambda: _gateway_sagestream(url, streams), uvloop_loop)


def gateway(url: str, rounds: int, streams: int, baseline: str | None = None) -> None:
    request = presigned(url, STREAM_PATH, PACED)

    async def bare_run() -> int:
        loop = asyncio.get_running_loop()
        host, port = url.split("//", 1)[1].split(":")

        class Counter(asyncio.Protocol):
            def __init__(self) -> None:
                self.done = loop.create_future()
                self.chunks = 0
                self.tail = b""

            def connection_made(self, transport: Any) -> None:
                transport.write(request)

            def data_received(self, data: bytes) -> None:
                self.chunks += 1
                self.tail = (self.tail + data)[-5:]
                if self.tail == b"0\r\n\r\n" and not self.done.done():
                    self.done.set_result(None)

        async def one() -> None:
            transport, protocol = await loop.create_connection(Counter, host, int(port))
            await protocol.done
            transport.close()

        await asyncio.gather(*(one() for _ in range(streams)))
        return streams

    async def task_run() -> int:
        """The bare Protocol with a task per stream resumed for what each read brings: the
        least an async iterator costs (a plain callback resumes no coroutine per token)."""
        loop = asyncio.get_running_loop()
        host, port = url.split("//", 1)[1].split(":")

        class Feeder(asyncio.Protocol):
            def __init__(self) -> None:
                self.chunks: list[bytes] = []
                self.waiter: asyncio.Future[None] | None = None
                self.tail = b""
                self.ended = False

            def connection_made(self, transport: Any) -> None:
                transport.write(request)

            def data_received(self, data: bytes) -> None:
                self.chunks.append(data)
                self.tail = (self.tail + data)[-5:]
                self.ended = self.tail == b"0\r\n\r\n"
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result(None)

        async def one() -> None:
            transport, protocol = await loop.create_connection(Feeder, host, int(port))
            while True:
                protocol.chunks.clear()
                if protocol.ended:
                    break
                protocol.waiter = loop.create_future()
                await protocol.waiter
            transport.close()

        await asyncio.gather(*(one() for _ in range(streams)))
        return streams

    loops = [False, True] if has_uvloop() else [False]
    runs: dict[str, Callable[[], tuple[float, float, int]]] = {}
    for uv in loops:
        on_loop = " on uvloop" if uv else ""
        for name, build in ours(f"sagestream AsyncClient{on_loop}", baseline):

            def run(build: str | None = build, uv: bool = uv) -> tuple[float, float, int]:
                if baseline is None:
                    return run_async(lambda: _gateway_sagestream(url, streams), uv)
                cpu, wall, n = _builds.call(build, "bench_requests", "gateway_sagestream", url, streams, uv)
                return cpu, wall, n

            runs[name] = run
        if not uv:
            runs["aiobotocore"] = peer("gateway_aiobotocore", url, streams)
            runs["bare asyncio Protocol (floor)"] = lambda: run_async(bare_run)
            runs["bare asyncio Protocol + a task per stream"] = lambda: run_async(task_run)
        else:
            runs["bare asyncio Protocol on uvloop (floor)"] = lambda: run_async(bare_run, uvloop_loop=True)
            runs["bare asyncio Protocol + a task per stream on uvloop"] = lambda: run_async(
                task_run, uvloop_loop=True
            )
    rows = in_rounds(runs, rounds)
    table(
        f"gateway: {streams} concurrent asyncio streams x 200 tokens x 20 B, 20 ms apart", rows, "aiobotocore"
    )
    for name in rows:
        if name.startswith("sagestream"):
            floor_name = f"bare asyncio Protocol{' on uvloop' if 'uvloop' in name else ''} (floor)"
            per = statistics.median(c / n for c, _, n in rows[name])
            floor = statistics.median(c / n for c, _, n in rows[floor_name])
            suffix = " on uvloop" if "uvloop" in name else ""
            with_tasks = rows[f"bare asyncio Protocol + a task per stream{suffix}"]
            tasks = statistics.median(c / n for c, _, n in with_tasks)
            print(f"- {name}: {per / floor:.2f}x its loop's bare Protocol, {per / tasks:.2f}x with tasks")
    compare(rows, baseline)


def threads(url: str, rounds: int, count: int = 100) -> None:
    client, stock = sagestream_client(url, pool=count), boto3_client(url, pool=count)

    def ss() -> None:
        for _ in client.invoke_stream("bench", b"{}", custom_attributes=PACED):
            pass

    def b3() -> None:
        for _ in stock.invoke_endpoint_with_response_stream(
            EndpointName="bench", Body=b"{}", CustomAttributes=PACED
        )["Body"]:
            pass

    def in_threads(fn: Callable[[], None]) -> Callable[[], int]:
        def run() -> int:
            workers = [threading.Thread(target=fn) for _ in range(count)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return count

        return run

    request = presigned(url, STREAM_PATH, PACED)

    def raw() -> None:
        RawConnection(url).exchange(request, stream=True)

    rows: dict[str, list[tuple[float, float, int]]] = {
        "sagestream Client": [],
        "boto3": [],
        "raw socket per thread (floor)": [],
    }
    for _ in range(rounds):
        rows["sagestream Client"].append(measure(in_threads(ss)))
        rows["boto3"].append(measure(in_threads(b3)))
        rows["raw socket per thread (floor)"].append(measure(in_threads(raw)))
    table(f"threads: {count} threads, one stream each (200 tokens x 20 B, 20 ms apart)", rows, "boto3")


def short(url: str, rounds: int, calls: int = 1000) -> None:
    async def sagestream_run() -> int:
        async with sagestream_async(url, pool=calls) as client:
            await asyncio.gather(*(client.invoke("bench", b"{}") for _ in range(calls)))
            cpu = time.process_time()
            await asyncio.gather(*(client.invoke("bench", b"{}") for _ in range(calls)))
            measured.append(time.process_time() - cpu)
        return calls

    rows: dict[str, list[tuple[float, float, int]]] = {"sagestream AsyncClient": [], "aiobotocore": []}
    for _ in range(rounds):
        measured: list[float] = []
        _, wall, n = run_async(sagestream_run)
        rows["sagestream AsyncClient"].append((measured[0], wall, n))
        rows["aiobotocore"].append(peer("short_aiobotocore", url, calls)())
    table(f"short calls: {calls} concurrent InvokeEndpoint, asyncio (connections warm)", rows, "aiobotocore")


#: Time to first part in two conditions. After a pause: the server waits 20 ms after the first
#: part, so each call starts after the client sat idle (a gateway between sparse requests).
#: Back to back: no pause, each call starts as the one before ends (a busy gateway). The
#: first is slower for everyone, the more so the more code a call runs: on a virtual machine
#: an idle core comes back with cold caches.
TTFP_KINDS = {"after a 20 ms pause": "tokens=2;first_pause=0.02", "back to back": "tokens=2"}


def ttfp_sagestream(url: str, count: int, client: str, attrs: str) -> list[float]:
    """Seconds to the first part of ``count`` streams (after 5 unmeasured) on the sagestream
    ``client`` (``sync``, ``asyncio``, ``uvloop``), the server answering as ``attrs`` say."""
    if client == "sync":
        c = sagestream_client(url)

        def first() -> float:
            started = time.perf_counter()
            stream = c.invoke_stream("bench", b"{}", custom_attributes=attrs)
            next(iter(stream))
            took = time.perf_counter() - started
            stream.read_all()
            return took

        return [first() for _ in range(count + 5)][5:]
    a = sagestream_async(url)

    async def afirst() -> float:
        started = time.perf_counter()
        async with a.invoke_stream("bench", b"{}", custom_attributes=attrs) as s:
            await s.__anext__()
            took = time.perf_counter() - started
            async for _ in s:
                pass
        return took

    async def many() -> list[float]:
        return [await afirst() for _ in range(count + 5)][5:]

    loop = new_loop(client == "uvloop")
    try:
        return loop.run_until_complete(many())
    finally:
        loop.run_until_complete(a.close())
        loop.close()


def ttfp(url: str, rounds: int, count: int = 50, baseline: str | None = None) -> None:
    for kind, attrs in TTFP_KINDS.items():
        ttfp_of(url, rounds, count, baseline, kind, attrs)


def ttfp_of(url: str, rounds: int, count: int, baseline: str | None, kind: str, attrs: str) -> None:
    raw = RawConnection(url)
    request = presigned(url, STREAM_PATH, attrs)

    def raw_first(n: int) -> list[float]:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            raw.sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 16:
                data += raw.sock.recv(65536)
            times.append(time.perf_counter() - started)
            while not data.endswith(b"0\r\n\r\n"):
                data += raw.sock.recv(65536)
        return times

    clients = [("sagestream Client", "sync"), ("sagestream AsyncClient", "asyncio")]
    if has_uvloop():
        clients.append(("sagestream AsyncClient on uvloop", "uvloop"))
    runs: dict[str, Callable[[], list[float]]] = {}
    per_round = max(1, count // rounds)

    def first_parts(build: str | None, client: str) -> Callable[[], list[float]]:
        return lambda: list(on(build, baseline, "ttfp_sagestream", url, per_round, client, attrs))

    for label, client in clients:
        for name, build in ours(label, baseline):
            runs[name] = first_parts(build, client)
    runs["raw socket"] = lambda: raw_first(per_round)
    raw_first(5)
    results = {name: [t for got in runs_ for t in got] for name, runs_ in in_rounds(runs, rounds).items()}
    floor = statistics.median(results["raw socket"])
    print(f"\ntime to first part, {kind} (median of {per_round * rounds})")
    print("| client | ms | behind the raw socket |")
    print("|---|---:|---:|")
    for name, values in results.items():
        m = statistics.median(values)
        print(f"| {name} | {m * 1e3:.3f} | {(m - floor) * 1e3:+.3f} ms |")


def long_sagestream(url: str, parts: int, client: str) -> tuple[float, float, int]:
    """CPU and wall seconds of reading one stream of ``parts`` back-to-back parts of 100 B on
    the sagestream ``client`` (``sync``, ``asyncio``, ``uvloop``), made and warmed up (one
    call) before the measure."""
    attrs = f"tokens={parts};size=100"
    if client == "sync":
        c = sagestream_client(url)

        def sync_run() -> int:
            return sum(1 for _ in c.invoke_stream("bench", b"{}", custom_attributes=attrs))

        c.invoke("bench", b"{}")
        return measure(sync_run)

    async def async_run() -> tuple[float, float, int]:
        async with sagestream_async(url) as aclient:

            async def one() -> int:
                n = 0
                async with aclient.invoke_stream("bench", b"{}", custom_attributes=attrs) as s:
                    async for _ in s:
                        n += 1
                return n

            await aclient.invoke("bench", b"{}")  # the pool, the proof
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            n = await one()
            return time.process_time() - cpu, time.perf_counter() - wall, n

    loop = new_loop(client == "uvloop")
    try:
        return loop.run_until_complete(async_run())
    finally:
        loop.close()


def long(url: str, rounds: int, parts: int = 100_000, baseline: str | None = None) -> None:
    clients = [("sagestream Client", "sync"), ("sagestream AsyncClient", "asyncio")]
    if has_uvloop():
        clients.append(("sagestream AsyncClient on uvloop", "uvloop"))
    runs: dict[str, Callable[[], tuple[float, float, int]]] = {}
    for label, client in clients:
        for name, build in ours(label, baseline):
            runs[name] = lambda b=build, c=client: tuple(on(b, baseline, "long_sagestream", url, parts, c))  # type: ignore[misc]
    rows = in_rounds(runs, rounds)
    print(f"\nlong stream: {parts} back-to-back parts of 100 B")
    print("| client | CPU µs / part | wall s |")
    print("|---|---:|---:|")
    for name, got in rows.items():
        per = statistics.median(c / n for c, _, n in got)
        print(f"| {name} | {per * 1e6:.3f} | {statistics.median(w for _, w, _ in got):.2f} |")
    compare(rows, baseline)


HOLD_TOKENS = 8000


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


Hold = tuple[float, float, float, float, int]


async def _beside_ticker(parts: AsyncIterable[Any], work: float) -> Hold:
    """Read ``parts`` (``work`` seconds of busy work each) beside a task that sleeps 1 ms at a
    time: (the most the task woke late — the longest the loop was held —, the most CPU time the
    loop's thread spent between two of its runs, the read's wall and CPU seconds, the parts
    read). The second is the first as a busy machine cannot inflate it (a thread waiting for a
    core spends no CPU time), though it may hold up to two slices (one before the tick was due)."""
    late = busiest = 0.0
    reading = True

    async def ticker() -> None:
        nonlocal late, busiest
        last = time.thread_time()
        while reading:
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            late = max(late, time.perf_counter() - due)
            now = time.thread_time()
            busiest, last = max(busiest, now - last), now

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0)
    n = 0
    started, cpu = time.perf_counter(), time.process_time()
    try:
        async for _ in parts:
            _spin(work)
            n += 1
    finally:
        reading = False
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    await task
    return late, busiest, wall, cpu, n


def hold_sagestream(url: str, tokens: int, work: float) -> Hold:
    """The loop hold of one back-to-back stream on the sagestream in this interpreter, from the
    answer's headers to its end."""

    async def main(count: int) -> Hold:
        attrs = f"tokens={count};size=20"
        async with (
            sagestream_async(url) as client,
            client.invoke_stream("bench", b"{}", custom_attributes=attrs) as s,
        ):
            return await _beside_ticker(s, work)

    asyncio.run(main(100))  # warm-up
    return asyncio.run(main(tokens))


def hold_aiobotocore(url: str, tokens: int, work: float) -> Hold:
    """The loop hold of one back-to-back stream on aiobotocore, from the answer's headers."""

    async def main(count: int) -> Hold:
        async with aiobotocore_client(url) as client:
            r = await client.invoke_endpoint_with_response_stream(
                EndpointName="bench", Body=b"{}", CustomAttributes=f"tokens={count};size=20"
            )
            return await _beside_ticker(r["Body"], work)

    asyncio.run(main(100))
    return asyncio.run(main(tokens))


def hold_floor(url: str, tokens: int, work: float) -> Hold:
    """The same ticker on a loop with nothing else to do for 0.2 s: what the measure reads when
    nothing holds the loop (timer rounding, the machine's scheduling)."""

    async def nothing() -> AsyncIterator[Any]:
        await asyncio.sleep(0.2)
        return
        yield  # an async generator of no items

    async def main() -> Hold:
        late, busiest, wall, cpu, _ = await _beside_ticker(nothing(), 0.0)
        return late, busiest, wall, cpu, tokens  # (the rows check the count)

    return asyncio.run(main())


def hold(url: str, rounds: int, baseline: str | None = None) -> None:
    clients: list[tuple[str, str | None, str, str | None]] = [
        ("sagestream AsyncClient", None, "hold_sagestream", None)
    ]
    if baseline is not None:
        clients[0] = ("sagestream AsyncClient, this build", None, "hold_sagestream", None)
        clients.append(("sagestream AsyncClient, baseline build", baseline, "hold_sagestream", None))
    clients.append(("aiobotocore", None, "hold_aiobotocore", _builds.aiobotocore_python()))
    clients.append(("ticker alone (floor)", None, "hold_floor", None))
    print(f"\nevent-loop hold: one stream of {HOLD_TOKENS} back-to-back tokens of 20 B, beside a 1 ms ticker")
    print(
        f"(each row in a fresh interpreter, {rounds} rounds, medians; hold: the most the ticker woke"
        " late; loop CPU: the most CPU time the loop's thread spent between two ticks)"
    )
    print("| client | work per token | hold ms | worst round ms | loop CPU ms | read wall ms | read CPU ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for work in (0.0, 20e-6):
        runs: dict[str, list[Hold]] = {name: [] for name, _, _, _ in clients}
        for round_ in range(rounds):
            for name, build, function, python in _builds.turns(clients, round_):
                got = _builds.call(build, "bench_requests", function, url, HOLD_TOKENS, work, python=python)
                if got[-1] != HOLD_TOKENS:
                    raise SystemExit(f"{name}: read {got[-1]} tokens of {HOLD_TOKENS}")
                runs[name].append(tuple(got))  # type: ignore[arg-type]
        for name, got in runs.items():

            def ms(i: int, of: list[Hold] = got) -> str:
                return f"{statistics.median(r[i] for r in of) * 1e3:.2f}"

            worst = max(r[0] for r in got) * 1e3
            print(f"| {name} | {work * 1e6:.0f} µs | {ms(0)} | {worst:.2f} | {ms(1)} | {ms(2)} | {ms(3)} |")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory() -> tuple[int, int | None]:
    """Resident bytes, and the C heap in use where glibc counts it (the tests' ``_heap.py``)."""
    tests = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from _heap import heap_in_use

    return _rss(), heap_in_use()


def _per(before: tuple[int, int | None], after: tuple[int, int | None], n: int) -> list[float | None]:
    """Resident and heap bytes per stream between two :func:`_memory` readings."""
    rss = (after[0] - before[0]) / n
    heap = None if before[1] is None or after[1] is None else (after[1] - before[1]) / n
    return [rss, heap]


def idle_sagestream(url: str, streams: int) -> list[float | None]:
    """Resident and heap bytes per open stream of the sagestream in this interpreter:
    ``streams`` streams opened, their first part read, the rest 30 s away."""

    async def run() -> list[float | None]:
        async with sagestream_async(url, pool=streams) as client:
            await client.invoke("bench", b"{}")
            gc.collect()
            before = _memory()
            opened = []
            for _ in range(streams):
                s = await client.invoke_stream("bench", b"{}", custom_attributes="tokens=2;first_pause=30")
                await s.__anext__()
                opened.append(s)
            gc.collect()
            after = _memory()
            for s in opened:
                s.close()
            return _per(before, after, streams)

    return asyncio.run(run())


def idle_protocol(url: str, streams: int) -> list[float | None]:
    """Resident and heap bytes per connection of a bare asyncio Protocol that sent the same
    request and holds its first chunk (the floor)."""
    request = presigned(url, STREAM_PATH, "tokens=2;first_pause=30")

    async def run() -> list[float | None]:
        loop = asyncio.get_running_loop()
        host, port = url.split("//", 1)[1].split(":")

        class Holder(asyncio.Protocol):
            def __init__(self) -> None:
                self.first = loop.create_future()
                self.data = b""

            def connection_made(self, transport: Any) -> None:
                transport.write(request)

            def data_received(self, data: bytes) -> None:
                self.data += data
                if not self.first.done():
                    self.first.set_result(None)

        transport, protocol = await loop.create_connection(Holder, host, int(port))
        await protocol.first
        transport.close()
        gc.collect()
        before = _memory()
        opened = []
        for _ in range(streams):
            transport, protocol = await loop.create_connection(Holder, host, int(port))
            await protocol.first
            opened.append(transport)
        gc.collect()
        after = _memory()
        for t in opened:
            t.close()
        return _per(before, after, streams)

    return asyncio.run(run())


def idle(url: str, streams: int = 500, baseline: str | None = None) -> None:
    print(f"\nidle open streams: {streams} (first part read, the rest 30 s away; fresh interpreters)")
    print("| client | resident KiB / open stream | C heap in use KiB / open stream |")
    print("|---|---:|---:|")

    def row(name: str, per: list[float | None]) -> None:
        rss, heap = per
        print(f"| {name} | {(rss or 0) / 1024:.1f} | {'n/a' if heap is None else f'{heap / 1024:.1f}'} |")

    for name, build in ours("sagestream AsyncClient", baseline):
        row(name, _builds.call(build, "bench_requests", "idle_sagestream", url, streams))
    row("bare asyncio Protocol (floor)", _builds.call(None, "bench_requests", "idle_protocol", url, streams))


def layers(url: str, rounds: int, calls: int = 5000) -> None:
    """The fixed cost of a 1-part stream on the sync client, layer by layer, in the calling
    thread's user and system CPU time (the transport's I/O runs on that thread)."""
    import resource

    from sagestream import _core

    if not hasattr(resource, "RUSAGE_THREAD"):
        print("\nlayers: needs RUSAGE_THREAD (Linux)")
        return
    transport = _core.Transport(
        region="us-east-1",
        service="sagemaker",
        connect_timeout=60.0,
        read_timeout=60.0,
        max_pool_connections=10,
        tcp_keepalive=False,
        verify=False,
    )
    transport.set_credentials(CREDS["aws_access_key_id"], CREDS["aws_secret_access_key"])
    headers = [("content-type", "application/json"), ("x-amzn-sagemaker-custom-attributes", "tokens=1")]
    raw = RawConnection(url)
    request = presigned(url, STREAM_PATH, "tokens=1")
    client = sagestream_client(url)

    def send(sign: bool) -> Callable[[], None]:
        def run() -> None:
            for _ in transport.send(
                "POST", url + STREAM_PATH, headers, b"{}", sign=sign, mode="stream"
            ).parts():
                pass

        return run

    def invoke_stream() -> None:
        for _ in client.invoke_stream("bench", b"{}", custom_attributes="tokens=1"):
            pass

    steps: dict[str, Callable[[], Any]] = {
        "raw pre-signed request, kept-alive socket": lambda: raw.exchange(request, stream=True),
        "_core.Transport.send, unsigned": send(False),
        "_core.Transport.send, signed": send(True),
        "sagestream Client.invoke_stream": invoke_stream,
    }

    def timed(step: Callable[[], Any]) -> Callable[[], tuple[float, float, float]]:
        def run() -> tuple[float, float, float]:
            for _ in range(100):
                step()
            before = resource.getrusage(resource.RUSAGE_THREAD)
            for _ in range(calls):
                step()
            after = resource.getrusage(resource.RUSAGE_THREAD)
            return (
                (after.ru_utime - before.ru_utime) / calls,
                (after.ru_stime - before.ru_stime) / calls,
                (after.ru_nvcsw - before.ru_nvcsw) / calls,
            )

        return run

    rows = in_rounds({name: timed(step) for name, step in steps.items()}, rounds)
    print(f"\nfixed cost by layer, 1-part stream, sync ({calls} sequential calls, the calling thread)")
    print("| layer | user µs | system µs | total µs | context switches / call |")
    print("|---|---:|---:|---:|---:|")
    for name, got in rows.items():
        user = statistics.median(u for u, _, _ in got) * 1e6
        system = statistics.median(s for _, s, _ in got) * 1e6
        switches = statistics.median(c for _, _, c in got)
        print(f"| {name} | {user:.1f} | {system:.1f} | {user + system:.1f} | {switches:.2f} |")


def only_needs_aiobotocore(only: str) -> bool:
    """Whether the chosen workloads have aiobotocore rows."""
    return bool({"fixed", "gateway", "short", "hold"} & set(only.split(",")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="fixed,gateway,threads,short,ttfp,long,hold,idle,layers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--baseline", help="a directory holding another build of sagestream (_builds.py)")
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print(f"# load average at the start: {f.read().strip()}")
    print(f"# sagestream, boto3: {_builds.versions(sys.executable)}")
    if only_needs_aiobotocore(args.only):
        print(f"# aiobotocore: {_builds.versions(_builds.aiobotocore_python())}")
    if args.baseline:
        print(f"# this build: {_builds.which(None)}; baseline build: {_builds.which(args.baseline)}")
    url, server = _pacer.start()
    try:
        only = set(args.only.split(","))
        if "fixed" in only:
            fixed(url, args.rounds, 100 if args.quick else 400, args.baseline)
        if "gateway" in only:
            gateway(url, args.rounds, 100, args.baseline)
            if not args.quick:
                gateway(url, args.rounds, 1000, args.baseline)
        if "threads" in only:
            threads(url, args.rounds)
        if "short" in only:
            short(url, args.rounds, 200 if args.quick else 1000)
        if "ttfp" in only:
            ttfp(url, args.rounds, 50, args.baseline)
        if "long" in only:
            long(url, args.rounds, 20_000 if args.quick else 100_000, args.baseline)
        if "hold" in only:
            hold(url, args.rounds, args.baseline)
        if "idle" in only:
            idle(url, 500, args.baseline)
        if "layers" in only:
            layers(url, args.rounds, 1000 if args.quick else 5000)
    finally:
        server.terminate()
        with open("/proc/loadavg") as f:
            print(f"\n# load average at the end: {f.read().strip()}")


if __name__ == "__main__":
    main()
