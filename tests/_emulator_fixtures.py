"""Fixtures that start the local SageMaker Runtime emulator (a pytest plugin, see conftest.py).

- ``emulator``: one emulator for the whole session, endpoints ``demo`` (demo model) and
  ``echo`` (echo model); any other name is a ValidationError, as for a missing endpoint.
  Embedded S3 (moto) for async invocations, started in the background; no token delay.
- ``runtime_client``: a stock boto3 ``sagemaker-runtime`` client for it, with retries off
  (faults are deterministic, so a retry would only slow tests down) and 64 pooled connections.
- ``s3_client``: a stock boto3 ``s3`` client for its S3 endpoint.

``start_serve()`` / ``stop_serve()`` run ``sagestream serve`` as a subprocess; ``record_of()``
waits for a request's record in the emulator's log, ``s3_object()`` for an object in its S3.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from sagestream.emulator import Emulator, RequestRecord


def pytest_configure(config: pytest.Config) -> None:
    # moto's server imports requests, which probes urllib3's optional SOCKS support and warns
    # when PySocks is missing; the embedded S3 server imports it in a background thread.
    config.addinivalue_line("filterwarnings", "ignore::urllib3.exceptions.DependencyWarning")


def record_of(emu: Emulator, request_id: str | None, within: float) -> RequestRecord:
    """The emulator's record of the request answered with ``request_id`` (it logs a request
    once answered, a stream or session once it ended), waited for up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for record in emu.request_log.snapshot():
            if record.request_id == request_id:
                return record
        time.sleep(0.01)
    raise AssertionError(f"no record of {request_id}")


def aiobotocore_client(emulator: Emulator) -> Any:
    """An aiobotocore ``sagemaker-runtime`` client of the emulator, one attempt a call (an async
    context manager; aiobotocore is imported here, for the environment that has it)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    return get_session().create_client(
        "sagemaker-runtime",
        region_name=emulator.region,
        endpoint_url=emulator.url,
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
        config=AioConfig(retries={"total_max_attempts": 1}),
    )


def s3_object(s3: Any, uri: str, within: float = 15.0) -> bytes:
    """The bytes of the object at ``s3://bucket/key``, waited for up to ``within`` seconds (an
    async inference writes its output after answering)."""
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    deadline = time.monotonic() + within
    while True:
        try:
            data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return data
        except s3.exceptions.NoSuchKey:
            assert time.monotonic() < deadline, f"no object at {uri}"
            time.sleep(0.05)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(
        host="127.0.0.1",
        port=0,
        endpoints={"demo": "demo", "echo": "echo"},
        embedded_s3=True,
        token_delay=0.0,
    ) as emu:
        # Wait for the embedded S3 (its buckets are made by a background thread, signed with
        # botocore's clock): a test that skews that clock, such as test_emulator_auth's, must
        # not be the one running while they are made.
        assert emu.s3_endpoint_url is not None
        yield emu


@pytest.fixture(scope="session")
def runtime_client(emulator: Emulator) -> Any:
    return emulator.boto3_client(
        "sagemaker-runtime",
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=64),
    )


@pytest.fixture(scope="session")
def s3_client(emulator: Emulator) -> Any:
    return emulator.boto3_client("s3", config=Config(s3={"addressing_style": "path"}))


# --- `sagestream serve` as a subprocess ----------------------------------------------------

ACCESS_KEY = "AKIDSERVETEST"
SECRET_KEY = "serve-test-secret"
REGION = "eu-central-1"


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, s3_url: str, banner: list[str]) -> None:
        self.proc = proc
        self.url = url
        self.s3_url = s3_url
        self.banner = banner

    def client(self, service: str = "sagemaker-runtime") -> Any:
        session = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
        )
        url = self.url if service == "sagemaker-runtime" else self.s3_url
        return session.client(service, endpoint_url=url, config=Config(retries={"total_max_attempts": 1}))


def start_serve(*extra: str) -> Served:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sagestream",
            "serve",
            "--port",
            "0",
            "--region",
            REGION,
            "--access-key-id",
            ACCESS_KEY,
            "--secret-access-key",
            SECRET_KEY,
            "--token-delay",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    banner: list[str] = []
    url = s3_url = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not s3_url:
        line = proc.stdout.readline()
        if not line:
            break
        banner.append(line.rstrip("\n"))
        if "listening on " in line:
            url = line.split("listening on ", 1)[1].split()[0]
        if line.strip().startswith("S3:"):
            s3_url = line.split("S3:", 1)[1].strip()
    if not url or not s3_url:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"serve did not start: {banner} {out} {err}")
    return Served(proc, url, s3_url, banner)


def stop_serve(served: Served, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    served.proc.send_signal(sig)
    try:
        out, err = served.proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.communicate()
        raise
    return served.proc.returncode, out, err
