"""The Rust event stream decoder and encoder through ``sagestream.eventstream``: edge cases,
corruption, truncation, hostile preludes and the SageMaker payload mapping."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from pathlib import Path

import pytest
from _frames import frame, payload_part, prelude
from botocore.eventstream import EventStreamBuffer
from sagestream import _core
from sagestream import eventstream as es
from sagestream import exceptions as exc

ALL_TYPES = [
    ("t", "bool_true", True),
    ("f", "bool_false", False),
    ("b", "byte", -128),
    ("s", "int16", 32767),
    ("i", "int32", -(2**31)),
    ("l", "int64", 2**63 - 1),
    ("y", "bytes", b"\x00\xff"),
    ("str", "string", "h\u00e9llo \U0001f600"),
    ("ts", "timestamp", dt.datetime(2024, 2, 29, 12, 30, 1, 123000, tzinfo=dt.timezone.utc)),
    ("u", "uuid", uuid.UUID("b79bc914-de21-4e13-b8b2-bc47e85b7f0b")),
]


def stream_of(n: int, seed: int = 0) -> tuple[bytes, list[bytes]]:
    rng = random.Random(seed)
    payloads = [rng.randbytes(rng.choice([0, 1, 7, 100, 1000])) for _ in range(n)]
    return b"".join(frame(ALL_TYPES[: i % 11], p) for i, p in enumerate(payloads)), payloads


# --- messages and headers ---------------------------------------------------------------------


def test_all_header_types_decode_to_python_values() -> None:
    (msg,) = es.decode(frame(ALL_TYPES, b"body"))
    assert msg.header_list == ALL_TYPES
    assert msg.headers == {n: v for n, _, v in ALL_TYPES}
    assert msg.headers["ts"].tzinfo is dt.timezone.utc
    assert msg.payload == b"body"
    assert "Message(headers=" in repr(msg)


def test_encode_matches_an_independent_encoder_for_every_type() -> None:
    typed = [(n, v, t) for n, t, v in ALL_TYPES]
    assert es.encode(typed, b"body") == frame(ALL_TYPES, b"body")
    # Inferred types: bool, int32/int64, bytes, str, datetime, UUID.
    inferred = {
        "a": True,
        "b": 5,
        "c": 2**40,
        "d": b"x",
        "e": "y",
        "f": ALL_TYPES[8][2],
        "g": ALL_TYPES[9][2],
    }
    (msg,) = es.decode(es.encode(inferred, b""))
    assert [t for _, t, _ in msg.header_list] == [
        "bool_true",
        "int32",
        "int64",
        "bytes",
        "string",
        "timestamp",
        "uuid",
    ]
    assert msg.headers == inferred


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="255"):
        es.encode([("x" * 256, "v")], b"")
    with pytest.raises(ValueError, match="unknown header type"):
        es.encode([("x", 1, "float")], b"")
    with pytest.raises(TypeError):
        es.encode({"x": 1.5}, b"")


def test_255_byte_header_name_accepted() -> None:
    name = "n" * 255
    data = frame([(name, "string", "v")], b"p")
    (msg,) = es.decode(data)
    assert msg.headers == {name: "v"}
    assert es.encode({name: "v"}, b"p") == data


def test_empty_names_and_values_accepted() -> None:
    """botocore and smithy-rs accept empty names and empty string/bytes values."""
    data = frame([("", "string", ""), ("e", "bytes", b"")])
    (msg,) = es.decode(data)
    assert msg.header_list == [("", "string", ""), ("e", "bytes", b"")]


def test_zero_length_payloads_and_many_frames_per_read() -> None:
    data = b"".join(frame([("k", "int32", i)]) for i in range(1000))
    messages = es.decode(data)
    assert [m.headers["k"] for m in messages] == list(range(1000))
    assert all(m.payload == b"" for m in messages)


def test_message_equality() -> None:
    a, b = es.decode(frame(ALL_TYPES, b"x") * 2)
    (c,) = es.decode(frame(ALL_TYPES, b"y"))
    assert a == b
    assert a != c
    assert a != "not a message"


def test_repeated_headers_give_each_message_its_own_dict_and_list() -> None:
    """Consecutive frames with the same headers share their decoding, never their objects."""
    other = [("k", "int32", 1)]
    decoder = es.Decoder()
    messages = decoder.feed(frame(ALL_TYPES, b"1") + frame(ALL_TYPES, b"2") + frame(other, b"3"))
    messages += decoder.feed(frame(other, b"4")) + decoder.feed(frame(ALL_TYPES, b"5"))
    decoder.close()
    full = {n: v for n, _, v in ALL_TYPES}
    assert [m.headers for m in messages] == [full, full, {"k": 1}, {"k": 1}, full]
    assert [m.payload for m in messages] == [b"1", b"2", b"3", b"4", b"5"]
    assert messages[0].headers is not messages[1].headers
    assert messages[0].header_list is not messages[1].header_list
    messages[0].headers["added"] = True
    messages[0].header_list.clear()
    assert messages[0].headers["added"] is True
    assert messages[0].header_list == []
    assert messages[1].headers == full
    assert messages[4].headers == full
    assert messages[1].header_list == ALL_TYPES
    assert messages[2].header_list == other


def test_timestamp_outside_datetime_range_is_an_invalid_frame() -> None:
    """A timestamp datetime cannot hold (year > 9999) has no Python value: refused, not wrapped."""
    data = frame([("ts", "timestamp", 2**62)])
    with pytest.raises(exc.InvalidFrameError, match="timestamp"):
        es.decode(data)


# --- header rules -------------------------------------------------------------------------------


def test_duplicate_header_rejected() -> None:
    data = frame([("a", "int32", 1), ("b", "bool_true", True), ("a", "string", "x")])
    with pytest.raises(exc.DuplicateHeaderError, match='"a"'):
        es.decode(data)


def test_duplicate_among_many_headers_rejected() -> None:
    headers = [(f"h{i}", "byte", 1) for i in range(100)] + [("h57", "byte", 2)]
    with pytest.raises(exc.DuplicateHeaderError, match="h57"):
        es.decode(frame(headers))
    (msg,) = es.decode(frame(headers[:100]))
    assert len(msg.headers) == 100


def botocore_error(data: bytes) -> str | None:
    buf = EventStreamBuffer()
    buf.add_data(data)
    try:
        list(buf)
    except Exception as err:
        return type(err).__name__
    return None


def test_zero_header_block_of_1_mib_is_too_large_like_botocore() -> None:
    """aws-c-event-stream's 1 MiB - 16 block of zero bytes (2-byte headers, empty name, true).

    The headers length is over the 128 KiB cap, so the prelude alone refuses it: botocore
    raises InvalidHeadersLength, sagestream FrameTooLargeError (a DecodeError).
    """
    data = frame(bytes(1024 * 1024 - 16))
    assert botocore_error(data) == "InvalidHeadersLength"
    decoder = es.Decoder()
    with pytest.raises(exc.FrameTooLargeError, match="headers length"):
        decoder.feed(data[:12])


def test_zero_header_block_within_cap_is_a_duplicate_like_botocore() -> None:
    """The same block at the 128 KiB cap: the second empty name is a duplicate, as in botocore."""
    data = frame(bytes(128 * 1024))
    assert botocore_error(data) == "DuplicateHeader"
    with pytest.raises(exc.DuplicateHeaderError):
        es.decode(data)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x03abc\x0a",  # unknown value type 10
        b"\x03abc\x07\x00\x05ab",  # string length overruns
        b"\x03abc\x04\x00\x01",  # int32 cut off
        b"\x05ab",  # name overruns
        b"\x02\xff\xfe\x00",  # name not UTF-8
        b"\x01a\x07\x00\x02\xc3\x28",  # string value not UTF-8
        b"\x01a\x09" + bytes(15),  # uuid cut off
    ],
)
def test_malformed_headers_with_valid_crcs_are_invalid_frames(raw: bytes) -> None:
    with pytest.raises(exc.InvalidFrameError) as info:
        es.decode(frame(raw, b"payload"))
    assert type(info.value) is exc.InvalidFrameError


# --- lengths and hostile preludes ---------------------------------------------------------------


@pytest.mark.parametrize("total", [0, 5, 12, 15])
def test_total_length_below_16_rejected(total: int) -> None:
    """The spec's minimum frame is 16 bytes (prelude + message CRC). botocore accepts 12 (it
    reads the prelude CRC as the message CRC); sagestream refuses it on the prelude."""
    data = prelude(total) + bytes(8)
    decoder = es.Decoder()
    with pytest.raises(exc.InvalidFrameError, match="below the 16-byte minimum"):
        decoder.feed(data)


def test_headers_length_one_and_past_total_rejected() -> None:
    with pytest.raises(exc.InvalidFrameError):
        es.decode(frame(b"\x00", b""))
    with pytest.raises(exc.InvalidFrameError, match="does not fit"):
        es.Decoder().feed(prelude(20, 5))


def _vm_size_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1])
    raise AssertionError("no VmSize")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_hostile_prelude_refused_on_12_bytes_without_allocating() -> None:
    before = _vm_size_kib()
    decoders = []
    for total in (0xFFFFFFFF, 0x80000000, 25 * 1024 * 1024 + 17):
        for _ in range(100):
            d = es.Decoder()
            with pytest.raises(exc.FrameTooLargeError):
                d.feed(prelude(total))
            # The decoder stays failed; later reads do not resynchronise or buffer.
            with pytest.raises(exc.FrameTooLargeError):
                d.feed(b"\x00" * 1000)
            assert d.buffered == 0
            decoders.append(d)
        p = _core.PayloadDecoder()
        with pytest.raises(exc.FrameTooLargeError):
            p.feed(prelude(total))
    # Even a frame within the caps (24 MiB declared) is not reserved before its bytes arrive.
    for _ in range(100):
        d = es.Decoder()
        assert d.feed(prelude(16 + 24 * 1024 * 1024) + b"abc") == []
        assert d.buffered == 15
        decoders.append(d)
    grown_mib = (_vm_size_kib() - before) / 1024
    assert grown_mib < 64, f"address space grew by {grown_mib:.0f} MiB"


# --- splits, truncation, corruption ---------------------------------------------------------------


def test_every_split_point_of_a_multi_frame_stream() -> None:
    data, payloads = stream_of(4)
    for cut in range(len(data) + 1):
        decoder = es.Decoder()
        got = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        decoder.close()
        assert [m.payload for m in got] == payloads


def test_random_splits_many_frames() -> None:
    data, payloads = stream_of(200, seed=1)
    rng = random.Random(2)
    for _ in range(50):
        decoder = es.Decoder()
        got = []
        pos = 0
        while pos < len(data):
            step = rng.choice([1, 2, 11, 12, 13, 100, 4096, 65536])
            got += decoder.feed(data[pos : pos + step])
            pos += step
        decoder.close()
        assert [m.payload for m in got] == payloads


def test_truncation_at_every_byte_raises_at_close_after_the_whole_frames() -> None:
    data, payloads = stream_of(3, seed=3)
    bounds = [0]
    for m in es.decode(data):
        bounds.append(bounds[-1] + len(es.encode([(n, v, t) for n, t, v in m.header_list], m.payload)))
    assert bounds[-1] == len(data)
    for cut in range(len(data)):
        decoder = es.Decoder()
        got = decoder.feed(data[:cut])
        whole = sum(1 for b in bounds[1:] if b <= cut)
        assert [m.payload for m in got] == payloads[:whole]
        if cut in bounds:
            decoder.close()
        else:
            with pytest.raises(exc.TruncatedStreamError, match="stream ended mid-frame"):
                decoder.close()
            # The error sticks.
            with pytest.raises(exc.TruncatedStreamError):
                decoder.close()


@pytest.mark.parametrize(
    "data",
    [
        frame([], b""),
        frame([(":event-type", "string", "PayloadPart")], b"0123456789"),
        frame(ALL_TYPES, b"xyz"),
    ],
    ids=["empty", "payload-part", "all-types"],
)
def test_any_single_bit_flip_is_rejected(data: bytes) -> None:
    for bit in range(len(data) * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(exc.ChecksumMismatchError):
            es.decode(bytes(bad))


def test_trailing_garbage_rejected() -> None:
    """botocore ignores bytes left after the last frame; sagestream reports them."""
    good = frame([("a", "int32", 1)], b"p")
    decoder = es.Decoder()
    (msg,) = decoder.feed(good + b"\x00\x01\x02")
    assert msg.payload == b"p"
    with pytest.raises(exc.TruncatedStreamError):
        decoder.close()
    # Twelve or more garbage bytes are a prelude that fails its CRC.
    decoder = es.Decoder()
    assert len(decoder.feed(good + b"garbage-bytes-here")) == 1
    with pytest.raises(exc.ChecksumMismatchError):
        decoder.feed(b"")


def test_messages_before_an_error_in_the_same_read_come_first() -> None:
    good = frame([("a", "int32", 1)], b"first")
    bad = frame([("a", "int32", 1)], b"second", message_crc=0)
    decoder = es.Decoder()
    (msg,) = decoder.feed(good + bad + good)
    assert msg.payload == b"first"
    with pytest.raises(exc.ChecksumMismatchError):
        decoder.feed(good)
    with pytest.raises(exc.ChecksumMismatchError):
        decoder.close()
    with pytest.raises(exc.ChecksumMismatchError):
        es.decode(good + bad)


def test_decode_errors_are_value_errors_and_pickle() -> None:
    import pickle

    with pytest.raises(ValueError) as info:  # noqa: PT011 - checking the builtin base
        es.decode(frame([], b"x", message_crc=1))
    err = info.value
    assert isinstance(err, exc.DecodeError)
    assert isinstance(err, exc.SageStreamError)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)


# --- the SageMaker payload mapping --------------------------------------------------------------


def test_payload_decoder_yields_payload_parts_and_skips_others() -> None:
    data = (
        frame([(":message-type", "string", "event"), (":event-type", "string", "initial-response")], b"{}")
        + payload_part(b"a")
        + frame([(":message-type", "string", "event"), (":event-type", "string", "FutureEvent")], b"?")
        + payload_part(b"")
        + payload_part(b"b" * 1000)
    )
    decoder = _core.PayloadDecoder()
    got = [p for i in range(0, len(data), 7) for p in decoder.feed(data[i : i + 7])]
    decoder.close()
    assert got == [b"a", b"", b"b" * 1000]


def test_payload_decoder_model_stream_error_after_the_payloads() -> None:
    err_frame = frame(
        [
            (":message-type", "string", "exception"),
            (":exception-type", "string", "ModelStreamError"),
            (":content-type", "string", "application/json"),
        ],
        b'{"Message": "too slow", "ErrorCode": "ModelInvocationTimeExceeded"}',
    )
    decoder = _core.PayloadDecoder()
    assert decoder.feed(payload_part(b"1") + payload_part(b"2") + err_frame) == [b"1", b"2"]
    with pytest.raises(exc.ModelStreamError) as info:
        decoder.feed(b"")
    assert info.value.error_code == "ModelInvocationTimeExceeded"
    assert info.value.message == "too slow"


def test_payload_decoder_internal_failure_and_error_frames() -> None:
    decoder = _core.PayloadDecoder()
    with pytest.raises(exc.InternalStreamFailure):
        decoder.feed(
            frame(
                [
                    (":message-type", "string", "exception"),
                    (":exception-type", "string", "InternalStreamFailure"),
                ],
                b'{"Message": "oops"}',
            )
        )
    decoder = _core.PayloadDecoder()
    with pytest.raises(exc.StreamError) as info:
        decoder.feed(
            frame(
                [
                    (":message-type", "string", "error"),
                    (":error-code", "string", "ThrottlingException"),
                    (":error-message", "string", "slow down"),
                ]
            )
        )
    assert "slow down" in str(info.value)


def test_payload_decoder_truncated_stream() -> None:
    data = payload_part(b"whole") + payload_part(b"cut")[:-3]
    decoder = _core.PayloadDecoder()
    assert decoder.feed(data) == [b"whole"]
    with pytest.raises(exc.TruncatedStreamError):
        decoder.close()


def test_payload_decoder_rejects_duplicate_and_malformed_headers() -> None:
    dup = frame([(":event-type", "string", "PayloadPart"), (":event-type", "string", "PayloadPart")], b"x")
    with pytest.raises(exc.DuplicateHeaderError):
        _core.PayloadDecoder().feed(dup)
    with pytest.raises(exc.InvalidFrameError):
        _core.PayloadDecoder().feed(frame(b"\x01a\x0b", b"x"))


def test_payload_decoder_large_frames() -> None:
    big = [bytes([i]) * (1024 * 1024) for i in range(3)]
    data = b"".join(payload_part(p) for p in big)
    decoder = _core.PayloadDecoder()
    got = [p for i in range(0, len(data), 65536) for p in decoder.feed(data[i : i + 65536])]
    decoder.close()
    assert got == big
    assert _core.PayloadDecoder().feed(data) == big


def test_lazy_headers_are_built_once_even_across_threads() -> None:
    import threading

    messages = es.decode(frame(ALL_TYPES, b"x") * 500)
    seen: list[list[int]] = []

    def read_all() -> None:
        seen.append([id(m.headers) for m in messages] + [id(m.header_list) for m in messages])

    threads = [threading.Thread(target=read_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4
    assert all(ids == seen[0] for ids in seen)
    assert messages[0].headers == {n: v for n, _, v in ALL_TYPES}
