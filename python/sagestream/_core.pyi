"""Type stubs for the Rust extension ``sagestream._core``."""

import asyncio
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar, final, overload

__version__: Final[str]
MAX_HEADERS_LENGTH: Final[int]
MAX_PAYLOAD_LENGTH: Final[int]

_HeaderItems: TypeAlias = Mapping[str, Any] | Iterable[tuple[str, Any] | tuple[str, Any, str]]

@final
class Message:
    """One decoded event stream message.

    Headers are validated when the frame is decoded; their Python values are built on first
    access and then cached.
    """

    @property
    def headers(self) -> dict[str, Any]:
        """Header name → value: bool, int, bytes, str, datetime (UTC) or uuid.UUID."""
    @property
    def header_list(self) -> list[tuple[str, str, Any]]:
        """``(name, type_name, value)`` in wire order; type names: bool_true, bool_false, byte,
        int16, int32, int64, bytes, string, timestamp, uuid."""
    @property
    def payload(self) -> bytes:
        """The payload bytes."""
    def __eq__(self, value: object, /) -> bool: ...

@final
class Decoder:
    """Incremental decoder of event stream messages.

    Frames may be split at any byte and many may share one read. Checks, in order: prelude CRC,
    the 128 KiB headers and 24 MiB payload caps and the length rules (on the 12-byte prelude,
    before anything is buffered), message CRC, then headers (types, lengths, UTF-8, duplicate
    names).
    """

    def __init__(self) -> None: ...
    def feed(self, data: bytes) -> list[Message]:
        """Decode one read; returns every message it completes. If the read also holds a bad
        frame, the messages before it are returned and the ``DecodeError`` is raised by the
        next call, and by every call after that. ``ValueError`` after ``close()``."""
    def close(self) -> None:
        """End of stream: raises the error of a bad frame, or ``TruncatedStreamError`` if a
        partial frame is buffered."""
    @property
    def buffered(self) -> int:
        """Bytes held for a frame that is not complete yet."""

def decode(data: bytes) -> list[Message]:
    """Decode a buffer of complete frames."""

def encode(headers: _HeaderItems, payload: bytes) -> bytes:
    """Encode one message; types are inferred or given as ``(name, value, type_name)``."""

_Part = TypeVar("_Part", bound=bytes | Message)

@final
class PayloadDecoder(Generic[_Part]):
    """SageMaker stream decoder: PayloadPart frames in, payload bytes out.

    An error frame or bad bytes raise the typed sagestream exception after the payloads before
    them, then again at every later call. With ``other_frames=True`` every frame that is not a
    ``PayloadPart`` event (error frames included) is returned as a ``Message`` instead of being
    skipped or raised.
    """

    @overload
    def __new__(cls, *, other_frames: Literal[False] = False) -> PayloadDecoder[bytes]: ...
    @overload
    def __new__(cls, *, other_frames: Literal[True]) -> PayloadDecoder[bytes | Message]: ...
    def feed(self, data: bytes) -> list[_Part]:
        """Decode one read; returns the payloads it completes (``ValueError`` after ``close()``)."""
    def close(self) -> None:
        """End of stream: raises a pending error, or ``TruncatedStreamError`` for a partial frame."""

@final
class PayloadIterator(Iterator[_Part]):
    """Iterator of payloads over an iterable of raw body reads (``other_frames`` as for
    ``PayloadDecoder``). Exceptions from the source pass through and end the iteration."""

    @overload
    def __new__(
        cls, source: Iterable[bytes], *, other_frames: Literal[False] = False
    ) -> PayloadIterator[bytes]: ...
    @overload
    def __new__(
        cls, source: Iterable[bytes], *, other_frames: Literal[True]
    ) -> PayloadIterator[bytes | Message]: ...
    def __iter__(self) -> PayloadIterator[_Part]: ...
    def __next__(self) -> _Part: ...
    def close(self) -> None:
        """Stop iterating and drop the source."""

# --- botocore's own path: body reads → payloads (src/py_body.rs) -----------------------------

