"""A scripted OpenAI-compatible chat container, served behind the emulator's proxy model.

What vLLM / LMI containers answer on ``POST /invocations``, with the documents a test scripts:
``script(request_doc)`` returns a list of ``chat.completion.chunk`` documents (sent as one
``data: {...}`` SSE event per HTTP chunk, then ``data: [DONE]``, or as bare JSON lines with
``lines=True``) when the request says ``"stream": true``, else one ``chat.completion``
document. Every request document is kept in ``requests``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

Script = Callable[[dict[str, Any]], Any]


def chunk_doc(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` document (``usage`` alone: the last, choice-less chunk)."""
    doc: dict[str, Any] = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "model": "scripted"}
    doc["choices"] = (
        [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    if usage is not None:
        doc["usage"] = usage
    return doc


def completion_doc(
    content: str | None,
    finish: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` document."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    doc: dict[str, Any] = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "model": "scripted",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        doc["usage"] = usage
    return doc


class ChatContainer:
    """``GET /ping`` and ``POST /invocations`` answering from ``script``, in a thread."""

    def __init__(self, script: Script, *, lines: bool = False) -> None:
        self.script = script
        self.lines = lines
        self.requests: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def _invocations(self, request: web.Request) -> web.StreamResponse:
        doc = json.loads(await request.read())
        self.requests.append(doc)
        answer = self.script(doc)
        if not doc.get("stream"):
            return web.json_response(answer)
        content_type = "application/jsonlines" if self.lines else "text/event-stream"
        resp = web.StreamResponse(headers={"Content-Type": content_type})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for item in answer:
            data = json.dumps(item).encode()
            await resp.write(data + b"\n" if self.lines else b"data: " + data + b"\n\n")
        if not self.lines:
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/ping", self._ping)
        app.router.add_post("/invocations", self._invocations)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.SockSite(self._runner, self._sock).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> ChatContainer:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
