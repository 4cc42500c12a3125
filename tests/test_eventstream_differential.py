"""Differential tests: sagestream's decoder against botocore's ``EventStreamBuffer`` on random
streams (all header types, random payload sizes, random split points) and random corruptions.

botocore returns timestamps as int milliseconds and uuids as 16 raw bytes, sagestream returns
``datetime`` and ``uuid.UUID``: the comparison converts ours to botocore's form. Where botocore's
behaviour is not an error by design (a stream cut mid-frame ends silently, trailing bytes are
ignored), the messages before the cut must match and sagestream must raise
``TruncatedStreamError`` at close.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

from _frames import frame, to_millis
from _hypothesis import examples
from botocore.eventstream import EventStreamBuffer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sagestream import _core
from sagestream import eventstream as es
from sagestream import exceptions as exc

# The range of datetime; timestamps outside it are refused by design (see test_eventstream.py).
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999

names = st.text(max_size=24).filter(lambda n: len(n.encode()) <= 255)

values: st.SearchStrategy[tuple[str, Any]] = st.one_of(
    st.booleans().map(lambda b: ("bool_true" if b else "bool_false", b)),
    st.integers(-(2**7), 2**7 - 1).map(lambda v: ("byte", v)),
    st.integers(-(2**15), 2**15 - 1).map(lambda v: ("int16", v)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: ("int32", v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: ("int64", v)),
    st.binary(max_size=64).map(lambda v: ("bytes", v)),
    st.text(max_size=32).map(lambda v: ("string", v)),
    st.integers(MIN_MS, MAX_MS).map(lambda v: ("timestamp", v)),
    st.binary(min_size=16, max_size=16).map(lambda v: ("uuid", v)),
)

headers_st = st.lists(st.tuples(names, values), max_size=8, unique_by=lambda h: h[0]).map(
    lambda hs: [(n, t, v) for n, (t, v) in hs]
)
payloads = st.one_of(st.binary(max_size=64), st.binary(max_size=4096), st.binary(max_size=20_000))
# Frames draw their headers from a small pool, so consecutive frames often repeat the same
# headers (as every PayloadPart of a stream does) and the decoder's shared header blocks are
# exercised alongside fresh ones.
frames_st = st.lists(headers_st, min_size=1, max_size=3).flatmap(
    lambda pool: st.lists(st.tuples(st.sampled_from(pool), payloads), min_size=1, max_size=6)
)


def ours_as_botocore(message: Any) -> tuple[dict[str, Any], bytes]:
    """A sagestream Message in botocore's form."""
    out: dict[str, Any] = {}
    for name, value in message.headers.items():
        if isinstance(value, dt.datetime):
            out[name] = to_millis(value)
        elif isinstance(value, uuid.UUID):
            out[name] = value.bytes
        else:
            out[name] = value
    return out, message.payload


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def botocore_decode(chunks: list[bytes]) -> tuple[list[tuple[dict[str, Any], bytes]], str | None]:
    """Messages botocore yields, and the class name of the error it raises, if any."""
    buf = EventStreamBuffer()
    out = []
    try:
        for chunk in chunks:
            buf.add_data(chunk)
            out.extend((m.headers, m.payload) for m in buf)
    except Exception as err:
        return out, type(err).__name__
    return out, None


def ours_decode(chunks: list[bytes]) -> tuple[list[tuple[dict[str, Any], bytes]], Exception | None]:
    decoder = es.Decoder()
    out = []
    try:
        for chunk in chunks:
            out.extend(ours_as_botocore(m) for m in decoder.feed(chunk))
        decoder.close()
    except exc.DecodeError as err:
        return out, err
    return out, None


@settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=frames_st, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_random_valid_streams_decode_like_botocore(
    frames: list[tuple[list[tuple[str, str, Any]], bytes]], cuts: list[int]
) -> None:
    data = b"".join(frame(h, p) for h, p in frames)
    chunks = split(data, cuts)
    want, boto_err = botocore_decode(chunks)
    assert boto_err is None
    got, err = ours_decode(chunks)
    assert err is None
    assert got == want
    assert len(got) == len(frames)


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frames=st.lists(st.tuples(headers_st, st.binary(max_size=300)), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    mutation=st.sampled_from(["flip", "truncate", "duplicate", "trailing"]),
    where=st.integers(min_value=0),
    bit=st.integers(0, 7),
)
def test_corrupted_streams_are_rejected_where_botocore_rejects(
    frames: list[tuple[list[tuple[str, str, Any]], bytes]],
    cuts: list[int],
    mutation: str,
    where: int,
    bit: int,
) -> None:
    encoded = [frame(h, p) for h, p in frames]
    data = b"".join(encoded)
    if mutation == "flip":
        bad = bytearray(data)
        bad[where % len(data)] ^= 1 << bit
        data = bytes(bad)
    elif mutation == "truncate":
        data = data[: where % len(data)]
    elif mutation == "duplicate":
        index = where % len(frames)
        headers, payload = frames[index]
        dup = [*headers, ("dup", "int32", 1), ("dup", "string", "again")]
        encoded[index] = frame(dup, payload)
        data = b"".join(encoded)
    else:
        data += bytes([where % 256]) * (1 + where % 11)

    chunks = split(data, cuts)
    want, boto_err = botocore_decode(chunks)
    got, err = ours_decode(chunks)
    # Every message botocore delivered before its verdict, sagestream delivers too.
    assert got == want
    if boto_err is not None:
        assert err is not None, f"botocore raised {boto_err}, sagestream accepted"
        expected = {
            "ChecksumMismatch": exc.ChecksumMismatchError,
            "DuplicateHeader": exc.DuplicateHeaderError,
        }.get(boto_err, exc.DecodeError)
        assert isinstance(err, expected), (boto_err, err)
    elif mutation in ("truncate", "trailing") and len(data) != sum(len(f) for f in encoded[: len(got)]):
        # botocore ends silently on a cut frame or leftover bytes; sagestream reports it.
        assert isinstance(err, exc.TruncatedStreamError)
    else:
        assert err is None


@settings(max_examples=examples(500), deadline=None)
@given(
    parts=st.lists(st.tuples(st.binary(max_size=300), st.booleans()), min_size=1, max_size=10),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_payload_decoder_yields_botocore_payload_parts(
    parts: list[tuple[bytes, bool]], cuts: list[int]
) -> None:
    """The SageMaker path: PayloadPart events become their payload, other events are skipped."""
    data = b"".join(
        frame(
            [
                (":event-type", "string", "PayloadPart" if is_part else "SomethingElse"),
                (":message-type", "string", "event"),
            ],
            payload,
        )
        for payload, is_part in parts
    )
    chunks = split(data, cuts)
    want, boto_err = botocore_decode(chunks)
    assert boto_err is None
    decoder = _core.PayloadDecoder()
    got = [p for chunk in chunks for p in decoder.feed(chunk)]
    decoder.close()
    assert got == [payload for headers, payload in want if headers[":event-type"] == "PayloadPart"]
