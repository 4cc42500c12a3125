"""Fixtures of the bidirectional-stream tests (a pytest plugin, see conftest.py).

- ``ws_container``: a SageMaker-style container serving ``/invocations-bidirectional-stream``
  over WebSocket (aiohttp), in a background thread: text frames come back upper-cased, binary
  frames reversed; ``"ping?"`` makes it ping the sidecar and answer ``"pong:ok"`` once the pong
  arrives; ``"bye"`` makes it close the session. It records what it received.
- ``duplex_emulator``: an emulator with endpoints ``echo``, ``demo`` and ``ws`` (the container),
  its HTTP/2 port in cleartext and over TLS.
- ``duplex_client``: a ``sagestream.Client`` for it, ``duplex_endpoint_url`` set.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sagestream
from aiohttp import WSMsgType, web
from sagestream.emulator import Emulator


class WsContainer:
    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self.paths: list[str] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _session(self, request: web.Request) -> web.WebSocketResponse:
        self.paths.append(request.path_qs)
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.received.append(("text", message.data))
                if message.data == "bye":
                    await ws.close()
                    break
                if message.data == "ping?":
                    await ws.ping(b"are you there")
                    continue
                await ws.send_str(message.data.upper())
            elif message.type == WSMsgType.BINARY:
                self.received.append(("binary", message.data))
                await ws.send_bytes(bytes(reversed(message.data)))
            elif message.type == WSMsgType.PONG:
                self.received.append(("pong", message.data))
                await ws.send_str("pong:ok")
        return ws

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/invocations-bidirectional-stream", self._session)
        app.router.add_get("/custom/path", self._session)
        app.router.add_get("/ping", self._ping)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> WsContainer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="session")
def ws_container() -> Iterator[WsContainer]:
    container = WsContainer().start()
    yield container
    container.stop()


@pytest.fixture(scope="session")
def duplex_emulator(ws_container: WsContainer) -> Iterator[Emulator]:
    with Emulator(
        endpoints={"echo": "echo", "demo": "demo", "ws": ws_container.url}, duplex_tls=True, token_delay=0.0
    ) as emu:
        yield emu


def make_client(emu: Emulator, **kwargs: Any) -> sagestream.Client:
    kwargs.setdefault("duplex_endpoint_url", emu.duplex_url)
    return sagestream.Client(
        region_name=emu.region,
        endpoint_url=emu.url,
        aws_access_key_id=emu.access_key_id,
        aws_secret_access_key=emu.secret_access_key,
        **kwargs,
    )


@pytest.fixture(scope="session")
def duplex_client(duplex_emulator: Emulator) -> Iterator[sagestream.Client]:
    client = make_client(duplex_emulator)
    yield client
    client.close()
