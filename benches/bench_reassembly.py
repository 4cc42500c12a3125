"""Reassembly of an LLM token stream: sagestream (Rust) vs the usual pure-Python "LineIterator".

Workload: N TGI-style Server-Sent Events (``data:{"token": {...}, ...}\\n\\n``, ~150 bytes each,
with non-ASCII text) cut into random payload parts, as SageMaker delivers them. Each variant
consumes the parts and produces the same items (checked before timing). Reported: items/s,
median of several runs, and the ratio to the pure-Python baseline measured in the same run.

    python benches/bench_reassembly.py [--events 100000] [--runs 5] [--max-part 256]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sagestream.reassembly import iter_json_lines, iter_lines, iter_sse

Consumer = Callable[[list[bytes]], Iterable[Any]]


class LineIterator:
    """The pattern frameworks copy from samples: a bytes buffer, ``find(b"\\n")``, slice."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def __iter__(self) -> LineIterator:
        return self

    def __next__(self) -> bytes:
        while True:
            i = self._buffer.find(b"\n")
            if i >= 0:
                line, self._buffer = self._buffer[:i], self._buffer[i + 1 :]
                return line
            try:
                chunk = next(self._chunks)
            except StopIteration:
                if self._buffer:
                    line, self._buffer = self._buffer, b""
                    return line
                raise
            self._buffer += chunk


def py_lines(parts: list[bytes]) -> Iterator[str]:
    for line in LineIterator(parts):
        yield line.rstrip(b"\r").decode("utf-8")


def py_sse_texts(parts: list[bytes]) -> Iterator[str]:
    for line in LineIterator(parts):
        if line.startswith(b"data:"):
            yield json.loads(line[5:].decode("utf-8"))["token"]["text"]


def py_sse_data(parts: list[bytes]) -> Iterator[str]:
    for line in LineIterator(parts):
        if line.startswith(b"data:"):
            yield line[5:].decode("utf-8").lstrip(" ")


def py_json_lines(parts: list[bytes]) -> Iterator[Any]:
    for line in LineIterator(parts):
        if line.strip():
            yield json.loads(line)


def rs_sse_texts(parts: list[bytes]) -> Iterator[str]:
    for event in iter_sse(parts):
        yield event.json()["token"]["text"]


def rs_sse_data(parts: list[bytes]) -> Iterator[str]:
    for event in iter_sse(parts):
        yield event.data


def make_stream(n: int, rng: random.Random) -> tuple[bytes, bytes]:
    """The SSE stream and the same tokens as JSON lines."""
    words = ["Hello", " world", " über", " naïve", " 😀", " 中文", ",", "\n", " the", " model", " token"]
    sse, jsonl = [], []
    for i in range(n):
        text = rng.choice(words)
        body = json.dumps(
            {
                "token": {"id": i, "text": text, "logprob": -0.25, "special": False},
                "generated_text": None,
                "details": None,
            },
            ensure_ascii=False,
        ).encode()
        sse.append(b"data:" + body + b"\n\n")
        jsonl.append(body + b"\n")
    return b"".join(sse), b"".join(jsonl)


def cut(data: bytes, rng: random.Random, max_part: int) -> list[bytes]:
    parts, i = [], 0
    while i < len(data):
        size = rng.randint(1, max_part)
        parts.append(data[i : i + size])
        i += size
    return parts


def measure(fn: Callable[[list[bytes]], Iterable[Any]], parts: list[bytes], runs: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        count = sum(1 for _ in fn(parts))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-part", type=int, default=256, help="parts are 1..MAX bytes, uniform")
    args = ap.parse_args()

    rng = random.Random(42)
    sse, jsonl = make_stream(args.events, rng)
    sse_parts, jsonl_parts = cut(sse, rng, args.max_part), cut(jsonl, rng, args.max_part)
    print(
        f"{args.events:,} events, SSE {len(sse) / 1e6:.1f} MB in {len(sse_parts):,} parts "
        f"of 1..{args.max_part} bytes; medians of {args.runs} runs"
    )

    cases: list[tuple[str, Consumer, Consumer, list[bytes]]] = [
        ("lines (str)", py_lines, lambda p: iter_lines(p), sse_parts),
        ("SSE events, data (str)", py_sse_data, rs_sse_data, sse_parts),
        ("SSE events + .json() token text", py_sse_texts, rs_sse_texts, sse_parts),
        ("JSON lines", py_json_lines, lambda p: iter_json_lines(p), jsonl_parts),
    ]
    print()
    print("| workload | pure-Python LineIterator | sagestream | ratio |")
    print("|---|---:|---:|---:|")
    for name, py_fn, rs_fn, parts in cases:
        assert list(py_fn(parts)) == list(rs_fn(parts)), name
        py_t, n = measure(py_fn, parts, args.runs)
        rs_t, _ = measure(rs_fn, parts, args.runs)
        print(f"| {name} | {n / py_t / 1e3:,.0f} k/s | {n / rs_t / 1e3:,.0f} k/s | {py_t / rs_t:.1f}x |")


if __name__ == "__main__":
    main()
