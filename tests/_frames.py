"""A small pure-Python event stream frame builder for the tests.

It is written from the wire format alone (not with sagestream's encoder), so the decoder is
checked against an independent implementation. It can also build frames that break the rules
(bad CRCs, lying lengths) on purpose.
"""

from __future__ import annotations

import datetime as dt
import struct
import uuid
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

# Wire type codes, in the order of the format: 0 true, 1 false, 2 byte, 3 int16, 4 int32,
# 5 int64, 6 bytes, 7 string, 8 timestamp (ms), 9 uuid.
TYPE_CODES = {
    "bool_true": 0,
    "bool_false": 1,
    "byte": 2,
    "int16": 3,
    "int32": 4,
    "int64": 5,
    "bytes": 6,
    "string": 7,
    "timestamp": 8,
    "uuid": 9,
}

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

Header = tuple[str, str, Any]


def encode_header(name: str | bytes, type_name: str, value: Any) -> bytes:
    """One header: ``name_len u8 | name | type u8 | value`` (values as Python sees them)."""
    raw_name = name.encode() if isinstance(name, str) else name
    out = struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">B", TYPE_CODES[type_name])
    if type_name in ("bool_true", "bool_false"):
        return out
    if type_name == "byte":
        return out + struct.pack(">b", value)
    if type_name == "int16":
        return out + struct.pack(">h", value)
    if type_name == "int32":
        return out + struct.pack(">i", value)
    if type_name == "int64":
        return out + struct.pack(">q", value)
    if type_name in ("bytes", "string"):
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return out + struct.pack(">H", len(raw)) + raw
    if type_name == "timestamp":
        millis = value if isinstance(value, int) else to_millis(value)
        return out + struct.pack(">q", millis)
    if type_name == "uuid":
        raw = value.bytes if isinstance(value, uuid.UUID) else bytes(value)
        return out + raw
    raise ValueError(type_name)


def encode_headers(headers: Iterable[Header]) -> bytes:
    """The headers section for ``(name, type_name, value)`` triples, in order."""
    return b"".join(encode_header(n, t, v) for n, t, v in headers)


def frame(
    headers: Sequence[Header] | bytes = (),
    payload: bytes = b"",
    *,
    total_length: int | None = None,
    headers_length: int | None = None,
    prelude_crc: int | None = None,
    message_crc: int | None = None,
) -> bytes:
    """A frame; the keyword arguments override a field (the CRCs are computed after overrides)."""
    raw_headers = headers if isinstance(headers, bytes) else encode_headers(headers)
    total = 16 + len(raw_headers) + len(payload) if total_length is None else total_length
    hlen = len(raw_headers) if headers_length is None else headers_length
    prelude = struct.pack(">II", total, hlen)
    prelude += struct.pack(">I", zlib.crc32(prelude) if prelude_crc is None else prelude_crc)
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body) if message_crc is None else message_crc)


def prelude(total_length: int, headers_length: int = 0) -> bytes:
    """A 12-byte prelude with a valid CRC."""
    head = struct.pack(">II", total_length, headers_length)
    return head + struct.pack(">I", zlib.crc32(head))


def fix_message_crc(data: bytes) -> bytes:
    """Recompute the trailing message CRC of one frame (the first ``total_length`` bytes)."""
    (total,) = struct.unpack(">I", data[:4])
    body = data[: total - 4]
    return body + struct.pack(">I", zlib.crc32(body))


def payload_part(payload: bytes) -> bytes:
    """A SageMaker ``PayloadPart`` event frame, as the service sends it."""
    return frame(
        [
            (":event-type", "string", "PayloadPart"),
            (":content-type", "string", "application/octet-stream"),
            (":message-type", "string", "event"),
        ],
        payload,
    )


def to_millis(value: dt.datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_millis(millis: int) -> dt.datetime:
    """The UTC datetime of a millisecond timestamp."""
    return EPOCH + dt.timedelta(milliseconds=millis)
