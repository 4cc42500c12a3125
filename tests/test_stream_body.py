"""_core.BodyStream on in-memory readers: any chunking and any read split give the same parts;
any cut raises after the parts before it; the connection is reusable only after a whole body."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from _raw_server import chunk, payload_frame
from hypothesis import given, settings
from hypothesis import strategies as st
from sagestream import _core
from sagestream.exceptions import ConnectionLostError, DecodeError, InvalidFrameError, TruncatedStreamError

PAYLOADS = [bytes([i]) * (i * 7 % 50) for i in range(30)]
FRAMES = b"".join(payload_frame(p) for p in PAYLOADS)


class Reader:
    """``read1`` returning the given slices, then b"" (EOF), or raising ``error``."""

    def __init__(self, data: bytes, reads: list[int], error: BaseException | None = None) -> None:
        self.data, self.reads, self.pos, self.error = data, list(reads), 0, error

    def read1(self, n: int) -> bytes:
        if self.pos >= len(self.data):
            if self.error is not None:
                raise self.error
            return b""
        size = min(n, self.reads.pop(0) if self.reads else n)
        out = self.data[self.pos : self.pos + max(1, size)]
        self.pos += len(out)
        return out


def chunked(data: bytes, cuts: list[int]) -> bytes:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points) if b > a]
    return b"".join(chunk(p, ";x=1" if i % 3 == 0 else "") for i, p in enumerate(pieces)) + b"0\r\n\r\n"


def run(reader: Any, framing: str, **kw: Any) -> tuple[list[bytes], BaseException | None, list[bool]]:
    ends: list[bool] = []
    body = _core.BodyStream(reader, framing, on_end=ends.append, **kw)
    got: list[bytes] = []
    try:
        for part in body:
            got.append(part)
    except Exception as exc:
        return got, exc, ends
    return got, None, ends


@settings(max_examples=150, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
    reads=st.lists(st.integers(1, 300), max_size=60),
)
def test_any_chunking_and_read_split(cuts: list[int], reads: list[int]) -> None:
    body = chunked(FRAMES, cuts)
    got, exc, ends = run(Reader(body, reads), "chunked")
    assert exc is None
    assert got == PAYLOADS
    assert ends == [True]


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(0, 10_000), max_size=10), cut_at=st.integers(0, 10**6))
def test_any_cut_raises_after_a_prefix(cuts: list[int], cut_at: int) -> None:
    body = chunked(FRAMES, cuts)
    cut_at %= len(body)  # strictly before the end
    got, exc, ends = run(Reader(body[:cut_at], [97]), "chunked")
    assert got == PAYLOADS[: len(got)]
    assert isinstance(exc, (TruncatedStreamError, ConnectionLostError))
    assert ends == [False]


@given(cut_at=st.integers(0, len(FRAMES) - 1))
def test_content_length_cut(cut_at: int) -> None:
    got, exc, ends = run(Reader(FRAMES[:cut_at], [50]), "length", content_length=len(FRAMES))
    assert got == PAYLOADS[: len(got)]
    assert isinstance(exc, (TruncatedStreamError, ConnectionLostError))
    assert ends == [False]


def test_content_length_and_until_close() -> None:
    assert run(Reader(FRAMES, [100]), "length", content_length=len(FRAMES))[:2] == (PAYLOADS, None)
    reader = Reader(FRAMES + b"extra", [10**6])
    got, exc, ends = run(reader, "length", content_length=len(FRAMES))
    assert (got, exc, ends) == (PAYLOADS, None, [True])
    assert reader.pos == len(FRAMES)  # never reads past the body
    got, exc, ends = run(Reader(FRAMES, [33]), "close")
    assert (got, exc, ends) == (PAYLOADS, None, [True])
    got, exc, _ = run(Reader(FRAMES[:-3], [33]), "close")
    assert isinstance(exc, TruncatedStreamError)


def test_reset_becomes_typed() -> None:
    frames = FRAMES[: len(payload_frame(PAYLOADS[0])) + 5]
    got, exc, _ = run(Reader(chunk(frames), [10**6], ConnectionResetError(104, "reset")), "chunked")
    assert got == PAYLOADS[:1]
    assert isinstance(exc, TruncatedStreamError)
    assert isinstance(exc.__cause__, ConnectionLostError)
    got, exc, _ = run(Reader(chunk(FRAMES), [10**6], ConnectionResetError(104, "reset")), "chunked")
    assert got == PAYLOADS
    assert isinstance(exc, ConnectionLostError)
    assert isinstance(exc.__cause__, ConnectionResetError)


def test_non_io_errors_pass_through() -> None:
    _, exc, _ = run(Reader(b"", [], KeyError("x")), "chunked")
    assert isinstance(exc, KeyError)


def test_iter_framing_and_bad_source_items() -> None:
    assert run(iter([FRAMES[:10], FRAMES[10:]]), "iter")[:2] == (PAYLOADS, None)
    got, exc, _ = run(iter([FRAMES, "text"]), "iter")
    assert got == PAYLOADS
    assert isinstance(exc, TypeError)


def test_errors_are_decode_errors_and_sticky() -> None:
    body = _core.BodyStream(Reader(chunk(b"\x00" * 16) + b"0\r\n\r\n", [100]), "chunked")
    with pytest.raises(DecodeError):
        next(body)
    assert list(body) == []
    body = _core.BodyStream(Reader(b"zz\r\n", [100]), "chunked")
    with pytest.raises(InvalidFrameError, match="chunked"):
        next(body)


def test_close_and_stats() -> None:
    ends: list[bool] = []
    body = _core.BodyStream(Reader(chunked(FRAMES, [5, 500]), [64]), "chunked", on_end=ends.append)
    assert next(body) == PAYLOADS[0]
    assert next(body) == PAYLOADS[1]
    body.close()
    assert body.finished
    assert list(body) == []
    assert ends == []
    parts, nbytes, first, gap, last, ended = body.stats()
    assert (parts, nbytes) == (2, len(PAYLOADS[0]) + len(PAYLOADS[1]))
    assert first is not None
    assert last is not None
    assert ended is not None
    assert gap >= 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="framing"):
        _core.BodyStream(Reader(b"", []), "gzip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="content_length"):
        _core.BodyStream(Reader(b"", []), "length")
    with pytest.raises(ValueError, match="deadline"):
        _core.BodyStream(Reader(b"", []), "close", deadline=-1)


def test_deadline_without_socket() -> None:
    body = _core.BodyStream(Reader(chunk(FRAMES), [10]), "chunked", deadline=0.0)
    with pytest.raises(TimeoutError, match="deadline"):
        next(body)
