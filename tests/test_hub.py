"""The asyncio hub's wake-ups: every kind, on this platform, with the same batching.

The hub wakes its loop with an eventfd (Linux), a pipe (other Unix systems), a loopback socket
pair (Windows' selector loop) or ``loop.call_soon_threadsafe`` (Windows' Proactor loop, which
watches no descriptors). Every kind available here runs streams against the emulator below;
``make test-hub-wakeups`` runs the whole asyncio suite with each kind forced by
``SAGESTREAM_HUB_WAKEUP``, and ``test_the_forced_wakeup_is_the_one_used`` makes sure such a run
does use the kind it names.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import boto3
import pytest
import sagestream
from botocore.config import Config
from sagestream import _aio, _core
from sagestream.emulator import Emulator, bulk_part

if sys.platform == "linux":
    DESCRIPTOR_KINDS = ["eventfd", "pipe", "socket"]
elif sys.platform == "win32":
    DESCRIPTOR_KINDS = ["socket"]
else:
    DESCRIPTOR_KINDS = ["pipe", "socket"]
KINDS = [*DESCRIPTOR_KINDS, "call_soon"]
PLATFORM_DEFAULT = {"linux": "eventfd", "win32": "socket"}.get(sys.platform, "pipe")


class CountingLoop(asyncio.SelectorEventLoop):
    """A selector loop that counts the hub's wake-ups as they run: its reader callback, or the
    dispatch a `call_soon` hub schedules."""

    def __init__(self) -> None:
        super().__init__()
        self.wakeups = 0

    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        def counted(*a: Any) -> None:
            self.wakeups += 1
            callback(*a)

        super().add_reader(fd, counted, *args)

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any, **kw: Any) -> Any:
        if type(callback).__name__ != "builtin_function_or_method":  # not the hub's dispatch
            return super().call_soon_threadsafe(callback, *args, **kw)

        def counted(*a: Any) -> None:
            self.wakeups += 1
            callback(*a)

        return super().call_soon_threadsafe(counted, *args, **kw)


class NoReaderLoop(CountingLoop):
    """A loop that watches no descriptors, as Windows' ProactorEventLoop."""

    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        raise NotImplementedError


@pytest.fixture
def forced(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str | None], None]]:
    """Force the hub wake-up of hubs made from now on (what SAGESTREAM_HUB_WAKEUP does)."""

    def force(kind: str | None) -> None:
        if kind is None:
            monkeypatch.delenv(_aio.WAKEUP_ENV, raising=False)
        else:
            monkeypatch.setenv(_aio.WAKEUP_ENV, kind)
        _aio.forced_wakeup.cache_clear()

    yield force
    monkeypatch.undo()
    _aio.forced_wakeup.cache_clear()


def run(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, Any]) -> Any:
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def make_client(emulator: Emulator) -> sagestream.AsyncClient:
    session = boto3.Session(
        aws_access_key_id=emulator.access_key_id,
        aws_secret_access_key=emulator.secret_access_key,
        region_name=emulator.region,
    )
    config = Config(retries={"total_max_attempts": 1}, max_pool_connections=64)
    return sagestream.AsyncClient(session, endpoint_url=emulator.url, config=config)


# --- the hub's own surface -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_made_as_asked(kind: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        hub = _core.Hub(loop, wakeup=kind)
        assert hub.wakeup == kind
        if kind == "call_soon":
            with pytest.raises(ValueError, match="no descriptor"):
                hub.fileno()
        else:
            assert hub.fileno() >= 0
        assert hub.pending() == 0
        hub.dispatch()  # nothing ready: nothing happens
    finally:
        loop.close()


def test_the_platform_default_and_bad_names() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert _core.Hub(loop).wakeup == PLATFORM_DEFAULT
        with pytest.raises(ValueError, match="unknown hub wake-up"):
            _core.Hub(loop, wakeup="kqueue")
        if sys.platform != "linux":
            with pytest.raises(ValueError, match="not available on this platform"):
                _core.Hub(loop, wakeup="eventfd")
    finally:
        loop.close()


