"""A scripted HTTP/2 server on 127.0.0.1 (cleartext, prior knowledge) for the bidirectional
operation's transport: it answers every request at once with the status, event frames and
ending a test asks for, on the ``h2`` protocol library, including endings no correct server
writes (a stream reset with NO_ERROR before its END_STREAM, a GOAWAY that cuts it).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from _raw_server import EVENTSTREAM

#: How the answer ends.
END = "end"  # END_STREAM: a complete answer
#: END_STREAM, then RST_STREAM(NO_ERROR) (RFC 9113 section 8.1: a complete answer, and the
#: rest of the request not wanted)
END_THEN_RESET = "end-then-reset"
RESET_NO_ERROR = "reset-no-error"  # RST_STREAM(NO_ERROR) instead of END_STREAM
RESET_CANCEL = "reset-cancel"  # RST_STREAM(CANCEL)
GOAWAY = "goaway"  # GOAWAY(last_stream_id=0, NO_ERROR), the connection left open
GOAWAY_CLOSE = "goaway-close"  # the same, then the connection closed (FIN; what comes is read)


@dataclass
class Script:
    """The answer to every request: ``status``, then ``writes`` (bytes of the body, each sent
    as DATA within the flow-control window), then ``ending``."""

    status: int = 200
    writes: Iterable[bytes] = ()
    ending: str = END
    headers: list[tuple[str, str]] = field(default_factory=list)


class H2Peer:
    """Serve ``script`` to every stream of every connection (a thread per connection)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        #: Requests (streams) seen, and streams the client reset.
        self.requests = 0
        self.client_resets = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._closed_for_writing: set[int] = set()

    def __enter__(self) -> H2Peer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for sock in [self._sock, *self._conns]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        try:
            sock.sendall(conn.data_to_send())
            while not self._stop.is_set():
                data = sock.recv(65536)
                if not data:
                    return
                if self._write_closed(sock):
                    continue  # read what the client still sends, so that closing sends no RST
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        self.requests += 1
                        self._answer(sock, conn, event.stream_id)
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamReset):
                        self.client_resets += 1
                    if self._write_closed(sock):
                        break
                if not self._write_closed(sock):
                    sock.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            self._closed_for_writing.discard(sock.fileno())
            with contextlib.suppress(OSError):
                sock.close()

    def _write_closed(self, sock: socket.socket) -> bool:
        return sock.fileno() in self._closed_for_writing

    def _answer(self, sock: socket.socket, conn: h2.connection.H2Connection, stream_id: int) -> None:
        script = self.script
        headers = [
            (":status", str(script.status)),
            ("content-type", EVENTSTREAM),
            ("x-amzn-requestid", "req-1"),
        ]
        conn.send_headers(stream_id, headers + script.headers)
        sock.sendall(conn.data_to_send())
        for data in script.writes:
            if not self._send(sock, conn, stream_id, data):
                return  # the client reset the stream
        if script.ending == END:
            conn.end_stream(stream_id)
        elif script.ending == END_THEN_RESET:
            conn.end_stream(stream_id)
            sock.sendall(conn.data_to_send())
            conn.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        elif script.ending == RESET_NO_ERROR:
            conn.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        elif script.ending == RESET_CANCEL:
            conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        elif script.ending in (GOAWAY, GOAWAY_CLOSE):
            conn.close_connection(h2.errors.ErrorCodes.NO_ERROR, last_stream_id=0)
        sock.sendall(conn.data_to_send())
        if script.ending == GOAWAY_CLOSE:
            # A FIN, not a reset: closing a socket with unread bytes would send an RST, and the
            # client's kernel would drop the answer it had not read yet.
            sock.shutdown(socket.SHUT_WR)
            self._closed_for_writing.add(sock.fileno())

    def _send(
        self, sock: socket.socket, conn: h2.connection.H2Connection, stream_id: int, data: bytes
    ) -> bool:
        """Send ``data`` on the stream as the client's window allows; False if it was reset."""
        view = memoryview(data)
        while view:
            try:
                room = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            except (h2.exceptions.StreamClosedError, KeyError):
                return False
            if room <= 0:
                incoming = sock.recv(65536)
                if not incoming:
                    return False
                for event in conn.receive_data(incoming):
                    if isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                        self.client_resets += 1
                        sock.sendall(conn.data_to_send())
                        return False
                sock.sendall(conn.data_to_send())
                continue
            conn.send_data(stream_id, bytes(view[:room]))
            sock.sendall(conn.data_to_send())
            view = view[room:]
        return True
