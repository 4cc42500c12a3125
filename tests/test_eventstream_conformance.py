"""Every public conformance vector in ``tests/data/conformance`` (see its README for provenance
and licence): valid frames decode exactly, invalid frames raise the right sagestream class.

Error mapping (sagestream checks in botocore's order: prelude CRC, then the caps and length
rules on the 12-byte prelude, then the message CRC, then the headers). botocore's class, then
sagestream's:

- prelude CRC wrong (smithy-rs invalid_prelude_checksum, aws-sdk-go corrupted_header_len and
  corrupted_length, botocore CORRUPTED_LENGTH and CORRUPTED_HEADER_LENGTH):
  ChecksumMismatch -> ChecksumMismatchError, the prelude CRC is checked first.
- message CRC wrong (smithy-rs invalid_message_checksum and the five header vectors whose CRC
  was not recomputed, aws-sdk-go corrupted_headers and corrupted_payload, botocore
  CORRUPTED_HEADERS and CORRUPTED_PAYLOAD): ChecksumMismatch -> ChecksumMismatchError, the
  message CRC is checked before the headers are parsed.
- headers_length > total_length - 16 (smithy-rs invalid_headers_length, aws-c
  illegal_header_length_relationship): ChecksumMismatch -> InvalidFrameError, refused on the
  prelude before anything is buffered.
- botocore INVALID_HEADERS_LENGTH (0xff000102, valid CRCs): InvalidHeadersLength ->
  FrameTooLargeError, over the 128 KiB headers cap.
- botocore INVALID_PAYLOAD_LENGTH.prelude (payload 24 MiB + 17): InvalidPayloadLength ->
  FrameTooLargeError, over the 24 MiB payload cap.
- botocore DUPLICATE_HEADER: DuplicateHeader -> DuplicateHeaderError.
- aws-c message_too_short (total 12) and short_message_total_5: botocore accepts the first (it
  reads the prelude CRC as the message CRC) and raises ChecksumMismatch for the second ->
  InvalidFrameError for both: the spec's minimum frame is 16 bytes.

The smithy-rs header vectors are also decoded with their message CRC repaired, so that the header
parser itself is exercised: each is then an InvalidFrameError (smithy-rs's own test kinds are
InvalidHeaderNameLength, InvalidHeaderValue, InvalidHeaderValueType).
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest
from _frames import fix_message_crc, from_millis
from botocore.eventstream import EventStreamBuffer
from sagestream import eventstream as es
from sagestream import exceptions as exc

DATA = Path(__file__).parent / "data" / "conformance"


def _load_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for name in sorted(DATA.glob("expectations*.json")):
        cases.extend(json.loads(name.read_text())["cases"])
    return cases


CASES = _load_cases()
VALID = [c for c in CASES if c["valid"]]
INVALID = [c for c in CASES if not c["valid"]]

EXPECTED_ERROR: dict[str, type[exc.DecodeError]] = {
    "smithy-rs/invalid_prelude_checksum": exc.ChecksumMismatchError,
    "smithy-rs/invalid_message_checksum": exc.ChecksumMismatchError,
    "smithy-rs/invalid_header_name_length": exc.ChecksumMismatchError,
    "smithy-rs/invalid_header_name_length_too_long": exc.ChecksumMismatchError,
    "smithy-rs/invalid_header_value_type": exc.ChecksumMismatchError,
    "smithy-rs/invalid_header_string_value_length": exc.ChecksumMismatchError,
    "smithy-rs/invalid_header_string_length_cut_off": exc.ChecksumMismatchError,
    "smithy-rs/invalid_headers_length": exc.InvalidFrameError,
    "aws-sdk-go/encoded/negative/corrupted_header_len": exc.ChecksumMismatchError,
    "aws-sdk-go/encoded/negative/corrupted_headers": exc.ChecksumMismatchError,
    "aws-sdk-go/encoded/negative/corrupted_length": exc.ChecksumMismatchError,
    "aws-sdk-go/encoded/negative/corrupted_payload": exc.ChecksumMismatchError,
    "botocore/CORRUPTED_LENGTH": exc.ChecksumMismatchError,
    "botocore/CORRUPTED_PAYLOAD": exc.ChecksumMismatchError,
    "botocore/CORRUPTED_HEADERS": exc.ChecksumMismatchError,
    "botocore/CORRUPTED_HEADER_LENGTH": exc.ChecksumMismatchError,
    "botocore/DUPLICATE_HEADER": exc.DuplicateHeaderError,
    "botocore/INVALID_HEADERS_LENGTH": exc.FrameTooLargeError,
    "botocore/INVALID_PAYLOAD_LENGTH.prelude": exc.FrameTooLargeError,
    "aws-c-event-stream/message_too_short": exc.InvalidFrameError,
    "aws-c-event-stream/short_message_total_5": exc.InvalidFrameError,
    "aws-c-event-stream/illegal_header_length_relationship": exc.InvalidFrameError,
}

# The smithy-rs header vectors with a recomputed message CRC: the header parser must refuse them.
HEADER_VECTORS = [
    "smithy-rs/invalid_header_name_length",
    "smithy-rs/invalid_header_name_length_too_long",
    "smithy-rs/invalid_header_value_type",
    "smithy-rs/invalid_header_string_value_length",
    "smithy-rs/invalid_header_string_length_cut_off",
]


def expected_value(type_name: str, value: Any) -> Any:
    """The Python value sagestream gives for an expectation's JSON value."""
    if type_name == "bytes":
        return base64.b64decode(value)
    if type_name == "timestamp":
        return from_millis(value)
    if type_name == "uuid":
        return uuid.UUID(value)
    return value


