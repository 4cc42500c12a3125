"""asyncio end to end: sagestream.AsyncClient vs aiobotocore, side by side in one run.

N concurrent InvokeEndpointWithResponseStream calls, each answered with P PayloadPart frames of
~100 bytes (one HTTP chunk per frame), by a loopback server running in a separate process, so
``time.process_time()`` in this process is the client's CPU alone. Both clients make signed
requests over a connection pool of N connections and read every part; the rounds alternate
between the clients and the table reports medians.

    python benches/bench_aio.py [--streams 200] [--parts 500] [--rounds 5] [--interval 0.002]
        [--baseline DIR]

``--interval`` paces each stream's parts on the server (seconds between parts, like tokens from
a model); 0 writes them back to back, so reads carry many frames. ``--baseline DIR`` adds the
row of another build of sagestream (see ``_builds.py``); both builds then run in fresh
interpreters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import _builds

PART = b"x" * 100


# --- the server (separate process) -----------------------------------------------------------


def _serve(port: int, parts: int, interval: float, ready: Any) -> None:
    from sagestream._core import encode

    frame = encode(
        {":message-type": "event", ":event-type": "PayloadPart", ":content-type": "application/octet-stream"},
        PART,
    )
    chunk = b"%x\r\n%s\r\n" % (len(frame), frame)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
        b"X-Amzn-SageMaker-Content-Type: application/octet-stream\r\n"
        b"x-Amzn-Invoked-Production-Variant: AllTraffic\r\nTransfer-Encoding: chunked\r\n\r\n"
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    header = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in header.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                writer.write(head)
                for _ in range(parts):
                    writer.write(chunk)
                    if interval:
                        await asyncio.sleep(interval)
                    else:
                        await asyncio.sleep(0)
                    if writer.transport.get_write_buffer_size() > 1 << 20:
                        await writer.drain()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def loopback(parts: int, interval: float) -> Iterator[str]:
    """The loopback server in a process of its own, for the block: its URL."""
    port = _free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, parts, interval, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(20):
            raise SystemExit("the loopback server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.join(5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the clients -----------------------------------------------------------------------------

CREDS = {"aws_access_key_id": "AKIDBENCH", "aws_secret_access_key": "secret", "region_name": "us-east-1"}


async def run_sagestream(url: str, streams: int, parts: int) -> tuple[float, float, int]:
    import boto3
    import sagestream
    from botocore.config import Config

    client = sagestream.AsyncClient(
        boto3.Session(**CREDS),
        endpoint_url=url,
        config=Config(max_pool_connections=streams, retries={"max_attempts": 1}),
    )
    await client._ready()

    async def one() -> int:
        n = 0
        async with client.invoke_stream("bench", b"{}") as stream:
            async for part in stream:
                n += len(part)
        return n

    try:
        cpu, wall = time.process_time(), time.perf_counter()
        received = sum(await asyncio.gather(*(one() for _ in range(streams))))
        return time.process_time() - cpu, time.perf_counter() - wall, received
    finally:
        await client.close()


def sagestream_in_child(url: str, streams: int, parts: int) -> tuple[float, float, int]:
    """One run of the sagestream in this interpreter, after a warm-up; for ``--baseline``."""
    asyncio.run(run_sagestream(url, min(streams, 10), parts))
    return asyncio.run(run_sagestream(url, streams, parts))


async def run_aiobotocore(url: str, streams: int, parts: int) -> tuple[float, float, int]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    session = get_session()
    config = AioConfig(max_pool_connections=streams, retries={"max_attempts": 1})
    async with session.create_client("sagemaker-runtime", endpoint_url=url, config=config, **CREDS) as client:

        async def one() -> int:
            n = 0
            response = await client.invoke_endpoint_with_response_stream(EndpointName="bench", Body=b"{}")
            async for event in response["Body"]:
                n += len(event["PayloadPart"]["Bytes"])
            return n

        cpu, wall = time.process_time(), time.perf_counter()
        received = sum(await asyncio.gather(*(one() for _ in range(streams))))
        return time.process_time() - cpu, time.perf_counter() - wall, received


def aiobotocore_in_child(url: str, streams: int, parts: int) -> tuple[float, float, int]:
    """One aiobotocore run after a warm-up, in aiobotocore's own environment (it pins an older
    botocore than the newest, which sagestream is measured on)."""
    asyncio.run(run_aiobotocore(url, min(streams, 10), parts))
    return asyncio.run(run_aiobotocore(url, streams, parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--parts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.002)
    parser.add_argument("--baseline", help="a directory holding another build of sagestream (_builds.py)")
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print(f"# load average at the start: {f.read().strip()}")

    try:
        with loopback(args.parts, args.interval) as url:
            _compare(args, url)
    finally:
        with open("/proc/loadavg") as f:
            print(f"# load average at the end: {f.read().strip()}")
    return 0


def _compare(args: argparse.Namespace, url: str) -> None:
    """The rounds and the table."""
    total_parts = args.streams * args.parts
    expected = total_parts * len(PART)
    runners: dict[str, Callable[[], tuple[float, float, int]]] = {
        "sagestream": lambda: asyncio.run(run_sagestream(url, args.streams, args.parts)),
        "aiobotocore": functools.partial(
            _builds.call,
            None,
            "bench_aio",
            "aiobotocore_in_child",
            url,
            args.streams,
            args.parts,
            python=_builds.aiobotocore_python(),
        ),
    }
    if args.baseline:
        # Both builds in fresh interpreters, measured alike.
        print(f"# this build: {_builds.which(None)}; baseline build: {_builds.which(args.baseline)}")
        del runners["sagestream"]
        for label, build in (("this build", None), ("baseline build", args.baseline)):
            runners[f"sagestream, {label}"] = functools.partial(
                _builds.call, build, "bench_aio", "sagestream_in_child", url, args.streams, args.parts
            )
    asyncio.run(run_sagestream(url, min(args.streams, 10), args.parts))  # warm-up: imports, connections
    print(f"# sagestream: {_builds.versions(sys.executable)}")
    print(f"# aiobotocore: {_builds.versions(_builds.aiobotocore_python())}")
    results = _builds.rounds(runners, args.rounds, expected)
    print(
        f"# {args.streams} concurrent streams x {args.parts} parts of {len(PART)} B,"
        f" interval {args.interval * 1000:g} ms, {args.rounds} rounds, medians;"
        f" python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print("| client | CPU µs / part | total time s | CPU vs aiobotocore |")
    print("|---|---:|---:|---:|")
    base = statistics.median(c for c, _ in results["aiobotocore"]) / total_parts
    for name in ("aiobotocore", *(n for n in results if n != "aiobotocore")):
        cpu = statistics.median(c for c, _ in results[name]) / total_parts
        wall = statistics.median(w for _, w in results[name])
        ratio = "baseline" if name == "aiobotocore" else f"{base / cpu:.1f}x less"
        print(f"| {name} | {cpu * 1e6:.2f} | {wall:.2f} | {ratio} |")
    if args.baseline:
        this, base = (results[f"sagestream, {n}"] for n in ("this build", "baseline build"))
        print(f"CPU, {_builds.paired([c for c, _ in this], [c for c, _ in base])}")


if __name__ == "__main__":
    sys.exit(main())