def test_a_bad_setting_is_refused(forced: Callable[[str | None], None]) -> None:
    forced("carrier-pigeon")
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="SAGESTREAM_HUB_WAKEUP='carrier-pigeon'"):
            _aio.hub_for(loop)
    finally:
        loop.close()


def test_the_forced_wakeup_is_the_one_used() -> None:
    """Under `make test-hub-wakeups` (SAGESTREAM_HUB_WAKEUP set), the hubs are of that kind."""
    loop = asyncio.new_event_loop()
    try:
        assert _aio.hub_for(loop).wakeup == (os.environ.get(_aio.WAKEUP_ENV) or PLATFORM_DEFAULT)
        assert _aio.hub_for(loop) is _aio.hub_for(loop)
    finally:
        loop.close()


def test_a_loop_without_add_reader_gets_call_soon(forced: Callable[[str | None], None]) -> None:
    for kind in [None, *DESCRIPTOR_KINDS]:
        forced(kind)
        loop = NoReaderLoop()
        try:
            assert _aio.hub_for(loop).wakeup == "call_soon"
        finally:
            loop.close()


# --- streams through each kind -------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_streams_through_each_kind(
    emulator: Emulator, forced: Callable[[str | None], None], kind: str
) -> None:
    """50 concurrent streams of 100 parts: every part arrives, in far fewer wake-ups than parts."""
    forced(kind)
    loop = CountingLoop()
    n, parts_each = 50, 100

    async def main() -> tuple[list[list[bytes]], int]:
        async with make_client(emulator) as client:
            await client.invoke("echo", b"warm-up")  # botocore set up in a worker thread

            async def one(i: int) -> list[bytes]:
                knobs = f"parts={parts_each};part_size=64"
                async with client.invoke_stream("demo", b"s%d" % i, custom_attributes=knobs) as stream:
                    return [part async for part in stream]

            before = loop.wakeups
            streams = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 60)
            assert _aio.hub_for(loop).wakeup == kind
            return streams, loop.wakeups - before

    streams, wakeups = run(loop, main())
    assert [len(s) for s in streams] == [parts_each] * n
    assert all(part == bulk_part(i, 64) for s in streams for i, part in enumerate(s))
    assert 0 < wakeups < n * parts_each / 2, wakeups


@pytest.mark.parametrize("kind", KINDS)
def test_one_wakeup_resolves_every_ready_future(
    emulator: Emulator, forced: Callable[[str | None], None], kind: str
) -> None:
    """Answers that arrive while the loop is busy are resolved together, in one wake-up."""
    forced(kind)
    loop = CountingLoop()
    n = 20

    async def main() -> int:
        async with make_client(emulator) as client:
            await client.invoke("echo", b"warm-up")
            hub = _aio.hub_for(loop)
            tasks = [asyncio.ensure_future(client.invoke("echo", b"%d" % i)) for i in range(n)]
            while not all(hub_waiting(task) for task in tasks):
                await asyncio.sleep(0)
            # Block the loop until every answer is in the hub's ready list.
            deadline = time.monotonic() + 30
            while hub.pending() < n and time.monotonic() < deadline:
                time.sleep(0.01)
            assert hub.pending() == n
            before = loop.wakeups
            results = await asyncio.gather(*tasks)
            assert [r.body for r in results] == [b"%d" % i for i in range(n)]
            return loop.wakeups - before

    assert run(loop, main()) == 1


def hub_waiting(task: asyncio.Future[Any]) -> bool:
    """Whether ``task`` waits on a future (its request is out, its answer not in yet)."""
    waiter = getattr(task, "_fut_waiter", None)
    return waiter is not None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is Unix-only")
def test_call_soon_hubs_work_in_a_forked_child(
    emulator: Emulator, forced: Callable[[str | None], None]
) -> None:
    """The waker thread of `call_soon` hubs is the parent's; a forked child starts its own."""
    forced("call_soon")

    async def main() -> bytes:
        async with make_client(emulator) as client:
            return (await asyncio.wait_for(client.invoke("echo", b"from %d" % os.getpid()), 30)).body

    assert run(CountingLoop(), main()) == b"from %d" % os.getpid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a threaded process
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            ok = run(CountingLoop(), main()) == b"from %d" % os.getpid()
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