def test_every_vector_is_covered() -> None:
    files = {
        str(p.relative_to(DATA))
        for p in DATA.rglob("*")
        if p.is_file() and p.suffix not in (".json", ".md") and "/decoded/" not in str(p)
    }
    assert files == {c["file"] for c in CASES}
    assert set(EXPECTED_ERROR) == {c["file"] for c in INVALID}
    assert len(VALID) == 17
    assert len(INVALID) == 22


@pytest.mark.parametrize("case", VALID, ids=[c["file"] for c in VALID])
def test_valid_vector_decodes_exactly(case: dict[str, Any]) -> None:
    data = (DATA / case["file"]).read_bytes()
    messages = es.decode(data)
    assert len(messages) == len(case["messages"])
    for msg, want in zip(messages, case["messages"], strict=True):
        assert msg.payload == base64.b64decode(want["payload_base64"])
        assert msg.header_list == [
            (h["name"], h["type"], expected_value(h["type"], h["value"])) for h in want["headers"]
        ]
        assert msg.headers == {h["name"]: expected_value(h["type"], h["value"]) for h in want["headers"]}
    # Byte by byte through the incremental decoder gives the same messages.
    decoder = es.Decoder()
    one_by_one = [m for i in range(len(data)) for m in decoder.feed(data[i : i + 1])]
    decoder.close()
    assert one_by_one == messages


@pytest.mark.parametrize("case", VALID, ids=[c["file"] for c in VALID])
def test_valid_vector_reencodes_byte_identical(case: dict[str, Any]) -> None:
    data = (DATA / case["file"]).read_bytes()
    (msg,) = es.decode(data)
    assert es.encode([(n, v, t) for n, t, v in msg.header_list], msg.payload) == data


def test_aws_sdk_go_decoded_fields_match() -> None:
    """The upstream ``decoded/positive`` JSON also gives the lengths and both CRCs."""
    for path in sorted((DATA / "aws-sdk-go" / "decoded" / "positive").iterdir()):
        want = json.loads(path.read_text())
        data = (DATA / "aws-sdk-go" / "encoded" / "positive" / path.name).read_bytes()
        total, hlen, pcrc = struct.unpack(">III", data[:12])
        (mcrc,) = struct.unpack(">I", data[-4:])
        assert (total, hlen, pcrc, mcrc) == (
            want["total_length"],
            want["headers_length"],
            want["prelude_crc"] & 0xFFFFFFFF,
            want["message_crc"] & 0xFFFFFFFF,
        )
        (msg,) = es.decode(data)
        assert msg.payload == base64.b64decode(want["payload"])
        assert [n for n, _, _ in msg.header_list] == [h["name"] for h in want["headers"]]


@pytest.mark.parametrize("case", INVALID, ids=[c["file"] for c in INVALID])
def test_invalid_vector_raises_its_class(case: dict[str, Any]) -> None:
    data = (DATA / case["file"]).read_bytes()
    want = EXPECTED_ERROR[case["file"]]
    with pytest.raises(want) as info:
        es.decode(data)
    # Exactly that class: no subclass stands in for another.
    assert type(info.value) is want
    assert isinstance(info.value, ValueError)
    # Streamed byte by byte the verdict is the same, on the byte that decides it or at close.
    decoder = es.Decoder()

    def byte_by_byte() -> None:
        for i in range(len(data)):
            assert decoder.feed(data[i : i + 1]) == []
        decoder.close()

    with pytest.raises(want):
        byte_by_byte()


@pytest.mark.parametrize("case", INVALID, ids=[c["file"] for c in INVALID])
def test_invalid_vector_against_botocore(case: dict[str, Any]) -> None:
    """botocore's verdict recorded in the expectations is what the installed botocore does."""
    data = (DATA / case["file"]).read_bytes()
    buf = EventStreamBuffer()
    buf.add_data(data)
    if case["botocore_raises"] is None:
        assert len(list(buf)) == case["botocore_accepts"]["messages"]
    else:
        with pytest.raises(Exception) as info:  # noqa: PT011 - botocore raises several kinds
            list(buf)
        assert type(info.value).__name__ == case["botocore_raises"]


@pytest.mark.parametrize("name", HEADER_VECTORS)
def test_header_vector_with_repaired_crc_is_invalid_frame(name: str) -> None:
    data = fix_message_crc((DATA / name).read_bytes())
    with pytest.raises(exc.InvalidFrameError) as info:
        es.decode(data)
    assert type(info.value) is exc.InvalidFrameError
    assert "header" in str(info.value)


def test_all_valid_vectors_in_one_buffer() -> None:
    """botocore's ``test_all_positive_cases``: every valid frame back to back in one read."""
    data = b"".join((DATA / c["file"]).read_bytes() for c in VALID)
    messages = es.decode(data)
    assert [m.payload for m in messages] == [
        base64.b64decode(c["messages"][0]["payload_base64"]) for c in VALID
    ]


def test_partial_empty_message_split_at_15() -> None:
    """botocore's ``test_partial_message``."""
    data = (DATA / "botocore" / "EMPTY_MESSAGE").read_bytes()
    decoder = es.Decoder()
    assert decoder.feed(data[:15]) == []
    assert decoder.buffered == 15
    (msg,) = decoder.feed(data[15:])
    assert (msg.headers, msg.payload) == ({}, b"")
    decoder.close()
