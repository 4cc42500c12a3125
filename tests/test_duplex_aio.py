"""sagestream.AsyncClient.invoke_bidirectional against the emulator: the same session as the
sync client's, awaited — fields, backpressure, async input, cancellation, errors, 200 sessions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import sagestream
from sagestream.emulator import Emulator, RequestRecord


def _client(emu: Emulator) -> sagestream.AsyncClient:
    return sagestream.AsyncClient(
        region_name=emu.region,
        endpoint_url=emu.url,
        aws_access_key_id=emu.access_key_id,
        aws_secret_access_key=emu.secret_access_key,
        duplex_endpoint_url=emu.duplex_url,
    )


async def _record_of(emu: Emulator, request_id: str | None) -> RequestRecord:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for record in emu.request_log.snapshot():
            if record.request_id == request_id:
                return record
        await asyncio.sleep(0.01)
    raise AssertionError(f"no record of {request_id}")


async def test_echo_every_field(duplex_emulator: Emulator) -> None:
    async with _client(duplex_emulator) as client, client.invoke_bidirectional("echo") as session:
        await session.send("text", complete=True)
        await session.send(b"\x00", text=False, complete=False)
        await session.send(b"plain")
        session.close_input()
        parts = [part async for part in session]
    assert parts == [b"text", b"\x00", b"plain"]
    assert [(p.data_type, p.completion_state) for p in parts] == [
        ("UTF8", "COMPLETE"),
        ("BINARY", "PARTIAL"),
        (None, None),
    ]
    assert session.invoked_production_variant == "AllTraffic"
    assert session.sent_parts == 3


async def test_turns_while_the_session_is_open(duplex_emulator: Emulator) -> None:
    async with _client(duplex_emulator) as client:
        session = await client.invoke_bidirectional("demo")
        await session.send("hello there", complete=True)
        answers = [await session.__anext__() for _ in range(3)]
        assert [(bytes(p), p.completion_state) for p in answers] == [
            (b"hello", "PARTIAL"),
            (b"hello there", "PARTIAL"),
            (b"hello there.", "COMPLETE"),
        ]
        session.close_input()
        assert await session.read_all() == b""
        session.close()


async def test_async_iterable_input_and_lines(duplex_emulator: Emulator) -> None:
    async def chunks() -> AsyncIterator[str]:
        for piece in ("al", "pha\nbe", "ta\n"):
            yield piece
            await asyncio.sleep(0)

    async with (
        _client(duplex_emulator) as client,
        client.invoke_bidirectional("echo", input=chunks()) as session,
    ):
        assert [line async for line in session.lines()] == ["alpha", "beta"]


async def test_send_waits_when_nobody_reads(duplex_emulator: Emulator) -> None:
    total = 500
    part = b"x" * 65536
    async with _client(duplex_emulator) as client, client.invoke_bidirectional("echo") as session:

        async def send_all() -> None:
            for _ in range(total):
                await session.send(part)
            session.close_input()

        sender = asyncio.create_task(send_all())
        # Wait until the sender stops making progress: the queues and windows are full.
        last, still = -1, 0
        while still < 20 and not sender.done():
            await asyncio.sleep(0.05)
            sent = session.sent_parts
            still = still + 1 if sent == last else 0
            last = sent
        assert not sender.done()
        # Bounded by the input queue, the HTTP/2 windows and the echo model's queue, not by what
        # the sender has: 32 MiB were not taken in.
        assert session.sent_parts < total * 3 // 4
        received = 0
        async for got in session:
            assert got == part
            received += 1
        await sender
    assert received == total


async def test_stream_error_after_the_parts_before_it(duplex_emulator: Emulator) -> None:
    async with (
        _client(duplex_emulator) as client,
        client.invoke_bidirectional("echo", model_query_string="fault=model-stream-error&after=1") as session,
    ):
        await session.send("a")
        await session.send("b")
        assert await session.__anext__() == b"a"
        with pytest.raises(sagestream.ModelStreamError) as caught:
            await session.__anext__()
    assert caught.value.error_code == "ModelInvocationTimeExceeded"


async def test_operation_error(duplex_emulator: Emulator) -> None:
    async with _client(duplex_emulator) as client:
        session = await client.invoke_bidirectional("nowhere")
        with pytest.raises(sagestream.InputValidationError):
            await session.__anext__()
        with pytest.raises(sagestream.ParamValidationError):
            client.invoke_bidirectional("echo", model_query_string="\n")


async def test_cancelling_the_reading_task_resets_the_stream(duplex_emulator: Emulator) -> None:
    async with _client(duplex_emulator) as client:
        session = await client.invoke_bidirectional("echo")
        await session.send("first")

        async def read() -> None:
            async for _ in session:
                pass

        reader = asyncio.create_task(read())
        while session.metrics.parts < 1:
            await asyncio.sleep(0.01)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert session.closed
        assert (await _record_of(duplex_emulator, session.request_id)).error == "client-gone"
        session.close()


async def test_the_deadline(duplex_emulator: Emulator) -> None:
    async with (
        _client(duplex_emulator) as client,
        client.invoke_bidirectional("echo", deadline=0.3) as session,
    ):
        with pytest.raises(sagestream.DeadlineExceededError):
            await session.__anext__()


async def test_200_concurrent_sessions(duplex_emulator: Emulator) -> None:
    async with _client(duplex_emulator) as client:

        async def one(i: int) -> list[bytes]:
            async with client.invoke_bidirectional("echo") as session:
                for j in range(5):
                    await session.send(f"{i}:{j}")
                session.close_input()
                return [bytes(p) async for p in session]

        results = await asyncio.gather(*(one(i) for i in range(200)))
    assert results == [[f"{i}:{j}".encode() for j in range(5)] for i in range(200)]
