"""invoke_many against the emulator: exact outputs, typed errors per row, bounds, restarts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest
import sagestream
from botocore.config import Config
from sagestream.batch import AttemptCounter, Limiter, Request, Result, invoke_many
from sagestream.emulator import Emulator
from sagestream.emulator.requestlog import RequestLog
from sagestream.exceptions import (
    ConnectionLostError,
    ModelError,
    ModelNotReadyException,
    ModelStreamError,
    TruncatedStreamError,
)

PART = 4096  # the echo model's part size for streams


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[sagestream.AsyncClient]:
    session = boto3.Session(
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
        region_name=emulator.region,
    )
    async with sagestream.AsyncClient(
        session,
        endpoint_url=emulator.url,
        config=Config(retries={"total_max_attempts": 1}),
        observer=AttemptCounter(),
    ) as c:
        yield c


def body_of(i: int) -> bytes:
    head = f"b{i:04d}|".encode()
    return head + b"z" * (2 * PART + 10 - len(head))


def tagged(emulator: Emulator, tag: str) -> RequestLog:
    """The request log's records carrying ``tag`` in their CustomAttributes."""
    log = RequestLog()
    for record in emulator.request_log.snapshot():
        if record.custom_attributes and tag in record.custom_attributes:
            log.append(record)
    return log


async def collect(results: AsyncIterator[Result]) -> dict[int, Result]:
    out: dict[int, Result] = {}
    async for result in results:
        assert result.index not in out
        out[result.index] = result
    return out


async def test_every_body_answered_exactly_within_max_in_flight(
    client: sagestream.AsyncClient, emulator: Emulator
) -> None:
    bodies = [Request(body_of(i), custom_attributes="tag=many;delay_ms=5") for i in range(60)]
    got = await collect(invoke_many(client, "echo", bodies, max_in_flight=3))
    assert sorted(got) == list(range(60))
    for i, result in got.items():
        assert result.ok
        assert result.output == body_of(i)
        assert (result.parts, result.attempts, result.restarts) == (3, 1, 0)
    assert tagged(emulator, "tag=many").peak_concurrency() <= 3


async def test_errors_are_typed_per_row_and_keep_partial_output(client: sagestream.AsyncClient) -> None:
    bodies = [
        Request(body_of(0)),
        Request(body_of(1), custom_attributes="fault=model-error"),
        Request(body_of(2), custom_attributes="fault=model-stream-error;after=2"),
        Request(body_of(3), custom_attributes="fault=throttle"),
        b"plain bytes",
    ]
    got = await collect(invoke_many(client, "echo", bodies, max_in_flight=2))
    assert got[0].output == body_of(0)
    assert got[0].error is None
    assert isinstance(got[1].error, ModelError)
    assert got[1].output is None
    assert isinstance(got[2].error, ModelStreamError)
    assert got[2].output == body_of(2)[: 2 * PART]
    assert got[2].parts == 2
    assert isinstance(got[3].error, ModelNotReadyException)
    assert got[3].error_text is not None
    assert got[3].error_text.startswith("ModelNotReadyException: ")
    assert got[4].output == b"plain bytes"


async def test_stream_restarts_discard_the_partial_output(
    client: sagestream.AsyncClient, emulator: Emulator
) -> None:
    # The fault is in every try: each restart is sent, and only the last try's parts remain.
    attributes = "fault=cut;after=1;tag=restart"
    got = await collect(
        invoke_many(client, "echo", [Request(body_of(7), custom_attributes=attributes)], stream_restarts=2)
    )
    result = got[0]
    assert isinstance(result.error, (TruncatedStreamError, ConnectionLostError))
    assert (result.restarts, result.attempts) == (2, 3)
    assert result.output == body_of(7)[:PART]
    assert len(tagged(emulator, "tag=restart")) == 3


async def test_shared_limiter_bounds_what_the_endpoint_sees(
    client: sagestream.AsyncClient, emulator: Emulator
) -> None:
    limiter = Limiter(requests_per_second=20, concurrency=2)
    bodies = [Request(body_of(i), custom_attributes="tag=limited") for i in range(40)]
    got = await collect(invoke_many(client, "echo", bodies, max_in_flight=8, limiter=limiter))
    assert all(r.ok and r.output == body_of(i) for i, r in got.items())
    log = tagged(emulator, "tag=limited")
    assert len(log) == 40
    assert log.peak_concurrency() <= 2
    assert log.max_rate(1.0) <= 20
    assert limiter.snapshot()["in_progress"] == 0


async def test_prompt_json_and_modes(client: sagestream.AsyncClient) -> None:
    payload = json.dumps({"inputs": "x"}).encode()
    for mode in ("invoke", "stream"):
        got = await collect(invoke_many(client, "echo", [payload], mode=mode, output="text"))  # type: ignore[arg-type]
        assert got[0].output == payload.decode()


async def test_leaving_early_cancels_the_rest(client: sagestream.AsyncClient) -> None:
    async def endless() -> AsyncIterator[bytes]:
        i = 0
        while True:
            yield body_of(i)
            i += 1

    seen: list[Any] = []
    async for result in invoke_many(client, "echo", endless(), max_in_flight=4):
        seen.append(result)
        if len(seen) == 10:
            break
    assert len(seen) == 10
    assert all(r.ok for r in seen)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"mode": "nope"}, "mode"),
        ({"output": "nope"}, "output"),
        ({"stream_restarts": -1}, "stream_restarts"),
        ({"mode": "async"}, "input_prefix"),
    ],
)
async def test_bad_options_raise_before_sending(
    client: sagestream.AsyncClient, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        async for _ in invoke_many(client, "echo", [b"x"], **kwargs):
            pass
