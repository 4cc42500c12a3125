"""The event stream writer of InvokeEndpointWithResponseStream, and its injected faults.

Each frame is its own HTTP/1.1 chunk (as the service sends them), and a batch of parts is
written to the transport in one call, with backpressure: the writer waits for the socket to
drain after each batch, so a fast model cannot pile up more than a batch in memory.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from .faults import STREAM_FAULTS, Knobs, default_stream_error_message
from .models import ModelReply, aclose_reply
from .protocol import FrameEncoder, chunk, error_frame, exception_frame

__all__ = ["EventStreamWriter", "pump"]


class EventStreamWriter:
    """Writes one event stream response: each frame its own HTTP chunk, batches in one write."""

    def __init__(self, request: web.Request, response: web.StreamResponse, encoder: FrameEncoder) -> None:
        self._request = request
        self._response = response
        self._encoder = encoder
        self._writer: Any = None
        self._direct = False
        self.parts = 0
        self.bytes = 0

    async def start(self) -> None:
        """Send the response headers."""
        self._response.enable_chunked_encoding()
        self._writer = await self._response.prepare(self._request)
        send_headers = getattr(self._writer, "send_headers", None)
        if send_headers is not None:
            send_headers()
            self._direct = True

    def _transport(self) -> asyncio.Transport:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        return transport

    async def write_parts(self, payloads: list[bytes]) -> None:
        """PayloadPart frames, one per payload, then wait for the socket to drain."""
        if not payloads:
            return
        if self._direct:
            self._transport().write(self._encoder.payload_chunks(payloads))
            await self._writer.drain()
        else:
            for payload in payloads:
                await self._response.write(self._encoder.payload_frame(payload))
        self.parts += len(payloads)
        self.bytes += sum(len(p) for p in payloads)

    async def write_frame(self, frame: bytes) -> None:
        """One already-encoded frame (an exception or error event)."""
        if self._direct:
            self._transport().write(chunk(frame))
            await self._writer.drain()
        else:
            await self._response.write(frame)

    async def cut(self, payload: bytes) -> None:
        """Send the chunk of ``payload``'s frame only half way, then abort the connection."""
        data = chunk(self._encoder.payload_frame(payload))
        if not self._direct:  # headers not yet out on old aiohttp versions
            await self._response.write(b"")
        transport = self._transport()
        transport.write(data[: len(data) // 2])
        # Let everything written so far reach the socket, then reset it mid-frame.
        deadline = time.monotonic() + 5.0
        while transport.get_write_buffer_size() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        transport.abort()

    async def finish(self) -> None:
        """The last chunk."""
        await self._response.write_eof()


async def pump(stream: EventStreamWriter, reply: ModelReply, knobs: Knobs) -> str:
    """Write the model's parts, firing a stream fault after ``knobs.after`` parts.

    Returns the outcome: ``"ok"`` or the fault that ended the stream.
    """
    fault = knobs.fault if knobs.fault in STREAM_FAULTS else None
    armed = fault is not None
    sent = 0
    async for batch in reply.parts:
        while batch:
            if armed and knobs.after - sent < len(batch):
                room = knobs.after - sent
                await stream.write_parts(batch[:room])
                sent += room
                batch = batch[room:]
                armed = False
                if await _fire(stream, knobs, batch[0]):
                    await aclose_reply(reply)
                    return str(fault)
                continue
            await stream.write_parts(batch)
            sent += len(batch)
            batch = []
    if armed and await _fire(stream, knobs, b"x" * 64):
        return str(fault)
    await stream.finish()
    return "ok"


async def _fire(stream: EventStreamWriter, knobs: Knobs, next_part: bytes) -> bool:
    """Inject the stream fault; True if the stream ends with it."""
    if knobs.fault == "stall":
        await asyncio.sleep(knobs.seconds)
        return False
    if knobs.fault == "cut":
        await stream.cut(next_part or b"x" * 64)
        return True
    if knobs.fault == "error-frame":
        frame = error_frame(knobs.code, knobs.message or "The stream failed.")
    elif knobs.fault == "model-stream-error":
        frame = exception_frame(
            "ModelStreamError", knobs.message or default_stream_error_message(knobs.code), knobs.code
        )
    else:
        frame = exception_frame(
            "InternalStreamFailure",
            knobs.message or "The stream processing failed because of an internal error.",
        )
    await stream.write_frame(frame)
    await stream.finish()
    return True
