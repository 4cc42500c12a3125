"""Decode the same in-memory event streams with sagestream and botocore, side by side.

Run after a release build (``maturin develop -r``)::

    python benches/bench_decode.py [--quick]

Cases: (a) 20,000 PayloadPart frames of 100 bytes fed in 64 KiB reads, (b) the same frames in
one read, (c) 1 MiB payload frames fed in 64 KiB reads. Each case is decoded by:

- ``PayloadDecoder.feed``: the SageMaker path (payload bytes out);
- ``Decoder.feed``: generic messages (headers built lazily), and with every ``.headers`` read;
- botocore ``EventStreamBuffer`` iteration (messages with parsed headers);
- botocore ``EventStream`` over the sagemaker-runtime output shape: what a boto3 user's
  ``for event in response["Body"]`` costs (``{"PayloadPart": {"Bytes": ...}}`` dicts);
- ``zlib.crc32`` over every read: the floor for checking the bytes at all.

Figures are medians of several runs; ratios are against ``EventStreamBuffer`` in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterator

import botocore.session
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.parsers import EventStreamJSONParser
from sagestream import _core

READ = 64 * 1024


def encode_header(name: str, value: str) -> bytes:
    raw = value.encode()
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw


HEADERS = (
    encode_header(":event-type", "PayloadPart")
    + encode_header(":content-type", "application/octet-stream")
    + encode_header(":message-type", "event")
)


def payload_part(payload: bytes) -> bytes:
    """A PayloadPart frame as SageMaker sends it."""
    total = 16 + len(HEADERS) + len(payload)
    prelude = struct.pack(">II", total, len(HEADERS))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + HEADERS + payload
    return body + struct.pack(">I", zlib.crc32(body))


def reads(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def run_payload_decoder(chunks: list[bytes]) -> int:
    decoder = _core.PayloadDecoder()
    n = 0
    for chunk in chunks:
        n += len(decoder.feed(chunk))
    decoder.close()
    return n


def run_decoder(chunks: list[bytes]) -> int:
    decoder = _core.Decoder()
    n = 0
    for chunk in chunks:
        for message in decoder.feed(chunk):
            message.payload  # noqa: B018 - the attribute a consumer reads
            n += 1
    decoder.close()
    return n


def run_decoder_headers(chunks: list[bytes]) -> int:
    decoder = _core.Decoder()
    n = 0
    for chunk in chunks:
        for message in decoder.feed(chunk):
            message.headers  # noqa: B018 - force the lazy headers, as botocore builds them
            message.payload  # noqa: B018
            n += 1
    decoder.close()
    return n


def run_botocore_buffer(chunks: list[bytes]) -> int:
    buf = EventStreamBuffer()
    n = 0
    for chunk in chunks:
        buf.add_data(chunk)
        for message in buf:
            message.payload  # noqa: B018
            n += 1
    return n


class _RawStream:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def stream(self) -> Iterator[bytes]:
        yield from self._chunks


_MODEL = botocore.session.get_session().get_service_model("sagemaker-runtime")
_BODY_SHAPE = _MODEL.operation_model("InvokeEndpointWithResponseStream").output_shape.members["Body"]


def run_botocore_eventstream(chunks: list[bytes]) -> int:
    stream = EventStream(
        _RawStream(chunks), _BODY_SHAPE, EventStreamJSONParser(), "InvokeEndpointWithResponseStream"
    )
    n = 0
    for event in stream:
        event["PayloadPart"]["Bytes"]
        n += 1
    return n


def run_crc32(chunks: list[bytes]) -> int:
    crc = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
    return 0


IMPLS: list[tuple[str, Callable[[list[bytes]], int]]] = [
    ("sagestream PayloadDecoder", run_payload_decoder),
    ("sagestream Decoder", run_decoder),
    ("sagestream Decoder + .headers", run_decoder_headers),
    ("botocore EventStreamBuffer", run_botocore_buffer),
    ("botocore EventStream (boto3 Body)", run_botocore_eventstream),
    ("zlib.crc32 (floor)", run_crc32),
]


def bench_case(title: str, chunks: list[bytes], events: int, runs: int) -> list[tuple[str, float, float]]:
    """Time every implementation ``runs`` times, interleaved round by round, so that a slow spell
    of a shared machine hits them all alike; medians per implementation."""
    total = sum(len(c) for c in chunks)
    for _, fn in IMPLS:
        fn(chunks)  # warm-up: first-touch page faults and caches
    times: dict[str, list[float]] = {name: [] for name, _ in IMPLS}
    for round_ in range(runs):
        for name, fn in IMPLS:
            # botocore is quadratic on one large read; fewer runs keep the case short.
            if "botocore" in name and len(chunks) == 1 and round_ >= max(1, runs // 3):
                continue
            start = time.perf_counter()
            got = fn(chunks)
            times[name].append(time.perf_counter() - start)
            if fn is not run_crc32 and got != events:
                raise AssertionError(f"{name} decoded {got} events, expected {events}")
    results = []
    for name, _ in IMPLS:
        seconds = statistics.median(times[name])
        results.append((name, events / seconds, total / seconds / 1e6))
    base = next(r for r in results if r[0] == "botocore EventStreamBuffer")
    crc = next(r for r in results if r[0].startswith("zlib"))
    print(f"\n### {title}: {events:,} events, {total / 1e6:.1f} MB in {len(chunks):,} reads")
    print("| decoder | events/s | MB/s | vs EventStreamBuffer | time vs crc32 |")
    print("|---|---:|---:|---:|---:|")
    for name, eps, mbs in results:
        ev = "—" if name.startswith("zlib") else f"{eps:,.0f}"
        print(f"| {name} | {ev} | {mbs:,.0f} | {mbs / base[2]:.1f}x | {crc[2] / mbs:.2f}x |")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer frames and runs (a smoke test)")
    args = parser.parse_args()
    runs = 3 if args.quick else 9
    small = 2_000 if args.quick else 20_000
    big = 8 if args.quick else 32

    print(f"python {sys.version.split()[0]}, botocore {botocore.__version__}, sagestream {_core.__version__}")
    stream = b"".join(payload_part(bytes([i % 251]) * 100) for i in range(small))
    bench_case("(a) 100-byte PayloadPart frames, 64 KiB reads", reads(stream, READ), small, runs)
    bench_case("(b) the same frames in one read", [stream], small, runs)
    large = b"".join(payload_part(bytes([i]) * (1024 * 1024)) for i in range(big))
    bench_case("(c) 1 MiB PayloadPart frames, 64 KiB reads", reads(large, READ), big, runs)
    bench_case("(c') 1 MiB PayloadPart frames, one read", [large], big, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
