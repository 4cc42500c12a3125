"""Server-Sent Events across payload parts, checked against a transcription of the WHATWG rules."""

from __future__ import annotations

import json
import pickle
import random
import re
from typing import Any

import pytest
from _hypothesis import examples
from _reassembly_helpers import every_split, run, run_iter, split_streams, sse_streams
from hypothesis import given, settings
from hypothesis import strategies as st
from sagestream.exceptions import LineTooLongError
from sagestream.reassembly import ServerSentEvent, SseDecoder, iter_sse


def reference_sse(data: bytes, *, dispatch_incomplete: bool = True) -> list[ServerSentEvent]:
    """HTML Living Standard, 9.2.6 "Interpreting an event stream", written out plainly."""
    text = data.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split(r"\r\n|\r|\n", text)
    tail = lines.pop()  # after the last line end: an incomplete line (or "")
    events: list[ServerSentEvent] = []
    state = {"data": "", "type": "", "id": "", "retry": None}

    def dispatch() -> None:
        retry, state["retry"] = state["retry"], None
        if state["data"] == "":
            state["type"] = ""
            return
        payload = str(state["data"])
        if payload.endswith("\n"):
            payload = payload[:-1]
        events.append(
            ServerSentEvent(payload, str(state["type"]) or "message", str(state["id"]) or None, retry)
        )  # type: ignore[arg-type]
        state["data"] = state["type"] = ""

    def process(line: str) -> None:
        if line == "":
            dispatch()
            return
        if line.startswith(":"):
            return
        if ":" in line:
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            state["type"] = value
        elif field == "data":
            state["data"] = str(state["data"]) + value + "\n"
        elif field == "id" and "\0" not in value:
            state["id"] = value
        elif field == "retry" and value and all(c in "0123456789" for c in value) and int(value) < 2**64:
            state["retry"] = int(value)

    for line in lines:
        process(line)
    if dispatch_incomplete:
        if tail:
            process(tail)
        dispatch()
    return events


@settings(max_examples=examples(400), deadline=None)
@given(st.one_of(split_streams(), split_streams(sse_streams)))
def test_any_split_gives_the_reference_events(case: tuple[bytes, list[bytes]]) -> None:
    whole, parts = case
    assert run(SseDecoder, parts) == (reference_sse(whole), None)
    assert run(SseDecoder, [whole]) == (reference_sse(whole), None)
    strict = reference_sse(whole, dispatch_incomplete=False)
    assert run(lambda: SseDecoder(discard_incomplete=True), parts) == (strict, None)
    assert run_iter(iter_sse(parts)) == (reference_sse(whole), None)
    assert run_iter(iter_sse(parts, discard_incomplete=True)) == (strict, None)


def events(*parts: bytes, **kwargs: Any) -> list[ServerSentEvent]:
    return list(iter_sse(parts, **kwargs))


def test_comments_and_multi_line_data() -> None:
    assert events(b": keep-alive\n:\ndata: a\ndata: b\n\n") == [ServerSentEvent("a\nb")]


def test_data_field_forms() -> None:
    # `data` and `data:` add an empty line; `data: ` too; only one leading space is removed.
    assert events(b"data\n\n") == [ServerSentEvent("")]  # the data buffer is "\n": dispatched
    assert events(b"data:\ndata\n\n")[0].data == "\n"
    assert events(b"data: \n\n")[0].data == ""
    assert events(b"data:x\n\n")[0].data == "x"
    assert events(b"data:  two\n\n")[0].data == " two"
    assert events(b"data: a:b: c\n\n")[0].data == "a:b: c"


def test_empty_data_buffer_is_not_dispatched_but_id_and_retry_persist() -> None:
    d = SseDecoder()
    assert d.feed(b"event: ping\nid: 9\nretry: 300\n\n") == []
    assert (d.last_event_id, d.retry) == ("9", 300)
    (event,) = d.feed(b"data: x\n\n")
    assert event == ServerSentEvent("x", "message", "9", None)  # the type was reset, the id kept


def test_event_type_id_and_retry() -> None:
    got = events(b"event: add\nid: 42\nretry: 1000\ndata: 1\n\ndata: 2\n\nid\ndata: 3\n\n")
    assert got == [
        ServerSentEvent("1", "add", "42", 1000),
        ServerSentEvent("2", "message", "42", None),
        ServerSentEvent("3", "message", None, None),  # `id` with empty value resets it
    ]


def test_id_with_nul_is_ignored() -> None:
    assert events(b"id: 1\n\nid: a\x00b\ndata: x\n\n") == [ServerSentEvent("x", id="1")]


def test_retry_must_be_ascii_digits() -> None:
    for bad in (b"1x", b" 1", b"-1", b"1.5", b"", "١٢".encode(), b"99999999999999999999999"):
        assert events(b"retry: " + bad + b"\ndata: x\n\n")[0].retry is None, bad
    assert events(b"retry:007\ndata: x\n\n")[0].retry == 7


def test_unknown_fields_ignored_and_field_names_case_sensitive() -> None:
    assert events(b"foo: bar\nDATA: no\nData: no\ndata: yes\n\n") == [ServerSentEvent("yes")]


