"""Lines and JSON lines reassembled across payload parts, checked against plain Python."""

from __future__ import annotations

import inspect
import itertools
import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from _hypothesis import examples
from _reassembly_helpers import every_split, run, run_iter, split_streams
from hypothesis import given, settings
from hypothesis import strategies as st
from sagestream import reassembly
from sagestream.exceptions import DecodeError, LineTooLongError, ReassemblyError
from sagestream.reassembly import JsonLinesDecoder, LineDecoder, iter_json_lines, iter_lines


def reference_lines(data: bytes, errors: str = "strict") -> tuple[list[str], tuple[type, Any] | None]:
    """``bytes.split(b"\\n")``; one ``\\r`` stripped before each ``\\n``; the last piece kept if any."""
    pieces = data.split(b"\n")
    last = pieces.pop()
    lines = [p[:-1] if p.endswith(b"\r") else p for p in pieces]
    if last:
        lines.append(last)
    out: list[str] = []
    start = 0
    for raw, piece in zip(lines, data.split(b"\n"), strict=False):
        try:
            out.append(raw.decode("utf-8", errors))
        except UnicodeDecodeError as err:
            return out, (ReassemblyError, start + err.start)
        start += len(piece) + 1
    return out, None


@settings(max_examples=examples(400), deadline=None)
@given(split_streams(), st.sampled_from(["strict", "replace"]))
def test_any_split_gives_the_reference_lines(case: tuple[bytes, list[bytes]], errors: str) -> None:
    whole, parts = case
    expected = reference_lines(whole, errors)
    assert run(lambda: LineDecoder(errors=errors), [whole]) == expected
    assert run(lambda: LineDecoder(errors=errors), parts) == expected
    assert run_iter(iter_lines(parts, errors=errors)) == expected


def test_multibyte_characters_split_at_every_position() -> None:
    text = "aé€😀𐍈 ß\r\n中文 🎉🇫🇷\nend 😀"
    data = text.encode()
    expected = ["aé€😀𐍈 ß", "中文 🎉🇫🇷", "end 😀"]
    for cut in range(len(data) + 1):
        for second in range(cut, len(data) + 1):
            parts = [data[:cut], data[cut:second], data[second:]]
            assert run(LineDecoder, parts) == (expected, None), parts
    assert run(LineDecoder, [data[i : i + 1] for i in range(len(data))]) == (expected, None)


def test_crlf_split_between_parts_gives_no_empty_line() -> None:
    d = LineDecoder()
    assert d.feed(b"one\r") == []
    assert d.feed(b"\ntwo\r") == ["one"]
    assert d.feed(b"\n") == ["two"]
    assert d.feed(b"\r\n") == [""]
    assert d.finish() == []


def test_lone_cr_is_part_of_the_line() -> None:
    assert list(iter_lines([b"a\rb\n", b"c\r"])) == ["a\rb", "c\r"]


def test_final_line_without_newline_is_yielded_at_the_end() -> None:
    pulled: list[bytes] = []

    def source() -> Iterator[bytes]:
        for part in (b"first\nsec", b"ond", b" last"):
            pulled.append(part)
            yield part

    it = iter_lines(source())
    assert next(it) == "first"
    assert pulled == [b"first\nsec"]  # yielded before the next part was read
    assert list(it) == ["second last"]


def test_blank_lines_are_kept() -> None:
    assert list(iter_lines([b"\n\na\n\r\n"])) == ["", "", "a", ""]


def test_invalid_utf8_strict_raises_with_offset_after_earlier_lines() -> None:
    d = LineDecoder()
    assert d.feed(b"good\nba\xffd\nnever\n") == ["good"]
    with pytest.raises(ReassemblyError, match="byte offset 7") as info:
        d.feed(b"more\n")
    assert info.value.offset == 7
    assert isinstance(info.value, DecodeError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ReassemblyError):  # the decoder stays failed
        d.finish()


def test_invalid_utf8_replace() -> None:
    assert list(iter_lines([b"ba\xffd\n\xe2\x82", b"\n\xf0\x9f\x98"], errors="replace")) == [
        "ba\ufffdd",
        "\ufffd",
        "\ufffd",
    ]


def test_truncated_character_at_end_of_stream() -> None:
    with pytest.raises(ReassemblyError, match="byte offset 2"):
        list(iter_lines([b"ok\xf0\x9f"]))


def test_line_too_long_is_bounded_and_clear() -> None:
    d = LineDecoder(max_line_bytes=1000)
    fed: list[int] = []

    def offer_10_mb_without_newline() -> None:
        for _ in range(10_000):
            d.feed(b"x" * 1000)
            fed.append(d.buffered)

    with pytest.raises(LineTooLongError, match="max_line_bytes=1000") as info:
        offer_10_mb_without_newline()
    assert fed == [1000]  # refused on the second part: nothing beyond the bound is held
    assert info.value.limit == 1000
    assert info.value.offset == 0
    err = pickle.loads(pickle.dumps(info.value))
    assert isinstance(err, LineTooLongError)
    assert str(err) == str(info.value)


