"""Bounded load on ``sagestream serve``: many concurrent streams from stock boto3 threads.

The server runs in its own process so that its CPU time can be read from /proc and the
client threads do not share its GIL. Every part is checked byte for byte; the emulator's CPU
per part is printed (``-s`` shows it), never asserted.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from _emulator_fixtures import ACCESS_KEY, REGION, SECRET_KEY, Served, start_serve, stop_serve
from botocore.config import Config
from sagestream.emulator import bulk_part

pytestmark = pytest.mark.slow


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def served() -> Any:
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("needs /proc to read the server's CPU time")
    s = start_serve("--quiet", "--endpoint", "bulk=demo")
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            stop_serve(s)


def _client(served: Served, pool: int) -> Any:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    return session.client(
        "sagemaker-runtime",
        endpoint_url=served.url,
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=pool, read_timeout=60),
    )


def test_200_concurrent_streams_of_1000_parts(served: Served) -> None:
    streams, parts, size = 200, 1000, 100
    client = _client(served, streams)
    expected = [bulk_part(i, size) for i in range(parts)]

    def one(_: int) -> bool:
        resp = client.invoke_endpoint_with_response_stream(
            EndpointName="bulk", Body=b"", CustomAttributes=f"parts={parts};part_size={size};delay_ms=0"
        )
        got = [event["PayloadPart"]["Bytes"] for event in resp["Body"]]
        return got == expected

    cpu_before = _cpu_seconds(served.proc.pid)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=streams) as pool:
        results = list(pool.map(one, range(streams)))
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(served.proc.pid) - cpu_before
    assert results == [True] * streams
    total = streams * parts
    print(
        f"\n{streams} streams x {parts} parts of {size} B: {elapsed:.2f} s wall, "
        f"emulator CPU {cpu:.2f} s = {cpu / total * 1e6:.2f} us/part"
    )


def test_one_stream_of_100000_parts(served: Served) -> None:
    client = _client(served, 1)
    count = 100_000
    cpu_before = _cpu_seconds(served.proc.pid)
    started = time.perf_counter()
    resp = client.invoke_endpoint_with_response_stream(
        EndpointName="bulk", Body=b"", CustomAttributes=f"parts={count};part_size=100;delay_ms=0"
    )
    n = 0
    for i, event in enumerate(resp["Body"]):
        assert event["PayloadPart"]["Bytes"] == bulk_part(i, 100)
        n += 1
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(served.proc.pid) - cpu_before
    assert n == count
    per_part = cpu / count * 1e6
    print(f"\n1 stream x {count} parts of 100 B: {elapsed:.2f} s wall, emulator CPU {per_part:.2f} us/part")