@final
class StreamStats:
    """Counters and times of one stream (seconds on the ``time.monotonic()`` clock)."""

    @property
    def parts(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def first_part_at(self) -> float | None: ...
    @property
    def last_part_at(self) -> float | None: ...
    @property
    def max_gap(self) -> float: ...
    @property
    def ended_at(self) -> float | None: ...

@final
class BodyStream(Iterator[bytes]):
    """Payloads over an iterable of body reads (free of HTTP framing), decoded in Rust.

    ``on_end(clean)`` is called once when the body ends or is closed; ``deadline`` bounds the
    whole stream through ``settimeout`` (the socket's).
    """

    def __new__(
        cls,
        source: Iterable[bytes],
        *,
        on_end: Callable[[bool], object] | None = None,
        deadline: float | None = None,
        settimeout: Callable[[float], object] | None = None,
        read_timeout: float | None = None,
    ) -> BodyStream: ...
    def __iter__(self) -> BodyStream: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None:
        """Stop now; queued payloads are dropped and ``on_end(False)`` closes the connection."""
    @property
    def finished(self) -> bool: ...
    def stats(self) -> StreamStats: ...

# --- the request path (src/py_transport.rs, py_parts.rs, py_hub.rs) ---------------------------

def invocation_id() -> str:
    """A random (version 4) UUID as text (botocore's ``amz-sdk-invocation-id``)."""

@final
class Hub:
    """Resolves asyncio futures of one event loop for the runtime's threads, in batches.

    Register it once: ``loop.add_reader(hub.fileno(), hub.dispatch)``, unless its ``wakeup`` is
    ``"call_soon"`` (it then wakes the loop with ``loop.call_soon_threadsafe`` by itself).
    ``coalesce``: the least time between two wake-ups of a busy loop. ``wakeup``: ``"eventfd"``
    (Linux), ``"pipe"`` (Unix), ``"socket"`` (a loopback socket pair) or ``"call_soon"``; None
    picks the platform's (eventfd, else a pipe, else a socket pair). ``slice_seconds`` and
    ``slice_items``: how long, and for how many parts, an async iterator of the loop hands out
    parts already at hand before it yields to the loop once (``None``: no bound).
    """

    def __new__(
        cls,
        event_loop: asyncio.AbstractEventLoop,
        *,
        coalesce: float = 0.001,
        wakeup: str | None = None,
        slice_seconds: float | None = 0.001,
        slice_items: int | None = 256,
    ) -> Hub: ...
    @property
    def wakeup(self) -> str: ...
    def fileno(self) -> int: ...
    def dispatch(self) -> None: ...
    @staticmethod
    def resume(future: asyncio.Future[None]) -> None:
        """Resolve ``future`` unless it is done (the end of a reader's yield)."""
    def pending(self) -> int: ...

@final
class PartIterator(Iterator[bytes]):
    """The payload parts of a streamed response, for a thread (waits without the GIL)."""

    def __iter__(self) -> PartIterator: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...
    def observe(self, watch: Any, batch: int = 64, max_delay: float = 1.0) -> None:
        """Have ``watch`` told of the parts, with no Python frame per part:
        ``watch.first_part(at)``, ``watch.gaps([seconds, ...])`` (the gap before each part
        after the first, in order, every ``batch`` parts or once the oldest is ``max_delay``
        seconds old), ``watch.ended(stats, error, closed)`` once."""
    @property
    def finished(self) -> bool: ...
    def stats(self) -> StreamStats: ...

_Awaited = TypeVar("_Awaited")

class _HubAwaitable(Generic[_Awaited]):
    """The awaitable protocol of what completes through a hub: the runtime base
    ``sagestream._core.HubAwaitable`` (not exported), which every such class extends."""

    def __await__(self) -> Generator[Any, None, _Awaited]: ...
    def __next__(self) -> Any: ...
    def send(self, value: object, /) -> Any: ...
    def throw(self, typ: Any, val: Any = None, _tb: Any = None, /) -> None: ...
    def close(self) -> None: ...

@final
class AsyncPartIterator(_HubAwaitable[bytes], AsyncIterator[bytes]):
    """The payload parts of a streamed response, for ``async for`` on the hub's loop.

    Parts already at hand are returned without suspending, until the hub's slice is spent;
    then the task waits for the loop's next turn once (after the I/O and timers it finds).
    """

    def __aiter__(self) -> AsyncPartIterator: ...
    def __anext__(self) -> AsyncPartIterator: ...
    def observe(self, watch: Any, batch: int = 64, max_delay: float = 1.0) -> None:
        """As ``PartIterator.observe``."""
    @property
    def finished(self) -> bool: ...
    def stats(self) -> StreamStats: ...
    @property
    def yields(self) -> int:
        """Times it let the loop run others with parts at hand (its slice spent)."""

@final
class Response:
    """A response: ``status``, ``headers`` (lower-case names) and a ``body`` read whole, or
    its parts (``parts()`` / ``aparts(hub)``)."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def body(self) -> bytes | None: ...
    def parts(self) -> PartIterator: ...
    def aparts(self, hub: Hub) -> AsyncPartIterator: ...
    def close(self) -> None: ...

@final
class PendingResponse(_HubAwaitable[Response]):
    """The awaitable of a request sent with ``Transport.send(..., hub=hub)``."""

@final
class Transport:
    """One client's HTTP/1.1 connection pool (hyper, rustls) and SigV4 signer (aws-sigv4).

    Timeouts in seconds (None: unbounded); ``verify``: a CA bundle path, or False;
    ``max_pool_connections``: idle connections kept per host; proxies: ``http://`` URLs.
    """

    def __new__(
        cls,
        *,
        region: str,
        service: str,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_pool_connections: int = 10,
        tcp_keepalive: bool = False,
        verify: str | Literal[False],
        http_proxy: str | None = None,
        http_proxy_authorization: str | None = None,
        https_proxy: str | None = None,
        https_proxy_authorization: str | None = None,
    ) -> Transport: ...
    def set_credentials(self, access_key: str, secret_key: str, token: str | None = None) -> None: ...
    def idle_connections(self) -> int: ...
    def close(self) -> None: ...
    def send(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        hub: Hub | None = None,
        sign: bool = True,
        after: list[tuple[str, str]] = ...,
        mode: Literal["whole", "stream"] = "whole",
        deadline: float | None = None,
        call_deadline: float | None = None,
        limit: int | None = None,
        error_limit: int | None = None,
    ) -> Response | PendingResponse:
        """Send (signed unless ``sign=False``; ``after`` headers added after signing) and wait,
        without the GIL, for the Response; given ``hub``, a PendingResponse instead, completed
        through it. ``mode="stream"`` leaves a 2xx body to its parts. ``deadline``: seconds
        left of the call's deadline, which ``call_deadline`` gives as it was set (for the
        error's message). ``limit`` / ``error_limit``: the most bytes of a 2xx / an error body
        read whole (None: 25 MiB / 1 MiB), beyond which ResponseTooLargeError."""
    def open_duplex(
        self,
        url: str,
        headers: list[tuple[str, str]],
        *,
        hub: Hub | None = None,
        after: list[tuple[str, str]] = ...,
        deadline: float | None = None,
        queue: int = 16,
        error_limit: int | None = None,
    ) -> Duplex | DuplexAwaitable:
        """Open an InvokeEndpointWithBidirectionalStream session on HTTP/2, blocking until the
        request is on its way; given ``hub``, an awaitable of the session instead, completed
        through it. ``queue``: input parts queued before ``send`` waits; ``error_limit``: the
        most bytes of an error answer's body read (None: 1 MiB)."""

@final
class DuplexAwaitable(_HubAwaitable[Any]):
    """An operation of a duplex session (opening it, sending a part), awaited."""

@final
class Duplex:
    """One bidirectional session: input parts sent (signed in a chain), output parts read."""

    def send(self, data: bytes, data_type: str | None = None, completion_state: str | None = None) -> None:
        """Queue one part, waiting (without the GIL) while the input queue is full."""
    def send_async(
        self, hub: Hub, data: bytes, data_type: str | None = None, completion_state: str | None = None
    ) -> DuplexAwaitable:
        """Queue one part; an awaitable completed once it is queued."""
    def close_input(self) -> None: ...
    @property
    def input_closed(self) -> bool: ...
    def close(self) -> None: ...
    def parts(self, part_class: Callable[[bytes, str | None, str | None], Any]) -> PartIterator: ...
    def aparts(
        self, hub: Hub, part_class: Callable[[bytes, str | None, str | None], Any]
    ) -> AsyncPartIterator: ...
    @property
    def status(self) -> int | None: ...
    @property
    def headers(self) -> dict[str, str] | None: ...
    def sent(self) -> tuple[int, int]: ...
    def stats(self) -> StreamStats: ...
    @property
    def finished(self) -> bool: ...

# --- reassembly: lines, SSE, JSON lines (src/py_reassembly.rs) --------------------------------

@final
class LineDecoder:
    """Incremental UTF-8 line decoder over payload parts.

    ``\\n`` and ``\\r\\n`` end a line, also when split between parts; a lone ``\\r`` is part of
    the line. A line longer than ``max_line_bytes`` raises ``LineTooLongError``; invalid UTF-8
    raises ``ReassemblyError`` (``errors="strict"``) or becomes U+FFFD (``errors="replace"``).
    When a part holds complete lines and then an error, ``feed`` returns the lines and the next
    call raises, as does every call after it.
    """

    def __new__(cls, *, max_line_bytes: int = 1048576, errors: str = "strict") -> LineDecoder: ...
    def feed(self, data: bytes) -> list[str]:
        """Feed one part; returns the lines it completes, terminators stripped."""
    def finish(self) -> list[str]:
        """End of input: the last line if it had no line end; the decoder is then done."""
    @property
    def buffered(self) -> int:
        """Bytes held for an unterminated line."""

@final
class ServerSentEvent:
    """One Server-Sent Event (immutable, hashable, picklable)."""

    def __new__(
        cls, data: str = "", event: str = "message", id: str | None = None, retry: int | None = None
    ) -> ServerSentEvent: ...
    @property
    def event(self) -> str:
        """The event type: ``"message"`` unless an ``event`` field set it."""
    @property
    def data(self) -> str:
        """The ``data`` fields of the event joined with ``\\n``."""
    @property
    def id(self) -> str | None:
        """The last event ID at dispatch (it carries over to later events); ``None`` if empty."""
    @property
    def retry(self) -> int | None:
        """The reconnection time (ms) of a ``retry`` field in this event's block."""
    def json(self) -> Any:
        """``data`` parsed with ``json.loads``."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class SseDecoder:
    """Incremental Server-Sent Events decoder (WHATWG HTML event stream interpretation).

    An event left without its blank line at the end of the stream is dispatched by ``finish``
    unless ``discard_incomplete=True`` (the browser's behaviour).
    """

    def __new__(cls, *, max_event_bytes: int = 1048576, discard_incomplete: bool = False) -> SseDecoder: ...
    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Feed one part; returns the events it dispatches."""
    def finish(self) -> list[ServerSentEvent]:
        """End of input: dispatches a pending event (see the class doc); then done."""
    @property
    def last_event_id(self) -> str | None:
        """The last event ID seen so far, also from blocks that dispatched nothing."""
    @property
    def retry(self) -> int | None:
        """The reconnection time last set by a valid ``retry`` field."""

@final
class JsonLinesDecoder:
    """Incremental JSON Lines decoder: each non-blank line parsed with Python's ``json``."""

    def __new__(cls, *, max_line_bytes: int = 1048576) -> JsonLinesDecoder: ...
    def feed(self, data: bytes) -> list[Any]:
        """Feed one part; returns the values of the lines it completes."""
    def finish(self) -> list[Any]:
        """End of input: parses a last line without line end; the decoder is then done."""

@final
class ReassemblyIterator(Iterator[Any]):
    """Lines, events or JSON values over an iterable of parts, decoded and iterated in Rust.

    Reads the source only when no item is waiting (each item is yielded as soon as the part
    completing it arrives); items before bad bytes are yielded, then the error is raised, and
    again by every later ``next()``. Exceptions from the source pass through and end it.
    """

    @staticmethod
    def lines(
        source: Iterable[bytes], *, max_line_bytes: int = 1048576, errors: str = "strict"
    ) -> ReassemblyIterator:
        """Iterator of ``str`` lines (see ``LineDecoder``)."""
    @staticmethod
    def sse(
        source: Iterable[bytes], *, max_event_bytes: int = 1048576, discard_incomplete: bool = False
    ) -> ReassemblyIterator:
        """Iterator of ``ServerSentEvent`` (see ``SseDecoder``)."""
    @staticmethod
    def json_lines(source: Iterable[bytes], *, max_line_bytes: int = 1048576) -> ReassemblyIterator:
        """Iterator of JSON values (see ``JsonLinesDecoder``)."""
    def __iter__(self) -> ReassemblyIterator: ...
    def __next__(self) -> Any: ...
    def close(self) -> None:
        """Stop: drop the source and anything decoded but not yet yielded."""

def sign_preview(
    transport: Transport,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    token: str | None = None,
    epoch: float,
) -> list[tuple[str, str]]:
    """The signed headers ``transport.send`` would send for this request (``host``,
    ``x-amz-date``, ``authorization``, ...), signed at ``epoch`` with these credentials instead
    of the transport's, in its region and signing name."""
