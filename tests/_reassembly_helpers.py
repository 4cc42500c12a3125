"""Shared strategies and runners for the reassembly tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from hypothesis import strategies as st
from sagestream.exceptions import ReassemblyError

# Pieces that make line and event boundaries, CR/LF pairs and multi-byte characters frequent.
PIECES = [
    b"a",
    b"xyz",
    b" ",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b":",
    b"data",
    b"data:",
    b"data: ",
    b"event: e",
    b"id: 1",
    b"id",
    b"retry: 15",
    b"retry: x",
    b"\x00",
    b"\xef\xbb\xbf",
    "é".encode(),
    "€".encode(),
    "😀".encode(),
    "𐍈".encode(),
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
]

streams = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
    st.binary(max_size=80),
)

_sse_line = st.one_of(
    st.just(b""),
    st.tuples(
        st.sampled_from([b"data", b"event", b"id", b"retry", b"", b"dat", b"DATA", b"\xef\xbb\xbfdata"]),
        st.sampled_from([b"", b":", b": ", b":  "]),
        st.lists(
            st.sampled_from([b"x", b"1", b"42", b" ", b":", b"\x00", "é".encode(), "😀".encode(), b"\xff"]),
            max_size=4,
        ).map(b"".join),
    ).map(b"".join),
)

#: Streams shaped like Server-Sent Events: field lines, blank lines, every line ending, a BOM.
sse_streams = st.tuples(
    st.sampled_from([b"", b"", b"\xef\xbb\xbf"]),
    st.lists(st.tuples(_sse_line, st.sampled_from([b"\n", b"\r", b"\r\n"])), max_size=16),
    _sse_line,
).map(lambda t: t[0] + b"".join(line + eol for line, eol in t[1]) + t[2])


@st.composite
def split_streams(draw: st.DrawFn, data: st.SearchStrategy[bytes] = streams) -> tuple[bytes, list[bytes]]:
    """A stream and one way of cutting it into parts (empty parts included)."""
    whole = draw(data)
    how = draw(st.sampled_from(["cuts", "bytes"]))
    if how == "bytes":
        return whole, [whole[i : i + 1] for i in range(len(whole))]
    cuts = sorted(draw(st.lists(st.integers(0, len(whole)), max_size=12)))
    bounds = [0, *cuts, len(whole)]
    return whole, [whole[a:b] for a, b in itertools.pairwise(bounds)]


def every_split(data: bytes) -> list[list[bytes]]:
    """Every two-way cut of ``data``, and ``data`` byte by byte."""
    halves = [[data[:i], data[i:]] for i in range(len(data) + 1)]
    return [*halves, [data[i : i + 1] for i in range(len(data))]]


class Decoder(Protocol):
    def feed(self, data: bytes) -> list[Any]: ...
    def finish(self) -> list[Any]: ...


def run(make: Callable[[], Decoder], parts: Sequence[bytes]) -> tuple[list[Any], tuple[type, Any] | None]:
    """Feed every part then finish; returns the items and (error class, offset) if one was raised."""
    decoder = make()
    out: list[Any] = []
    try:
        for part in parts:
            out.extend(decoder.feed(part))
        out.extend(decoder.finish())
    except ReassemblyError as err:
        return out, (type(err), getattr(err, "offset", None))
    return out, None


def run_iter(it: Iterator[Any]) -> tuple[list[Any], tuple[type, Any] | None]:
    """Drain an iterator; returns the items and (error class, offset) if one was raised."""
    out: list[Any] = []
    try:
        for item in it:
            out.append(item)
    except ReassemblyError as err:
        return out, (type(err), getattr(err, "offset", None))
    return out, None