def test_line_bound_counts_content_not_the_terminator() -> None:
    assert list(iter_lines([b"12345\r", b"\n", b"12345\n"], max_line_bytes=5)) == ["12345", "12345"]
    with pytest.raises(LineTooLongError):
        list(iter_lines([b"123456\n"], max_line_bytes=5))


def test_line_bound_does_not_depend_on_the_split() -> None:
    data = b"ok\n" + b"y" * 50 + b"\nafter\n"
    for size in (1, 7, len(data)):
        parts = [data[i : i + size] for i in range(0, len(data), size)]
        out, err = run(lambda: LineDecoder(max_line_bytes=20), parts)
        assert out == ["ok"]
        assert err == (LineTooLongError, 3)


def test_items_before_an_error_come_first_then_the_error() -> None:
    d = LineDecoder(max_line_bytes=4)
    assert d.feed(b"ab\ncd\nefghij") == ["ab", "cd"]
    with pytest.raises(LineTooLongError):
        d.finish()


def test_feed_after_finish_and_finish_twice() -> None:
    d = LineDecoder()
    assert d.feed(b"a") == []
    assert d.finish() == ["a"]
    assert d.finish() == []
    with pytest.raises(ValueError, match="after finish"):
        d.feed(b"b")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="errors must be"):
        LineDecoder(errors="ignore")
    with pytest.raises(ValueError, match="at least 1"):
        LineDecoder(max_line_bytes=0)
    with pytest.raises(TypeError):
        LineDecoder().feed("text")  # type: ignore[arg-type]


def test_python_and_rust_defaults_agree() -> None:
    for cls, name in ((LineDecoder, "max_line_bytes"), (JsonLinesDecoder, "max_line_bytes")):
        assert inspect.signature(cls).parameters[name].default == reassembly.DEFAULT_MAX_LINE_BYTES
    assert inspect.signature(iter_lines).parameters["max_line_bytes"].default == 1_048_576


# --- JSON lines --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(st.tuples(json_values, st.sampled_from(["\n", "\r\n", "\n\n", "\n  \t\n"])), max_size=8),
    st.data(),
)
def test_json_lines_any_split(values: list[tuple[Any, str]], data: st.DataObject) -> None:
    whole = "".join(json.dumps(v, ensure_ascii=False) + sep for v, sep in values).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(whole)), max_size=10)))
    bounds = [0, *cuts, len(whole)]
    parts = [whole[a:b] for a, b in itertools.pairwise(bounds)]
    expected = [v for v, _ in values]
    assert list(iter_json_lines(parts)) == expected
    assert run(JsonLinesDecoder, parts) == (expected, None)
    assert list(iter_json_lines([whole[i : i + 1] for i in range(len(whole))])) == expected


def test_json_lines_blank_lines_and_final_line_without_newline() -> None:
    assert list(iter_json_lines([b'{"a": 1}\n\n  \r\n', b" [1, 2] \n", b"3"])) == [{"a": 1}, [1, 2], 3]


def test_json_lines_invalid_line_names_the_line_after_earlier_values() -> None:
    it = iter_json_lines([b'{"ok": true}\n{"broken": \n', b"[1]\n"])
    assert next(it) == {"ok": True}
    with pytest.raises(ReassemblyError, match=r'line 2 \(byte offset 13\).*"\{\\"broken\\": "') as info:
        next(it)
    assert info.value.line_number == 2
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_json_lines_extra_data_and_long_line_is_truncated_in_message() -> None:
    with pytest.raises(ReassemblyError, match="Extra data"):
        list(iter_json_lines([b"[1] [2]\n"]))
    with pytest.raises(ReassemblyError) as info:
        list(iter_json_lines([b"[" + b"1," * 5000 + b"x]\n"]))
    assert len(str(info.value)) < 400
    assert "10003 bytes" in str(info.value)


def test_json_lines_invalid_utf8_and_bound() -> None:
    with pytest.raises(ReassemblyError, match="invalid UTF-8 at byte offset 4"):
        list(iter_json_lines([b"[1]\n\xff\n"]))
    with pytest.raises(LineTooLongError):
        list(iter_json_lines([b'"' + b"x" * 100], max_line_bytes=50))


def test_json_lines_semantics_match_json_loads() -> None:
    lines = [
        b"NaN",
        b"-Infinity",
        b"1e400",
        b"12345678901234567890123",
        b"-9223372036854775809",
        b"18446744073709551615",
        b"-0",
        b"[-0, -0.0, -0e1, 0, -1]",
        b'"\\ud83d\\ude00"',
        b'"\\ud800 lone"',
        b'{"a":1,"a":2,"b":[{}]}',
        b"5e-324",
        b"0.1",
        b"1.7976931348623157e308",
        b'"\\u0000 \\n \\/"',
        b"[" * 200 + b"]" * 200,
    ]
    got = list(iter_json_lines([b"\n".join(lines)]))
    want = [json.loads(line) for line in lines]
    assert repr(got) == repr(want)


