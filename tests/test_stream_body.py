"""_core.BodyStream (botocore's own path: body reads from urllib3, decoded in Rust): any read
split gives the same parts; any cut raises after the parts before it; on_end says whether the
body was read to its end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _hypothesis import examples
from _raw_server import payload_frame
from hypothesis import given, settings
from hypothesis import strategies as st
from sagestream import _core
from sagestream.exceptions import ConnectionLostError, DecodeError, TruncatedStreamError

PAYLOADS = [bytes([i]) * (i * 7 % 50) for i in range(30)]
FRAMES = b"".join(payload_frame(p) for p in PAYLOADS)


def reads(data: bytes, sizes: list[int], error: BaseException | None = None) -> Iterator[bytes]:
    """``data`` in reads of the given sizes (then of what is left), then ``error`` if any."""
    pos = 0
    sizes = list(sizes)
    while pos < len(data):
        size = max(1, sizes.pop(0)) if sizes else len(data)
        yield data[pos : pos + size]
        pos += size
    if error is not None:
        raise error


def run(source: Any, **kw: Any) -> tuple[list[bytes], BaseException | None, list[bool]]:
    ends: list[bool] = []
    body = _core.BodyStream(source, on_end=ends.append, **kw)
    got: list[bytes] = []
    try:
        for part in body:
            got.append(part)
    except Exception as exc:
        return got, exc, ends
    return got, None, ends


@settings(max_examples=examples(150), deadline=None)
@given(sizes=st.lists(st.integers(1, 300), max_size=60))
def test_any_read_split(sizes: list[int]) -> None:
    got, exc, ends = run(reads(FRAMES, sizes))
    assert exc is None
    assert got == PAYLOADS
    assert ends == [True]


@settings(max_examples=examples(150), deadline=None)
@given(cut_at=st.integers(0, len(FRAMES) - 1), sizes=st.lists(st.integers(1, 300), max_size=10))
def test_any_cut_raises_after_a_prefix(cut_at: int, sizes: list[int]) -> None:
    lost = ConnectionLostError("the connection was lost")
    got, exc, ends = run(reads(FRAMES[:cut_at], sizes, lost))
    assert got == PAYLOADS[: len(got)]
    assert isinstance(exc, (TruncatedStreamError, ConnectionLostError))
    assert ends == [False]


def test_a_cut_inside_a_frame_is_truncated_between_frames_connection_lost() -> None:
    first = len(payload_frame(PAYLOADS[0]))
    got, exc, _ = run(reads(FRAMES[: first + 5], [], ConnectionLostError("reset")))
    assert got == PAYLOADS[:1]
    assert isinstance(exc, TruncatedStreamError)
    got, exc, _ = run(reads(FRAMES, [], ConnectionLostError("reset")))
    assert got == PAYLOADS
    assert type(exc) is ConnectionLostError


def test_an_end_inside_a_frame_is_truncated() -> None:
    got, exc, ends = run(reads(FRAMES[:-3], [33]))
    assert got == PAYLOADS[:-1]
    assert isinstance(exc, TruncatedStreamError)
    assert ends == [False]


def test_other_errors_pass_through() -> None:
    _, exc, _ = run(reads(b"", [], KeyError("x")))
    assert isinstance(exc, KeyError)


def test_bad_source_items() -> None:
    got, exc, _ = run(iter([FRAMES, "text"]))
    assert got == PAYLOADS
    assert isinstance(exc, TypeError)


def test_decode_errors_end_the_stream_and_stick() -> None:
    body = _core.BodyStream(iter([b"\x00" * 16]))
    with pytest.raises(DecodeError) as first:
        next(body)
    with pytest.raises(DecodeError) as again:
        next(body)
    assert type(again.value) is type(first.value)
    assert again.value is not first.value  # a fresh exception: nothing is held
    assert body.finished


def test_close_and_stats() -> None:
    ends: list[bool] = []
    body = _core.BodyStream(reads(FRAMES, [64]), on_end=ends.append)
    assert next(body) == PAYLOADS[0]
    assert next(body) == PAYLOADS[1]
    body.close()
    assert body.finished
    assert list(body) == []
    assert ends == [False]  # the connection is closed, not reused
    body.close()
    assert ends == [False]
    stats = body.stats()
    assert (stats.parts, stats.bytes) == (2, len(PAYLOADS[0]) + len(PAYLOADS[1]))
    assert stats.first_part_at is not None
    assert stats.last_part_at is not None
    assert stats.ended_at is not None
    assert stats.max_gap >= 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="deadline"):
        _core.BodyStream(iter([]), deadline=-1)
    with pytest.raises(TypeError):
        _core.BodyStream(42)  # type: ignore[arg-type]


def test_deadline_without_socket() -> None:
    body = _core.BodyStream(reads(FRAMES, [10]), deadline=0.0)
    with pytest.raises(TimeoutError, match="deadline"):
        next(body)
