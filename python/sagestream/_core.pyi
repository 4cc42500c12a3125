"""Type stubs for the Rust extension ``sagestream._core``."""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, final

__version__: Final[str]
MAX_HEADERS_LENGTH: Final[int]
MAX_PAYLOAD_LENGTH: Final[int]

HeaderItems = Mapping[str, Any] | Iterable[tuple[str, Any] | tuple[str, Any, str]]

@final
class Message:
    """One decoded event stream message."""

    @property
    def headers(self) -> dict[str, Any]:
        """Header name → value: bool, int, bytes, str, datetime (UTC) or uuid.UUID."""
    @property
    def header_list(self) -> list[tuple[str, str, Any]]:
        """``(name, type_name, value)`` in wire order."""
    @property
    def payload(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...

@final
class Decoder:
    """Incremental decoder of event stream messages."""

    def __init__(self) -> None: ...
    def feed(self, data: bytes) -> list[Message]:
        """Decode one read; returns every message it completes."""
    def close(self) -> None:
        """End of stream: raises ``TruncatedStreamError`` if a partial frame is buffered."""
    @property
    def buffered(self) -> int: ...

def decode(data: bytes) -> list[Message]:
    """Decode a buffer of complete frames."""

def encode(headers: HeaderItems, payload: bytes) -> bytes:
    """Encode one message; types are inferred or given as ``(name, value, type_name)``."""

@final
class PayloadDecoder:
    """SageMaker stream decoder: PayloadPart frames in, payload bytes out."""

    def __init__(self) -> None: ...
    def feed(self, data: bytes) -> list[bytes]: ...
    def close(self) -> None: ...

@final
class PayloadIterator(Iterator[bytes]):
    """Iterator of payloads over an iterable of raw body reads."""

    def __init__(self, source: Iterable[bytes]) -> None: ...
    def __iter__(self) -> PayloadIterator: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...

# --- stream: raw HTTP body → payloads (src/py_stream.rs) -------------------------------------

from collections.abc import Callable  # noqa: E402
from typing import Literal  # noqa: E402

@final
class BodyStream(Iterator[bytes]):
    """Payloads read straight from an HTTP response body (chunked, Content-Length or until close).

    ``reader`` has ``read1(n)`` (the socket's buffered reader), or with ``framing="iter"`` is an
    iterable of body reads. ``on_end(reusable)`` is called once when the body ends by itself.
    """

    def __new__(
        cls,
        reader: Any,
        framing: Literal["chunked", "length", "close", "iter"],
        *,
        content_length: int | None = None,
        read_size: int = 65536,
        on_end: Callable[[bool], object] | None = None,
        deadline: float | None = None,
        settimeout: Callable[[float], object] | None = None,
        read_timeout: float | None = None,
    ) -> BodyStream: ...
    def __iter__(self) -> BodyStream: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None:
        """Stop now; queued payloads are dropped and ``on_end`` is not called."""
    @property
    def finished(self) -> bool: ...
    def stats(self) -> tuple[int, int, float | None, float, float | None, float | None]:
        """``(parts, bytes, first_part, max_gap, last_part, ended)``, seconds since creation."""

# --- reassembly: lines, SSE, JSON lines (src/py_reassembly.rs) --------------------------------
