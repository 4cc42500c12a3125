"""What the event loop did while a stream was read: a ticker task that runs once per turn of the
loop and counts the items the reader handled between two of its runs (see
``test_aio_fairness.py``, which explains the bound)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sagestream._aio as aio

#: Busy work per item (a framework's callback costs about this).
WORK = 20e-6
#: The slice every loop's hub gets, as shipped.
SLICE = (aio.SLICE_SECONDS, aio.SLICE_PARTS)


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def slice_bound(work: float = WORK) -> int:
    """The most items one slice can hold when each costs at least ``work``: the slice is spent
    once ``k * work`` reaches its time, a slower item only spends it sooner."""
    seconds, parts = SLICE
    assert seconds is not None
    assert parts is not None
    return min(parts, math.ceil(seconds / work))


def unslice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hubs made from now on (one per new loop) hand out every part at hand at once."""
    monkeypatch.setattr(aio, "SLICE_SECONDS", None)
    monkeypatch.setattr(aio, "SLICE_PARTS", None)


class Ticker:
    """Runs once per turn of the loop; records the most items handled between two of its runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.since = 0
        self.most = 0
        self._task: asyncio.Task[None] | None = None

    def item(self) -> None:
        self.since += 1

    async def _run(self) -> None:
        while True:
            self.most = max(self.most, self.since)
            self.since = 0
            self.runs += 1
            await asyncio.sleep(0)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.most = max(self.most, self.since)


async def consume(items: AsyncIterator[Any], work: float = WORK, counts: Any = None) -> Ticker:
    """Read ``items`` beside a ticker, ``work`` of busy work per item (those ``counts(item)``
    says to count, when given)."""
    with Ticker() as ticker:
        await asyncio.sleep(0)  # the ticker is running
        async for item in items:
            if counts is None or counts(item):
                ticker.item()
                busy(work)
    return ticker
