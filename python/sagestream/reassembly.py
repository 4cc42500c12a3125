"""Lines, Server-Sent Events and JSON lines reassembled from payload parts, in Rust.

SageMaker cuts a model's output into ``PayloadPart`` events wherever it likes: a line, an SSE
event or a multi-byte UTF-8 character can span any number of parts. These functions take the
parts (any iterable of ``bytes``, for example the ``PayloadPart`` bytes of a stock boto3
``invoke_endpoint_with_response_stream`` response) and yield each item as soon as its last byte
arrives. At the end of the input a last line without line end is still yielded, never waited on.

Rules:

- Lines: ``\\n`` and ``\\r\\n`` end a line, also when the pair is split between parts; a lone
  ``\\r`` is part of the line (as with ``bytes.split(b"\\n")``). Terminators are stripped.
- SSE: the WHATWG HTML "event stream interpretation": a leading BOM is dropped, ``\\r``, ``\\n``
  and ``\\r\\n`` end lines, ``:`` starts a comment, ``data`` lines are joined with ``\\n``, a blank
  line dispatches, a block without data dispatches nothing (its ``id``/``retry`` still count),
  an ``id`` with NUL is ignored, ``retry`` only with ASCII digits. An event left without its
  blank line at the end of the stream is dispatched (LLM containers often end that way); pass
  ``discard_incomplete=True`` to drop it as a browser would.
- JSON lines: every non-blank line is parsed with Python's ``json``.

Errors (from :mod:`sagestream.exceptions`): more than ``max_line_bytes`` (``max_event_bytes``)
without a line end (event end) raises ``LineTooLongError``, so memory stays bounded; invalid
UTF-8 (strict) or invalid JSON raises ``ReassemblyError`` naming the byte offset (and the line).
Every item before the bad bytes is yielded first, then the error; the sync iterators and the
decoders raise it again at every later call (a new exception each time: nothing raised is kept
alive), the async twins end after raising it. On such an error the source is closed
at once (``close()``, or ``aclose()`` for the async twins) when it has that method, so a
response stream releases its connection.

The sync functions return a :class:`ReassemblyIterator` (decoding and iteration both in Rust,
with ``close()``); the async ones drive the ``feed``/``finish`` decoders, which are public too
for code that receives parts by callback.

Example with stock boto3::

    parts = (e["PayloadPart"]["Bytes"] for e in response["Body"] if "PayloadPart" in e)
    for event in iter_sse(parts):
        print(event.json()["token"]["text"], end="")
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

from sagestream._core import (
    JsonLinesDecoder,
    LineDecoder,
    ReassemblyIterator,
    ServerSentEvent,
    SseDecoder,
)
from sagestream.exceptions import ReassemblyError

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "JsonLinesDecoder",
    "LineDecoder",
    "ReassemblyIterator",
    "ServerSentEvent",
    "SseDecoder",
    "aiter_json_lines",
    "aiter_lines",
    "aiter_sse",
    "iter_json_lines",
    "iter_lines",
    "iter_sse",
]

#: Default bound on one line (or one SSE event) held while waiting for its end: 1 MiB.
DEFAULT_MAX_LINE_BYTES = 1_048_576


def iter_lines(
    chunks: Iterable[bytes], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, errors: str = "strict"
) -> Iterator[str]:
    """Yield the text lines of ``chunks`` (terminators stripped) as soon as each is complete.

    ``errors`` is ``"strict"`` (invalid UTF-8 raises ``ReassemblyError``) or ``"replace"``
    (U+FFFD).
    """
    return ReassemblyIterator.lines(chunks, max_line_bytes=max_line_bytes, errors=errors)


def iter_sse(
    chunks: Iterable[bytes],
    *,
    max_event_bytes: int = DEFAULT_MAX_LINE_BYTES,
    discard_incomplete: bool = False,
) -> Iterator[ServerSentEvent]:
    """Yield the Server-Sent Events of ``chunks`` as soon as each is dispatched."""
    return ReassemblyIterator.sse(
        chunks, max_event_bytes=max_event_bytes, discard_incomplete=discard_incomplete
    )


def iter_json_lines(
    chunks: Iterable[bytes], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[Any]:
    """Yield the JSON value of each non-blank line of ``chunks`` as soon as the line is complete."""
    return ReassemblyIterator.json_lines(chunks, max_line_bytes=max_line_bytes)


async def _release(chunks: object) -> None:
    """After a reassembly error: close the source now (``aclose()``) if it can be closed."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


async def _decoded(chunks: AsyncIterable[bytes], decoder: Any) -> AsyncIterator[Any]:
    """What ``decoder`` makes of ``chunks``, as soon as each is complete; the source is released
    (:func:`_release`) when the decoder refuses it."""
    try:
        async for chunk in chunks:
            for item in decoder.feed(chunk):
                yield item
        for item in decoder.finish():
            yield item
    except ReassemblyError:
        await _release(chunks)
        raise


def aiter_lines(
    chunks: AsyncIterable[bytes],
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    errors: str = "strict",
) -> AsyncIterator[str]:
    """Async twin of :func:`iter_lines`."""
    return _decoded(chunks, LineDecoder(max_line_bytes=max_line_bytes, errors=errors))


def aiter_sse(
    chunks: AsyncIterable[bytes],
    *,
    max_event_bytes: int = DEFAULT_MAX_LINE_BYTES,
    discard_incomplete: bool = False,
) -> AsyncIterator[ServerSentEvent]:
    """Async twin of :func:`iter_sse`."""
    return _decoded(
        chunks, SseDecoder(max_event_bytes=max_event_bytes, discard_incomplete=discard_incomplete)
    )


def aiter_json_lines(
    chunks: AsyncIterable[bytes], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> AsyncIterator[Any]:
    """Async twin of :func:`iter_json_lines`."""
    return _decoded(chunks, JsonLinesDecoder(max_line_bytes=max_line_bytes))