def test_bom_stripped_once_even_when_split() -> None:
    assert events(b"\xef", b"\xbb", b"\xbfdata: a\n\n") == [ServerSentEvent("a")]
    # A second BOM is not stripped: the line's field name then is "\ufeffdata", unknown.
    assert events(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n") == []


@pytest.mark.parametrize("eol", [b"\r", b"\n", b"\r\n"])
def test_every_line_ending(eol: bytes) -> None:
    data = b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    want = [ServerSentEvent("a\nb"), ServerSentEvent("c")]
    for size in range(1, len(data) + 1):
        parts = [data[i : i + size] for i in range(0, len(data), size)]
        assert events(*parts) == want, (eol, size)


def test_crlf_split_between_parts_is_one_line_end() -> None:
    d = SseDecoder()
    assert d.feed(b"data: a\r") == []
    assert d.feed(b"\n") == []  # pairs with the \r: not a blank line
    assert d.feed(b"\r") == [ServerSentEvent("a")]
    assert d.feed(b"\ndata: b\r\r") == [ServerSentEvent("b")]


def test_incomplete_event_at_end_of_stream() -> None:
    assert events(b"data: a\n\ndata: b") == [ServerSentEvent("a"), ServerSentEvent("b")]
    assert events(b"data: a\n\ndata: b\n") == [ServerSentEvent("a"), ServerSentEvent("b")]
    assert events(b"data: a\n\ndata: b", discard_incomplete=True) == [ServerSentEvent("a")]
    assert events(b"data: a\n\ndata: b\n", discard_incomplete=True) == [ServerSentEvent("a")]


def test_invalid_utf8_is_replaced() -> None:
    assert events(b"data: a\xffb\n\n", b"data: \xe2\x82\n\n") == [
        ServerSentEvent("a\ufffdb"),
        ServerSentEvent("\ufffd"),
    ]


def tgi_stream(n: int, seed: int = 7) -> tuple[bytes, list[str]]:
    rng = random.Random(seed)
    words = ["Hello", " world", " ünïcödé", " 😀", " 中文", ",", "\\n", " the", " model"]
    texts = [rng.choice(words) for _ in range(n)]
    out = []
    for i, text in enumerate(texts):
        body = {"token": {"id": i, "text": text, "logprob": -0.25, "special": False}, "generated_text": None}
        out.append(b"data:" + json.dumps(body, ensure_ascii=False).encode() + b"\n\n")
    return b"".join(out), texts


def random_parts(data: bytes, rng: random.Random, max_size: int = 64) -> list[bytes]:
    parts, i = [], 0
    while i < len(data):
        size = rng.randint(0, max_size)
        parts.append(data[i : i + size])
        i += size
    return parts


def test_tgi_style_stream_split_randomly() -> None:
    data, texts = tgi_stream(2000)
    rng = random.Random(1)
    for _ in range(5):
        got = [e.json()["token"]["text"] for e in iter_sse(random_parts(data, rng))]
        assert got == texts


def test_event_bound() -> None:
    def feed_many(part: bytes) -> None:
        d = SseDecoder(max_event_bytes=100)
        for _ in range(1000):
            d.feed(part)

    with pytest.raises(LineTooLongError, match="max_event_bytes=100"):
        feed_many(b"data: " + b"x" * 20 + b"\n")  # data accumulates without a blank line
    with pytest.raises(LineTooLongError):
        feed_many(b"y" * 30)  # one endless line
    # Events that each stay below the bound pass, however many.
    assert len(events(*([b"data: " + b"x" * 80 + b"\n\n"] * 1000), max_event_bytes=100)) == 1000


def test_event_bound_after_earlier_events() -> None:
    d = SseDecoder(max_event_bytes=50)
    assert d.feed(b"data: a\n\ndata: " + b"z" * 100) == [ServerSentEvent("a")]
    with pytest.raises(LineTooLongError):
        d.finish()


@pytest.mark.parametrize("end", [b"", b"\n", b"\r", b"\r\n", b"\n\n", b"\r\r", b"\r\n\r\n"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_event_bound_is_exact_at_every_split(end: bytes, bom: bytes) -> None:
    """``max_event_bytes`` bounds the bytes of one event's lines: ``data: 12345`` (11 bytes)
    fits in 11, not in 10, whatever ends it, with or without a byte order mark, however the
    stream is cut (the twin of the line bound's final ``\r`` edge)."""
    data = bom + b"data: 12345" + end
    for parts in every_split(data):
        assert run(lambda: SseDecoder(max_event_bytes=11), parts) == ([ServerSentEvent("12345")], None)
        out, err = run(lambda: SseDecoder(max_event_bytes=10), parts)
        assert out == []
        assert err is not None
        assert err[0] is LineTooLongError


def test_server_sent_event_value_semantics() -> None:
    e = ServerSentEvent('{"a": [1]}', "add", "7", 10)
    assert (e.event, e.data, e.id, e.retry) == ("add", '{"a": [1]}', "7", 10)
    assert e.json() == {"a": [1]}
    assert repr(e) == "ServerSentEvent(event='add', data='{\"a\": [1]}', id='7', retry=10)"
    assert e == ServerSentEvent(data='{"a": [1]}', event="add", id="7", retry=10)
    assert e != ServerSentEvent('{"a": [1]}', "add", "8", 10)
    assert len({e, ServerSentEvent('{"a": [1]}', "add", "7", 10)}) == 1
    assert pickle.loads(pickle.dumps(e)) == e
    assert ServerSentEvent() == ServerSentEvent("", "message", None, None)
    with pytest.raises(AttributeError):
        e.data = "x"  # type: ignore[misc]
    with pytest.raises(json.JSONDecodeError):
        ServerSentEvent("not json").json()


@pytest.mark.parametrize(
    "data",
    [
        '{"token": {"text": "hi", "id": 3}}',
        "-0",
        "12345678901234567890123",
        "NaN",
        '"\\ud800"',
        " [1,\n2] ",
        "1e400",
    ],
)
def test_json_method_equals_json_loads(data: str) -> None:
    assert repr(ServerSentEvent(data).json()) == repr(json.loads(data))
