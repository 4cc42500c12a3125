"""Writing a response stream out: each piece to stdout as it arrives, the timing summary to stderr."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from sagestream.cli._common import EXIT_FAILED

_UNITS = {"lines": "lines", "sse": "server-sent events", "json": "JSON lines"}
#: How to ask a model for the units of a mode, when its answer held none.
_ASK_FOR = {"sse": 'ask for events (TGI: "stream": true in the body; or --accept text/event-stream)'}


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--lines`` / ``--sse`` / ``--json`` (default: the raw parts) and ``--quiet``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--lines", action="store_const", dest="mode", const="lines", help="print text lines")
    group.add_argument(
        "--sse",
        action="store_const",
        dest="mode",
        const="sse",
        help="print the data of each server-sent event",
    )
    group.add_argument(
        "--json", action="store_const", dest="mode", const="json", help="print each JSON line, compact"
    )
    parser.set_defaults(mode=None)
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")


@contextlib.contextmanager
def _quiet_content_type() -> Iterator[None]:
    """No ContentTypeWarning: the command notes on stderr when a mode found nothing."""
    import warnings

    from sagestream.exceptions import ContentTypeWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ContentTypeWarning)
        yield


def render(stream: Any, mode: str | None) -> Iterator[bytes]:
    """What to write for each unit of output in ``mode`` (``None``: the parts as they came)."""
    if mode == "lines":
        for line in stream.lines(errors="replace"):
            yield line.encode("utf-8") + b"\n"
    elif mode == "sse":
        with _quiet_content_type():  # the command says so itself when nothing was found
            events = stream.sse()
        for event in events:
            yield event.data.encode("utf-8") + b"\n"
    elif mode == "json":
        with _quiet_content_type():
            values = stream.json_lines()
        for value in values:
            yield json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    else:
        yield from stream


def write_out(pieces: Iterable[bytes]) -> int:
    """Write each piece to stdout and flush it at once; returns how many were written.

    A reader that goes away (``| head``) raises ``BrokenPipeError`` here, which the ``sagestream``
    entry point turns into a quiet exit 0.
    """
    out = sys.stdout.buffer
    written = 0
    for piece in pieces:
        out.write(piece)
        out.flush()
        written += 1
    return written


def summary(stream: Any, err: IO[str]) -> None:
    """One line about the stream: parts, bytes, duration, time to first part, rate, longest gap."""
    m = stream.metrics
    first = "-" if m.time_to_first_part is None else f"{m.time_to_first_part * 1000:.1f} ms"
    total = m.duration if m.duration is not None else (time.monotonic() - m.started)
    rate = m.parts / total if total > 0 else 0.0
    err.write(
        f"\n[sagestream] {m.parts} parts, {m.bytes} bytes in {total:.3f} s; "
        f"first part after {first}; {rate:,.0f} parts/s; longest gap {m.max_gap * 1000:.1f} ms\n"
    )


def stream_out(stream: Any, pieces: Iterable[bytes], *, quiet: bool, mode: str | None = None) -> int:
    """Write ``pieces`` (drawn from ``stream``) to stdout, then the summary unless ``quiet``.

    Errors of the stream propagate after the summary, so the parts received before them are
    out and counted. ``mode`` names the ``--lines`` / ``--sse`` / ``--json`` option that made
    ``pieces``: when the answer had bytes but none of that mode's units, the command did not do
    what it was asked, and says so on stderr. Returns the exit status: 0, or 1 in that case.
    """
    broken_pipe = False
    try:
        with stream:
            written = write_out(pieces)
    except BrokenPipeError:
        broken_pipe = True
        raise
    finally:
        if not quiet and not broken_pipe:
            summary(stream, sys.stderr)
    if mode in _UNITS and written == 0 and stream.metrics.bytes:
        # Not a silent success: the bytes arrived but held nothing of the chosen kind.
        ask = f"; or {_ASK_FOR[mode]}" if mode in _ASK_FOR else ""
        sys.stderr.write(
            f"[sagestream] --{mode}: {stream.metrics.bytes} bytes received but no {_UNITS[mode]} in "
            f"them (the endpoint answered {stream.content_type or 'no content type'}); "
            f"run without --{mode} to see them as they came{ask}\n"
        )
        return EXIT_FAILED
    return 0
