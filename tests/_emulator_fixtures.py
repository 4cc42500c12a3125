"""Fixtures that start the local SageMaker Runtime emulator (a pytest plugin, see conftest.py).

- ``emulator``: one emulator for the whole session, endpoints ``demo`` (demo model) and
  ``echo`` (echo model); any other name is a ValidationError, as for a missing endpoint.
  Embedded S3 (moto) for async invocations, started in the background; no token delay.
- ``runtime_client``: a stock boto3 ``sagemaker-runtime`` client for it, with retries off
  (faults are deterministic, so a retry would only slow tests down) and 64 pooled connections.
- ``s3_client``: a stock boto3 ``s3`` client for its S3 endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from sagestream.emulator import Emulator


def pytest_configure(config: pytest.Config) -> None:
    # moto's server imports requests, which probes urllib3's optional SOCKS support and warns
    # when PySocks is missing; the embedded S3 server imports it in a background thread.
    config.addinivalue_line("filterwarnings", "ignore::urllib3.exceptions.DependencyWarning")


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(
        host="127.0.0.1",
        port=0,
        endpoints={"demo": "demo", "echo": "echo"},
        embedded_s3=True,
        token_delay=0.0,
    ) as emu:
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
