"""InvokeEndpointWithBidirectionalStream: sagestream vs the AWS SDK for Rust, side by side.

Both clients talk HTTP/2 over TLS to the same ``sagestream serve`` (a separate process, model
``echo``: every input part comes straight back): the round-trip latency of one small part on an
open, warm session, and the time and client CPU for 10,000 parts of 100 bytes each way in one
session (sent while the answer is read). sagestream runs in this process (CPU:
``time.process_time()``); the Rust SDK is ``examples/rust-sdk`` in a child process (CPU:
its rusage, process start and connection set-up included, a few milliseconds). The rounds
alternate between the clients; the table gives medians.

    make rust-sdk && python benches/bench_duplex.py [--parts 10000] [--rounds 5]

The emulator verifies every event's signature in Python, so on this machine it, not either
client, bounds the throughput: compare the CPU columns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SDK = Path(
    os.environ.get("SAGESTREAM_RUST_SDK_DUPLEX", ROOT / "target" / "rust-sdk" / "release" / "rust-sdk-duplex")
)
PART = b"x" * 100
KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"


def _serve() -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sagestream",
            "serve",
            "--port",
            "0",
            "--quiet",
            "--endpoint",
            "echo=echo",
            "--access-key-id",
            KEY,
            "--secret-access-key",
            SECRET,
            "--region",
            REGION,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = ca = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (url and ca):
        line = proc.stdout.readline()
        if "(HTTP/2, TLS):" in line:
            rest = line.split("(HTTP/2, TLS): ", 1)[1]
            url, _, ca = rest.partition(" (CA: ")
            ca = ca.strip().rstrip(")")
    if not url:
        proc.kill()
        raise SystemExit("sagestream serve did not start its TLS port")
    return proc, url.strip(), ca


def _client(url: str, ca: str) -> Any:
    import sagestream

    return sagestream.Client(
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        duplex_endpoint_url=url,
        verify=ca,
        endpoint_url="http://127.0.0.1:9",  # not used: only the HTTP/2 operation is called
    )


def sagestream_latency(client: Any, rounds: int) -> list[float]:
    with client.invoke_bidirectional("echo") as session:
        times = []
        for i in range(rounds + 20):
            started = time.perf_counter()
            session.send("ping")
            next(session)
            if i >= 20:  # the first ones warm the connection
                times.append(time.perf_counter() - started)
        session.close_input()
        list(session)
    return times


def sagestream_throughput(client: Any, parts: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    with client.invoke_bidirectional("echo", input=(PART for _ in range(parts))) as session:
        got = sum(1 for _ in session)
    assert got == parts, got
    return time.perf_counter() - wall, time.process_time() - cpu


async def _aio_throughput(url: str, ca: str, parts: int) -> tuple[float, float]:
    import sagestream

    async with sagestream.AsyncClient(
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        duplex_endpoint_url=url,
        verify=ca,
        endpoint_url="http://127.0.0.1:9",
    ) as client:
        async with client.invoke_bidirectional("echo") as warm:  # set-up outside the measure
            warm.close_input()
            await warm.read_all()
        cpu, wall = time.process_time(), time.perf_counter()
        async with client.invoke_bidirectional("echo", input=(PART for _ in range(parts))) as session:
            got = 0
            async for _ in session:
                got += 1
        assert got == parts, got
        return time.perf_counter() - wall, time.process_time() - cpu


def _sdk(env: dict[str, str], *args: str) -> tuple[list[str], float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([str(SDK), *args], capture_output=True, text=True, env=env, timeout=600, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.stdout.split(), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-rounds", type=int, default=200)
    args = parser.parse_args()
    if not SDK.exists():
        raise SystemExit(f"{SDK} is not built: make rust-sdk")
    proc, url, ca = _serve()
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION=REGION)
    results: dict[str, dict[str, list[float]]] = {
        name: {"latency": [], "wall": [], "cpu": []}
        for name in ("sagestream", "sagestream asyncio", "Rust SDK")
    }
    try:
        client = _client(url, ca)
        for _ in range(args.rounds):
            results["sagestream"]["latency"] += sagestream_latency(client, args.latency_rounds)
            out, _ = _sdk(env, "latency", url, ca, "echo", str(args.latency_rounds))
            results["Rust SDK"]["latency"] += [float(t) for t in out]
            wall, cpu = sagestream_throughput(client, args.parts)
            results["sagestream"]["wall"].append(wall)
            results["sagestream"]["cpu"].append(cpu)
            wall, cpu = asyncio.run(_aio_throughput(url, ca, args.parts))
            results["sagestream asyncio"]["wall"].append(wall)
            results["sagestream asyncio"]["cpu"].append(cpu)
            out, cpu = _sdk(env, "throughput", url, ca, "echo", str(args.parts), str(len(PART)))
            results["Rust SDK"]["wall"].append(float(out[0]))
            results["Rust SDK"]["cpu"].append(cpu)
        client.close()
    finally:
        proc.terminate()
        proc.wait(30)

    def med(values: list[float], scale: float) -> str:
        return f"{statistics.median(values) * scale:,.1f}" if values else "-"

    print(
        f"\n{args.parts:,} parts of {len(PART)} B each way, one session; "
        f"latency: 1 part, {args.latency_rounds} rounds"
    )
    print(f"| client | round trip of 1 part, ms | {args.parts:,} parts each way, s | client CPU, µs / part |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        wall = f"{statistics.median(r['wall']):.3f}" if r["wall"] else "-"
        print(f"| {name} | {med(r['latency'], 1e3)} | {wall} | {med(r['cpu'], 1e6 / args.parts)} |")


if __name__ == "__main__":
    main()
