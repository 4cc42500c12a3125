"""The async twins yield what the sync iterators yield, as soon as each item is complete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from _hypothesis import examples
from _reassembly_helpers import split_streams
from hypothesis import given, settings
from sagestream.exceptions import LineTooLongError, ReassemblyError
from sagestream.reassembly import (
    ServerSentEvent,
    aiter_json_lines,
    aiter_lines,
    aiter_sse,
    iter_lines,
    iter_sse,
)


async def agen(parts: Sequence[bytes], pulled: list[bytes] | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        if pulled is not None:
            pulled.append(part)
        yield part


@settings(max_examples=examples(100), deadline=None)
@given(split_streams())
def test_async_twins_match_sync(case: tuple[bytes, list[bytes]]) -> None:
    _, parts = case

    async def collect() -> tuple[list[str], list[ServerSentEvent]]:
        lines = [line async for line in aiter_lines(agen(parts), errors="replace")]
        events = [e async for e in aiter_sse(agen(parts))]
        return lines, events

    assert asyncio.run(collect()) == (list(iter_lines(parts, errors="replace")), list(iter_sse(parts)))


async def test_aiter_lines_yields_before_reading_on_and_ends_without_newline() -> None:
    pulled: list[bytes] = []
    it = aiter_lines(agen([b"a\nb", "é".encode()[:1], "é".encode()[1:] + b"\r", b"\nlast"], pulled))
    assert await it.__anext__() == "a"
    assert pulled == [b"a\nb"]
    assert [line async for line in it] == ["bé", "last"]


async def test_aiter_sse_tgi_style() -> None:
    parts = [b'data: {"token": {"text": "Hi"}}\n', b"\ndata: ", b'{"token": {"text": "!"}}']
    got = [e.json()["token"]["text"] async for e in aiter_sse(agen(parts))]
    assert got == ["Hi", "!"]


async def test_aiter_json_lines_and_errors_after_earlier_items() -> None:
    it = aiter_json_lines(agen([b'{"a": 1}\n\n', b"oops\n[2]\n"]))
    assert await it.__anext__() == {"a": 1}
    with pytest.raises(ReassemblyError, match="line 3"):
        await it.__anext__()
    with pytest.raises(LineTooLongError):
        await aiter_lines(agen([b"x" * 100]), max_line_bytes=10).__anext__()


async def test_async_twins_aclose_the_source_on_a_reassembly_error() -> None:
    closed: list[bool] = []

    async def source() -> AsyncIterator[bytes]:
        try:
            yield b"ok\n"
            yield b"x" * 100
            yield b"never\n"
        finally:
            closed.append(True)

    it = aiter_lines(source(), max_line_bytes=10)
    assert await it.__anext__() == "ok"
    with pytest.raises(LineTooLongError):
        await it.__anext__()
    assert closed == [True]
