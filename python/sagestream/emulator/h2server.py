"""The emulator's HTTP/2 server: the ``h2`` protocol library under asyncio.

Chosen over an ASGI server (hypercorn) because the bidirectional operation needs what ASGI
hides: reading a request body while the response streams (flow-controlled on both sides, so
a client that outpaces the model waits instead of filling memory), resetting one stream or
cutting the connection mid-frame for fault injection, and an answer's status chosen after the
request headers were verified but before any body arrived. ``h2`` is the sans-I/O HTTP/2
state machine hypercorn itself runs on; this module is its I/O: one protocol per connection,
one task per stream, cleartext with prior knowledge or TLS with ALPN ``h2``.

Its connections count against the emulator's :class:`~.guard.ConnectionGuard`, with the
HTTP/1.1 port's: one budget of connections, closed (with a GOAWAY) when idle too long or to make
room. A client that resets streams faster than their handlers can finish — the "rapid reset"
of CVE-2023-44487, which costs the server a task per stream and the client nothing — is told to
calm down (GOAWAY ``ENHANCE_YOUR_CALM``) and disconnected, as hyper's and h2's servers do since.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from .config import log
from .guard import ConnectionGuard

__all__ = ["H2Server", "H2Stream", "Handler"]

#: Bytes of request body a stream buffers before its window stops the client.
_WINDOW = 1024 * 1024
#: Concurrent streams one connection may open.
_MAX_STREAMS = 1000
#: Streams a client may have reset while their handlers still run before it is disconnected
#: (GOAWAY ENHANCE_YOUR_CALM): a correct client resets each of its sessions at most once, and
#: sagestream's opens 100 at a time on a connection; a rapid-reset flood resets thousands.
MAX_PENDING_RESETS = 200


class StreamGone(ConnectionError):
    """The client reset the stream, or the connection closed."""


class H2Stream:
    """One request: its headers, its body as it arrives, and the response to write."""

    def __init__(self, conn: _Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        self._conn = conn
        self.stream_id = stream_id
        #: Request headers, names lower case (pseudo-headers included).
        self.headers: dict[str, str] = {}
        for name, value in headers:
            self.headers[name] = f"{self.headers[name]},{value}" if name in self.headers else value
        self._chunks: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        self._window = asyncio.Event()
        self._window.set()
        self.reset = False
        self.ended = False
        #: The client reset it (RST_STREAM), while its handler ran.
        self.reset_by_client = False

    @property
    def method(self) -> str:
        return self.headers.get(":method", "")

    @property
    def path(self) -> str:
        return self.headers.get(":path", "")

    @property
    def remote(self) -> str:
        return self._conn.remote

    # --- the request body ----------------------------------------------------------------

    def _received(self, data: bytes, flow: int) -> None:
        self._chunks.put_nowait((data, flow))

    def _finished(self) -> None:
        self._chunks.put_nowait(None)

    async def read(self) -> bytes | None:
        """The next piece of the request body (None at its end); the flow-control window
        reopens as it is read."""
        item = await self._chunks.get()
        if item is None:
            self._chunks.put_nowait(None)  # the end stays the end
            if self.reset:
                raise StreamGone("the client reset the stream")
            return None
        data, flow = item
        self._conn.acknowledge(self.stream_id, flow)
        return data

    # --- the response --------------------------------------------------------------------

    def respond(self, status: int, headers: list[tuple[str, str]], *, end: bool = False) -> None:
        """Send the response headers."""
        if self.reset:
            raise StreamGone("the client reset the stream")
        self._conn.send_headers(self.stream_id, [(":status", str(status)), *headers], end)
        if end:
            self.ended = True

    async def write(self, data: bytes) -> None:
        """Send ``data``, waiting for the client's flow-control window."""
        view = memoryview(data)
        while view:
            if self.reset:
                raise StreamGone("the client reset the stream")
            room = self._conn.room(self.stream_id)
            if room <= 0:
                self._window.clear()
                await self._window.wait()
                continue
            piece = view[:room]
            self._conn.send_data(self.stream_id, bytes(piece))
            view = view[len(piece) :]
        await self._conn.drain()

    def end(self) -> None:
        """End the response (and, for the client, the stream)."""
        if not self.reset and not self.ended:
            self.ended = True
            self._conn.end_stream(self.stream_id)

    def abort(self) -> None:
        """Reset the stream (``RST_STREAM INTERNAL_ERROR``)."""
        if not self.reset and not self.ended:
            self.ended = True
            self._conn.reset_stream(self.stream_id)

    def cut_connection(self, partial: bytes) -> None:
        """Write ``partial`` as the start of a DATA frame, then drop the TCP connection: the
        client sees its connection cut in the middle of the response."""
        self._conn.cut(self.stream_id, partial)


