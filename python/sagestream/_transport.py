"""botocore's own path for the sync client: the body of a response botocore sent, read through
urllib3's public API (which removes the HTTP framing) and decoded in Rust
(``sagestream._core.BodyStream``); and botocore's errors turned into sagestream's.

This is the path of clients whose botocore machinery the request path does not reproduce
(:attr:`sagestream._botocore.Bridge.reason`): slower than the request path, with the same
decoding, errors and metrics.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import botocore.exceptions

from sagestream import _core
from sagestream._caps import too_large
from sagestream.exceptions import (
    ConnectError,
    ConnectionLostError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ServiceError,
    service_error_from_response,
)

__all__ = ["READ_SIZE", "BodyReader", "botocore_errors", "open_body", "read_capped"]

#: Bytes asked of each socket read: a read returns what has arrived, up to this.
READ_SIZE = 256 * 1024


class BodyReader:
    """Owns the urllib3 response of one stream and gives its connection back exactly once."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._lock = threading.Lock()
        self._released = False
        #: Whether the connection went back to the pool after a complete body (for tests).
        self.reused_connection = False

    @property
    def released(self) -> bool:
        """True once the connection was given back or closed."""
        return self._released

    def __del__(self) -> None:
        # Nobody can read this body any more (the stream and its iterator are gone): close the
        # connection now rather than leaving the socket to the garbage collector.
        if not getattr(self, "_released", True):
            with suppress(Exception):
                self.release(False)

    def on_end(self, reusable: bool) -> None:
        """The body ended (called from Rust): give the connection back, or close it."""
        self.release(reusable)

    def release(self, reusable: bool) -> None:
        """Return the connection to urllib3's pool if the body was fully consumed, else close it."""
        with self._lock:
            if self._released:
                return
            self._released = True
        raw = self._raw
        original = getattr(raw, "_fp", None)
        if getattr(original, "will_close", False):
            reusable = False  # the server said "Connection: close"
        try:
            if reusable:
                if original is not None and not _is_closed(original):
                    # The body was consumed here, not by http.client: close its response object
                    # (this drops its file object, not the socket) so the connection can send
                    # the next request.
                    original.close()
                raw.release_conn()
                self.reused_connection = True
            else:
                # shutdown() first: it wakes a read blocked in another thread, close() does not.
                sock = getattr(getattr(raw, "_connection", None), "sock", None)
                if sock is not None:
                    with suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                raw.close()
                release = getattr(raw, "release_conn", None)
                if release is not None:
                    release()
        except Exception:
            with suppress(Exception):
                raw.close()


def _is_closed(original: Any) -> bool:
    isclosed = getattr(original, "isclosed", None)
    return bool(isclosed()) if isclosed is not None else True


def _fallback_reads(raw: Any, owner: BodyReader) -> Iterator[bytes]:
    """Body reads through urllib3's public API, with its errors mapped to ours."""
    import urllib3.exceptions

    try:
        if hasattr(raw, "read1"):
            # urllib3 >= 2: returns what has arrived, chunked or not, losing nothing on a cut.
            while True:
                data = raw.read1(READ_SIZE)
                if not data:
                    return
                yield data
        elif getattr(raw, "chunked", False) and hasattr(raw, "read_chunked"):
            yield from raw.read_chunked(decode_content=True)
        else:
            yield from raw.stream(READ_SIZE)
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
        raise ReadTimeoutError(f"no data arrived in time: {exc}") from exc
    except (urllib3.exceptions.ProtocolError, http.client.HTTPException, OSError) as exc:
        raise ConnectionLostError(f"connection lost while reading the stream: {exc}") from exc
    except Exception as exc:
        if owner.released:
            # close() from another thread pulled the response away from under this read.
            raise ConnectionLostError("the stream was closed") from exc
        raise


def open_body(
    raw: Any, *, deadline: float | None = None, read_timeout: float | None = None
) -> tuple[Any, BodyReader]:
    """A ``_core.BodyStream`` of payloads over urllib3 response ``raw``, and its owner."""
    owner = BodyReader(raw)
    settimeout: Callable[[float], None] | None = None
    if deadline is not None:
        sock = getattr(getattr(raw, "_connection", None), "sock", None)
        settimeout = getattr(sock, "settimeout", None)
    body = _core.BodyStream(
        _fallback_reads(raw, owner),
        on_end=owner.on_end,
        deadline=deadline,
        settimeout=settimeout,
        read_timeout=read_timeout,
    )
    return body, owner


def read_capped(response: dict[str, Any], limit: int) -> bytes:
    """The ``Body`` of a botocore response read whole, at most ``limit`` bytes; beyond them the
    connection is closed and :class:`ResponseTooLargeError` raised."""
    streaming = response["Body"]
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 200)
    try:
        length = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise too_large(status, limit, int(length))
        # Piece by piece: one read of the whole would hold its pieces and their join at once.
        pieces: list[bytes] = []
        held = 0
        while True:
            piece = streaming.read(min(READ_SIZE, limit + 1 - held))
            if not piece:
                return b"".join(pieces)
            held += len(piece)
            if held > limit:
                raise too_large(status, limit)
            pieces.append(piece)
    finally:
        streaming.close()


@contextmanager
def botocore_errors(operation_name: str) -> Iterator[None]:
    """Turn botocore's errors for a call into sagestream's typed ones (chained)."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        if isinstance(exc, ServiceError):
            raise
        raise service_error_from_response(exc.response, operation_name) from exc
    except botocore.exceptions.ConnectTimeoutError as exc:
        raise ConnectTimeoutError(str(exc), "timeout") from exc
    except botocore.exceptions.ProxyConnectionError as exc:
        raise ConnectError(str(exc), "proxy") from exc
    except botocore.exceptions.SSLError as exc:
        raise ConnectError(str(exc), "tls") from exc
    except botocore.exceptions.EndpointConnectionError as exc:
        raise ConnectError(str(exc), "unreachable") from exc
    except botocore.exceptions.ReadTimeoutError as exc:
        raise ReadTimeoutError(str(exc)) from exc
    except (
        botocore.exceptions.ConnectionClosedError,
        botocore.exceptions.ResponseStreamingError,
    ) as exc:
        raise ConnectionLostError(str(exc)) from exc
