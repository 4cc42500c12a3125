"""patch_botocore(): stock boto3 decodes in Rust and behaves exactly as before, checked differentially."""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import botocore.eventstream
import pytest
import sagestream
import urllib3.exceptions
from _emulator_fixtures import aiobotocore_client
from botocore.exceptions import EventStreamError
from sagestream import patch_botocore, unpatch_botocore
from sagestream._patch import is_patched
from sagestream.exceptions import InternalStreamFailure, ModelStreamError, StreamError

BODY = b'{"inputs": "Tell me about rivers", "parameters": {"max_new_tokens": 40}}'


@pytest.fixture(autouse=True)
def _restore() -> Any:
    yield
    unpatch_botocore()


def run(
    client: Any, custom_attributes: str | None = None, **kw: Any
) -> tuple[list[Any], BaseException | None]:
    params: dict[str, Any] = {"EndpointName": "demo", "Body": BODY, **kw}
    if custom_attributes:
        params["CustomAttributes"] = custom_attributes
    resp = client.invoke_endpoint_with_response_stream(**params)
    events: list[Any] = []
    try:
        for event in resp["Body"]:
            events.append(event)
    except Exception as exc:
        return events, exc
    finally:
        resp["Body"].close()
    return events, None


def both(client: Any, attrs: str | None = None, **kw: Any) -> tuple[Any, Any]:
    unpatch_botocore()
    stock = run(client, attrs, **kw)
    patch_botocore()
    patched = run(client, attrs, **kw)
    unpatch_botocore()
    return stock, patched


@pytest.mark.parametrize(
    "attrs",
    [
        None,
        "format=sse;tokens=30",
        "format=jsonl;tokens=25",
        "tokens=0",
        "parts=3000;part_size=100;delay_ms=0",
        "parts=20;part_size=70000;delay_ms=0",
    ],
)
def test_same_events(runtime_client: Any, attrs: str | None) -> None:
    (stock_events, stock_exc), (events, exc) = both(runtime_client, attrs)
    assert stock_exc is None
    assert exc is None
    assert events == stock_events
    assert all(set(e) == {"PayloadPart"} and set(e["PayloadPart"]) == {"Bytes"} for e in events)


@pytest.mark.parametrize(
    ("attrs", "typed"),
    [
        ("fault=model-stream-error;after=3", ModelStreamError),
        ("fault=model-stream-error;after=0;code=StreamBroken", ModelStreamError),
        ("fault=internal-stream-failure;after=5", InternalStreamFailure),
        ("fault=error-frame;after=2;code=Throttled;message=slow down", StreamError),
    ],
)
def test_same_stream_errors(runtime_client: Any, attrs: str, typed: type) -> None:
    (stock_events, stock_exc), (events, exc) = both(runtime_client, attrs)
    assert type(stock_exc) is EventStreamError
    assert events == stock_events
    assert isinstance(exc, EventStreamError)
    assert type(exc) is typed
    assert str(exc) == str(stock_exc)
    assert exc.response == stock_exc.response  # type: ignore[union-attr]
    assert exc.operation_name == stock_exc.operation_name  # type: ignore[union-attr]


def test_same_cut(runtime_client: Any) -> None:
    (stock_events, stock_exc), (events, exc) = both(runtime_client, "fault=cut;after=4")
    assert events == stock_events
    assert len(events) == 4
    assert type(exc) is type(stock_exc)
    assert str(exc) == str(stock_exc)
    assert isinstance(exc, urllib3.exceptions.ProtocolError)


def test_same_stall_timeout(emulator: Any) -> None:
    from botocore.config import Config

    client = emulator.boto3_client(
        "sagemaker-runtime", config=Config(retries={"total_max_attempts": 1}, read_timeout=0.4)
    )
    (stock_events, stock_exc), (events, exc) = both(client, "fault=stall;after=2;seconds=2")
    assert events == stock_events
    assert len(events) == 2
    assert type(exc) is type(stock_exc)
    assert str(exc) == str(stock_exc)


def test_same_http_errors(runtime_client: Any) -> None:
    for attrs in ["fault=model-error", "fault=throttle", "fault=unavailable", "fault=dependency"]:
        unpatch_botocore()
        with pytest.raises(Exception) as stock:  # noqa: PT011
            run(runtime_client, attrs)
        patch_botocore()
        with pytest.raises(Exception) as patched:  # noqa: PT011
            run(runtime_client, attrs)
        assert type(patched.value) is type(stock.value)
        assert str(patched.value) == str(stock.value)