# --- the Rust iterator behind iter_lines / iter_sse / iter_json_lines ---------------------------


def test_iterator_passes_source_errors_through_after_earlier_items() -> None:
    def source() -> Iterator[bytes]:
        yield b"a\nb"
        raise ConnectionError("lost")

    it = iter_lines(source())
    assert next(it) == "a"
    with pytest.raises(ConnectionError, match="lost"):
        next(it)
    assert list(it) == []  # fused


def test_iterator_rejects_non_bytes_parts() -> None:
    with pytest.raises(TypeError, match="must be bytes"):
        list(iter_lines(["text\n"]))  # type: ignore[list-item]


def test_iterator_close_drops_pending_items() -> None:
    it = iter_lines([b"a\nb\nc\n"])
    assert next(it) == "a"
    it.close()  # type: ignore[attr-defined]
    assert list(it) == []


def test_iterator_argument_errors_are_raised_at_once() -> None:
    with pytest.raises(ValueError, match="errors must be"):
        iter_lines([], errors="bogus")


exotic_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.sampled_from([0.0, -0.0, 5e-324, 1e308, 0.1])
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=examples(300), deadline=None)
@given(exotic_json, st.booleans(), st.sampled_from(["", " ", "\t"]))
def test_json_values_are_exactly_json_loads(value: Any, ascii_only: bool, pad: str) -> None:
    line = (pad + json.dumps(value, ensure_ascii=ascii_only) + pad).encode("utf-8", "surrogatepass")
    want = json.loads(line.decode("utf-8", "surrogatepass"))
    out, err = run(JsonLinesDecoder, [line])
    if err is not None:  # a lone surrogate written raw is not UTF-8: strict decoding refuses it
        assert not ascii_only
        return
    assert repr(out) == repr([want])
    assert [type(x) for x in out] == [type(want)]


class ClosableSource:
    """An iterable of parts with close(), like a response stream."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.parts)

    def close(self) -> None:
        self.closed += 1


def test_iterator_closes_its_source_on_a_reassembly_error_and_on_close() -> None:
    src = ClosableSource([b"ok\n", b"x" * 50])
    it = iter_lines(src, max_line_bytes=10)
    assert next(it) == "ok"
    assert src.closed == 0
    with pytest.raises(LineTooLongError):
        next(it)
    assert src.closed == 1  # the connection is released at once
    src = ClosableSource([b"a\nb\n"])
    it = iter_lines(src)
    assert next(it) == "a"
    it.close()  # type: ignore[attr-defined]
    it.close()  # type: ignore[attr-defined]
    assert src.closed == 1
    src = ClosableSource([b"a\nb"])
    assert list(iter_lines(src)) == ["a", "b"]
    assert src.closed == 0  # a source that ended normally is left alone


def _every_split(data: bytes) -> list[list[bytes]]:
    """Every two-way cut of ``data``, and byte by byte."""
    return [[data[:i], data[i:]] for i in range(len(data) + 1)] + [
        [data[i : i + 1] for i in range(len(data))]
    ]


@pytest.mark.parametrize(
    ("data", "lines", "fits"),
    [
        (b"12", ["12"], 2),
        (b"12\n", ["12"], 2),
        (b"12\r\n", ["12"], 2),  # the terminator does not count
        (b"12\r", ["12\r"], 3),  # a final \r has no \n to pair with: it is part of the line
        (b"12\r\r\n", ["12\r"], 3),
        (b"1\n12\r", ["1", "12\r"], 3),
    ],
)
def test_the_bound_is_exact_at_every_split(data: bytes, lines: list[str], fits: int) -> None:
    """``max_line_bytes`` bounds the bytes of one line: its longest line fits, one byte less
    does not, however the stream is cut (JSON lines too: a trailing ``\r`` is whitespace)."""
    for parts in every_split(data):
        assert run(lambda: LineDecoder(max_line_bytes=fits), parts) == (lines, None)
        assert list(iter_lines(parts, max_line_bytes=fits)) == lines
        _, err = run(lambda: LineDecoder(max_line_bytes=fits - 1), parts)
        assert err is not None
        assert err[0] is LineTooLongError
        assert run(lambda: JsonLinesDecoder(max_line_bytes=fits), parts) == ([int(x) for x in lines], None)
        _, err = run(lambda: JsonLinesDecoder(max_line_bytes=fits - 1), parts)
        assert err is not None
        assert err[0] is LineTooLongError
        with pytest.raises(LineTooLongError):
            list(iter_json_lines(parts, max_line_bytes=fits - 1))
