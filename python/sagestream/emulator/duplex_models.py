"""The models of the bidirectional operation: ``echo``, ``demo`` and a proxy to a container's
WebSocket endpoint, as SageMaker's sidecar proxies it.

A model session takes the input parts as they arrive (``receive``, then ``end_input``) and
puts its output parts on a queue (``None`` ends the output); the operation
(:mod:`.duplex`) writes them out as they come, so input and output overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from .demo import demo_tokens

__all__ = ["DuplexModel", "Part", "make_duplex_model", "websocket_url"]

#: The path of a container's bidirectional endpoint (what SageMaker's sidecar connects to).
WEBSOCKET_PATH = "/invocations-bidirectional-stream"


@dataclass(frozen=True)
class Part:
    """One part either way: bytes, ``DataType``, ``CompletionState`` (None: absent)."""

    data: bytes
    data_type: str | None = None
    completion_state: str | None = None


class ModelUnreachable(Exception):
    """The container's WebSocket endpoint refused or failed (a ModelError to the client)."""


class Session(Protocol):
    """One open model session."""

    async def receive(self, part: Part) -> None: ...

    async def end_input(self) -> None: ...

    async def output(self) -> Part | None:
        """The next output part; None once the output is over."""
        ...

    async def close(self) -> None: ...


class DuplexModel(Protocol):
    """What the operation opens a session on."""

    name: str

    async def open(self, endpoint: str, path: str | None, query: str | None) -> Session: ...


class _Queued:
    """A session whose output is a queue (bounded: a model that outpaces the client waits)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Part | None] = asyncio.Queue(maxsize=64)

    async def output(self) -> Part | None:
        part = await self.queue.get()
        if part is None:
            self.queue.put_nowait(None)  # the end stays the end
        return part

    async def close(self) -> None:
        return None


class _EchoSession(_Queued):
    async def receive(self, part: Part) -> None:
        await self.queue.put(part)

    async def end_input(self) -> None:
        await self.queue.put(None)


class EchoModel:
    """Each input part back, with its DataType and CompletionState."""

    name = "echo"

    async def open(self, endpoint: str, path: str | None, query: str | None) -> Session:
        return _EchoSession()


class _DemoSession(_Queued):
    """A transcript-like answer: every text part adds its words to the utterance, answered as a
    growing ``PARTIAL`` transcript; a part marked ``COMPLETE`` (or the end of input) closes the
    utterance with a ``COMPLETE`` one. Binary parts (audio) add one demo word per part."""

    def __init__(self) -> None:
        super().__init__()
        self._words: list[str] = []
        self._audio = 0

    async def receive(self, part: Part) -> None:
        if part.data_type == "UTF8":
            words = part.data.decode("utf-8", "replace").split()
        else:
            self._audio += 1
            words = demo_tokens(f"audio {self._audio} {len(part.data)}", 1)
            words = [w.strip() for w in words if w.strip()]
        for word in words:
            self._words.append(word)
            await self.queue.put(Part(" ".join(self._words).encode(), "UTF8", "PARTIAL"))
        if part.completion_state == "COMPLETE":
            await self._complete()

    async def _complete(self) -> None:
        if self._words:
            text = " ".join(self._words)
            if not text.endswith((".", "?", "!")):  # an utterance ends once: "it?", not "it?."
                text += "."
            await self.queue.put(Part(text.encode(), "UTF8", "COMPLETE"))
            self._words = []

    async def end_input(self) -> None:
        await self._complete()
        await self.queue.put(None)


class DemoModel:
    """The incremental, transcript-like demo answer (see ``_DemoSession``)."""

    name = "demo"

    async def open(self, endpoint: str, path: str | None, query: str | None) -> Session:
        return _DemoSession()


def websocket_url(container_url: str, path: str | None, query: str | None) -> str:
    """``ws://host:port/invocations-bidirectional-stream`` of a container ``http://host:port``
    (``X-Amzn-SageMaker-Model-Invocation-Path`` replaces the path, the query string is kept)."""
    base = container_url.rstrip("/")
    scheme, _, rest = base.partition("://")
    ws = ("wss" if scheme == "https" else "ws") + "://" + rest
    url = ws + ("/" + path.lstrip("/") if path else WEBSOCKET_PATH)
    return url + (f"?{query}" if query else "")


class _WebSocketSession:
    def __init__(self, http: aiohttp.ClientSession, ws: Any) -> None:
        self._http = http
        self._ws = ws

    async def receive(self, part: Part) -> None:
        # As SageMaker's sidecar does: UTF8 parts become text frames, the others binary.
        if part.data_type == "UTF8":
            await self._ws.send_str(part.data.decode("utf-8", "replace"))
        else:
            await self._ws.send_bytes(part.data)

    async def end_input(self) -> None:
        # WebSocket has no half-close: the container ends the session by closing it.
        return None

    async def output(self) -> Part | None:
        while True:
            message = await self._ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                return Part(message.data.encode("utf-8"), "UTF8", None)
            if message.type == aiohttp.WSMsgType.BINARY:
                return Part(bytes(message.data), "BINARY", None)
            if message.type == aiohttp.WSMsgType.ERROR:
                raise ModelUnreachable(f"the container's WebSocket failed: {self._ws.exception()}")
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return None

    async def close(self) -> None:
        # The HTTP session is closed even when the close handshake is cut short (the emulator
        # stopping cancels the sessions still open).
        try:
            with contextlib.suppress(Exception):
                await self._ws.close()
        finally:
            await self._http.close()


class WebSocketModel:
    """A proxy to a container's WebSocket endpoint; its pings are answered (aiohttp's
    ``autoping``)."""

    def __init__(self, url: str) -> None:
        self.name = url
        self.url = url

    async def open(self, endpoint: str, path: str | None, query: str | None) -> Session:
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        try:
            ws = await http.ws_connect(websocket_url(self.url, path, query), autoping=True, max_msg_size=0)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            await http.close()
            raise ModelUnreachable(f"the container's WebSocket endpoint refused the session: {exc}") from None
        return _WebSocketSession(http, ws)


def make_duplex_model(spec: str) -> DuplexModel:
    """``echo`` | ``demo`` (``demo:FORMAT`` too) | ``http://host:port`` (a container)."""
    if spec.startswith(("http://", "https://")):
        return WebSocketModel(spec)
    if spec == "echo":
        return EchoModel()
    return DemoModel()