def test_patch_is_idempotent_reversible_and_thread_safe() -> None:
    original = botocore.eventstream.EventStream.__iter__
    threads = [threading.Thread(target=patch_botocore) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert is_patched()
    patched = botocore.eventstream.EventStream.__iter__
    assert patched is not original
    patch_botocore()
    assert botocore.eventstream.EventStream.__iter__ is patched
    unpatch_botocore()
    unpatch_botocore()
    assert botocore.eventstream.EventStream.__iter__ is original
    assert not is_patched()
    assert sagestream.patch_botocore is patch_botocore
    assert sagestream.is_patched is is_patched


def test_other_event_streams_are_left_to_botocore() -> None:
    from sagestream._patch import _applies

    class Shape:
        name = "SelectObjectContentEventStream"

    stream = botocore.eventstream.EventStream(None, Shape(), None, "SelectObjectContent")
    assert not _applies(stream)


def test_patched_path_does_not_use_botocore_decoder(
    runtime_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Boom:
        def __init__(self) -> None:
            raise AssertionError("botocore's EventStreamBuffer was used")

    monkeypatch.setattr(botocore.eventstream, "EventStreamBuffer", Boom)
    patch_botocore()
    events, exc = run(runtime_client, "tokens=10")
    assert exc is None
    assert len(events) == 10


# --- aiobotocore (aioboto3 users): the same checks over its real aiohttp body -----------------
# aiobotocore pins an older botocore, so these run in an environment of their own (make test-aio).

NEEDS_AIOBOTOCORE = pytest.mark.skipif(
    importlib.util.find_spec("aiobotocore") is None,
    reason="aiobotocore is not installed here: `make test-aio` runs these",
)


async def arun(emulator: Any, attrs: str | None) -> tuple[list[Any], BaseException | None, Any]:
    params: dict[str, Any] = {"EndpointName": "demo", "Body": BODY}
    if attrs:
        params["CustomAttributes"] = attrs
    async with aiobotocore_client(emulator) as client:
        resp = await client.invoke_endpoint_with_response_stream(**params)
        body = resp["Body"]
        events: list[Any] = []
        try:
            async for event in body:
                events.append(event)
        except Exception as exc:
            return events, exc, body
        finally:
            # A body that ended in an error still holds its aiohttp connection: give it back
            # now, not to the garbage collector (a ResourceWarning in whichever test runs then).
            body.close()
        return events, None, body


async def aboth(emulator: Any, attrs: str | None) -> tuple[Any, Any]:
    unpatch_botocore()
    stock = await arun(emulator, attrs)
    patch_botocore()
    try:
        patched = await arun(emulator, attrs)
    finally:
        unpatch_botocore()
    # The patched body was decoded by sagestream: it holds sagestream's decoder.
    assert "_sagestream_events" in vars(patched[2])
    assert "_sagestream_events" not in vars(stock[2])
    return stock[:2], patched[:2]


@pytest.mark.parametrize(
    "attrs", [None, "format=sse;tokens=30", "tokens=0", "parts=500;part_size=100;delay_ms=0"]
)
@NEEDS_AIOBOTOCORE
async def test_aiobotocore_same_events(emulator: Any, attrs: str | None) -> None:
    (stock_events, stock_exc), (events, exc) = await aboth(emulator, attrs)
    assert stock_exc is None
    assert exc is None
    assert events == stock_events
    assert bool(events) == (attrs != "tokens=0")


@pytest.mark.parametrize(
    ("attrs", "typed"),
    [
        ("fault=model-stream-error;after=3", ModelStreamError),
        ("fault=internal-stream-failure;after=5", InternalStreamFailure),
        ("fault=error-frame;after=2;code=Throttled;message=slow down", StreamError),
    ],
)
@NEEDS_AIOBOTOCORE
async def test_aiobotocore_same_stream_errors(emulator: Any, attrs: str, typed: type) -> None:
    (stock_events, stock_exc), (events, exc) = await aboth(emulator, attrs)
    assert type(stock_exc) is EventStreamError
    assert events == stock_events
    assert type(exc) is typed
    assert str(exc) == str(stock_exc)
    assert exc.response == stock_exc.response  # type: ignore[union-attr]