Handler = Callable[[H2Stream], Awaitable[None]]


class _Connection(asyncio.Protocol):
    def __init__(self, server: H2Server) -> None:
        self._server = server
        self._handler = server._handler
        self._connections = server._connections
        config = h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8", validate_inbound_headers=False
        )
        self._h2 = h2.connection.H2Connection(config=config)
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, H2Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused = False
        self._drained = asyncio.Event()
        self._drained.set()
        self.remote = "-"
        #: Streams the client reset whose handlers have not finished (rapid reset's measure).
        self._pending_resets = 0
        self._closing = False

    # --- asyncio -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.accepted += 1
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if peer else "-"
        guard = self._server.guard
        if guard is not None and not guard.track(transport, self.shut):
            self._closing = True  # refused: the guard closed it
            return
        self._connections.add(self)
        self._h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: _MAX_STREAMS,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
            },
        )
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(_WINDOW * 16)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._server.guard is not None and self._transport is not None:
            self._server.guard.untrack(self._transport)
        self._connections.discard(self)
        for stream in self._streams.values():
            stream.reset = True
            stream._finished()
            stream._window.set()
        self._streams.clear()
        self._drained.set()
        for task in self._tasks:
            task.cancel()

    def pause_writing(self) -> None:
        self._paused = True
        self._drained.clear()

    def resume_writing(self) -> None:
        self._paused = False
        self._drained.set()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.info("%s: HTTP/2 protocol error: %s", self.remote, exc)
            self._flush()
            if self._transport is not None:
                self._transport.close()
            return
        for event in events:
            self._event(event)
            if self._closing:
                return
        self._flush()

    # --- h2 events ---------------------------------------------------------------------

    def _event(self, event: Any) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = [(str(k), str(v)) for k, v in event.headers]
            stream = H2Stream(self, event.stream_id, headers)
            self._streams[event.stream_id] = stream
            if event.stream_ended is not None:
                stream._finished()
            if self._server.guard is not None and self._transport is not None:
                self._server.guard.begin(self._transport)
            task = asyncio.get_running_loop().create_task(self._run(stream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._server.handling.add(task)
            task.add_done_callback(self._server.handling.discard)
        elif isinstance(event, h2.events.DataReceived):
            receiving = self._streams.get(event.stream_id)
            if receiving is None:
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                return
            receiving._received(event.data, event.flow_controlled_length)
            if event.stream_ended is not None:
                receiving._finished()
        elif isinstance(event, h2.events.StreamEnded):
            ended = self._streams.get(event.stream_id)
            if ended is not None:
                ended._finished()
        elif isinstance(event, h2.events.StreamReset):
            gone = self._streams.pop(event.stream_id, None)
            if gone is not None:
                gone.reset = True
                gone._finished()
                gone._window.set()
                if event.remote_reset:
                    gone.reset_by_client = True
                    self._pending_resets += 1
                    if self._pending_resets > MAX_PENDING_RESETS:
                        self._calm_down()
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id == 0:
                targets = list(self._streams.values())
            else:
                one = self._streams.get(event.stream_id)
                targets = [one] if one is not None else []
            for target in targets:
                target._window.set()
        elif isinstance(event, h2.events.ConnectionTerminated) and self._transport is not None:
            self._transport.close()

    async def _run(self, stream: H2Stream) -> None:
        try:
            await self._handler(stream)
        except StreamGone:
            pass
        except Exception:
            log.exception("%s: the bidirectional stream handler failed", self.remote)
            stream.abort()
        finally:
            self._streams.pop(stream.stream_id, None)
            if stream.reset_by_client:
                self._pending_resets -= 1
            if self._server.guard is not None and self._transport is not None:
                self._server.guard.end(self._transport)
            self._flush()

    # --- what streams call ---------------------------------------------------------------

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def drain(self) -> None:
        self._flush()
        if self._paused:
            await self._drained.wait()

    def acknowledge(self, stream_id: int, size: int) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
            self._h2.acknowledge_received_data(size, stream_id)
        self._flush()

    def room(self, stream_id: int) -> int:
        try:
            window = self._h2.local_flow_control_window(stream_id)
        except (h2.exceptions.ProtocolError, KeyError):
            raise StreamGone("the stream is closed") from None
        return int(min(window, self._h2.max_outbound_frame_size))

    def send_headers(self, stream_id: int, headers: list[tuple[str, str]], end: bool) -> None:
        self._h2.send_headers(stream_id, headers, end_stream=end)
        self._flush()

    def send_data(self, stream_id: int, data: bytes) -> None:
        try:
            self._h2.send_data(stream_id, data)
        except (h2.exceptions.ProtocolError, KeyError) as exc:
            raise StreamGone(str(exc)) from None
        self._flush()

    def end_stream(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
            self._h2.end_stream(stream_id)
        self._flush()

    def reset_stream(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
            self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        self._flush()

    def cut(self, stream_id: int, partial: bytes) -> None:
        self._flush()
        if self._transport is None:
            return
        # A DATA frame header announcing more than is sent, then the bytes, then the cut.
        length = len(partial) * 2
        frame = length.to_bytes(3, "big") + b"\x00\x00" + stream_id.to_bytes(4, "big") + partial
        self._transport.write(frame)
        self._transport.abort()

    def close(self) -> None:
        """Say GOAWAY (no new streams) and close, once what is queued is written."""
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._h2.close_connection()
                self._flush()
            self._transport.close()

    def shut(self) -> None:
        """Closed by the guard (idle too long, or room needed): GOAWAY, and the socket closed
        now even if the client does not read (a graceful close would wait for it to)."""
        self.close()
        if self._transport is not None and self._transport.get_write_buffer_size():
            self._transport.abort()

    def _calm_down(self) -> None:
        """A rapid-reset flood: GOAWAY ENHANCE_YOUR_CALM, stop reading, drop the handlers."""
        log.warning(
            "%s: more than %d streams reset while their handlers ran: GOAWAY ENHANCE_YOUR_CALM",
            self.remote,
            MAX_PENDING_RESETS,
        )
        self._closing = True
        self._server.calmed += 1
        with contextlib.suppress(Exception):
            self._h2.close_connection(
                error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, additional_data=b"too many resets"
            )
            self._flush()
        if self._transport is not None:
            self._transport.close()
            if self._transport.get_write_buffer_size():  # a flood that does not read its answers
                self._transport.abort()
        for task in self._tasks:
            task.cancel()


class H2Server:
    """Serves ``handler`` over HTTP/2 on ``host:port`` (TLS when ``ssl_context`` is given)."""

    def __init__(
        self,
        handler: Handler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        guard: ConnectionGuard | None = None,
    ) -> None:
        self._handler = handler
        self._ssl = ssl_context
        #: The bounds its connections count against (shared with the emulator's other ports).
        self.guard = guard
        #: Connections told to calm down (a rapid-reset flood).
        self.calmed = 0
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[_Connection] = set()
        #: The handlers running, on every connection (those of a lost one too, which may
        #: still be cleaning up: :meth:`stop` waits for them all).
        self.handling: set[asyncio.Task[None]] = set()
        #: Connections accepted so far.
        self.accepted = 0
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        """Listen; ``port`` 0 picks a free one (see :attr:`port`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            host=host,
            port=port,
            ssl=self._ssl,
            backlog=1024,
        )
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    async def stop(self) -> None:
        """Stop listening, close every connection, and cancel the handlers still running
        (waiting for them to finish, so that what they hold is released on this loop)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        tasks = list(self.handling)
        for conn in list(self._connections):
            conn.close()
        self._connections.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
