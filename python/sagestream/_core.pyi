"""Type stubs for the Rust extension ``sagestream._core``."""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, TypeAlias, final

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
        next call."""
    def close(self) -> None:
        """End of stream: raises ``TruncatedStreamError`` if a partial frame is buffered."""
    @property
    def buffered(self) -> int:
        """Bytes held for a frame that is not complete yet."""

def decode(data: bytes) -> list[Message]:
    """Decode a buffer of complete frames."""

def encode(headers: _HeaderItems, payload: bytes) -> bytes:
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

# --- reassembly: lines, SSE, JSON lines (src/py_reassembly.rs) --------------------------------
