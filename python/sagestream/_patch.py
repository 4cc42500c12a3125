"""Drop-in acceleration for stock boto3: ``patch_botocore()`` / ``unpatch_botocore()``.

After ``patch_botocore()``, iterating the ``Body`` of a stock boto3
``invoke_endpoint_with_response_stream()`` decodes the event stream in Rust and yields exactly
the events botocore yields (``{"PayloadPart": {"Bytes": b"..."}}``). The body is still read
through urllib3 exactly as botocore reads it, so transport errors are botocore's own; an error
frame raises the typed sagestream class, which subclasses botocore's ``EventStreamError`` and
carries the very ``response`` botocore's parser builds. Event streams of other operations are
left to botocore.

Differences from botocore, both stricter: a stream that ends inside a frame raises
``TruncatedStreamError`` (botocore ends silently), and bad frames raise sagestream's
``DecodeError`` subclasses (botocore raises its own ``ParserError`` subclasses).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from botocore.eventstream import EventStream

from sagestream import _core
from sagestream.exceptions import StreamError

__all__ = ["is_patched", "patch_botocore", "unpatch_botocore"]

#: Operations whose event stream is decoded here (sagemaker-runtime's ``ResponseStream``).
_OPERATIONS = frozenset({"InvokeEndpointWithResponseStream"})
_SHAPES = frozenset({"ResponseStream"})

_lock = threading.Lock()
_original_iter: Callable[[EventStream], Iterator[Any]] | None = None
#: botocore's own iteration, for the streams this module does not handle.
_botocore_iter: Callable[[EventStream], Iterator[Any]] = EventStream.__iter__


def _applies(stream: EventStream) -> bool:
    shape = getattr(stream, "_output_shape", None)
    return (
        getattr(stream, "_operation_name", None) in _OPERATIONS
        and getattr(shape, "name", None) in _SHAPES
        and hasattr(getattr(stream, "_raw_stream", None), "stream")
    )


def _botocore_error(stream: EventStream, exc: StreamError) -> StreamError:
    """The error botocore would raise for this error frame, as the typed sagestream class."""
    response = exc.response
    if "_payload" in response:
        headers = {
            ":message-type": "exception",
            ":exception-type": exc.error.get("Code", ""),
            ":content-type": "application/json",
        }
        body = response["_payload"]
    else:
        headers = {
            ":message-type": "error",
            ":error-code": exc.error.get("Code", ""),
            ":error-message": exc.error.get("Message", ""),
        }
        body = b""
    parsed = stream._parser.parse(
        {"status_code": 400, "headers": headers, "body": body},
        stream._output_shape,
    )
    return type(exc)(parsed, stream._operation_name)


def _patched_iter(self: EventStream) -> Iterator[Any]:
    if not _applies(self):
        yield from (_original_iter or _botocore_iter)(self)
        return
    payloads = _core.PayloadIterator(self._raw_stream.stream())
    try:
        for payload in payloads:
            yield {"PayloadPart": {"Bytes": payload}}
    except StreamError as exc:
        raise _botocore_error(self, exc) from None


def patch_botocore() -> None:
    """Make botocore decode SageMaker response streams in Rust (idempotent, thread-safe)."""
    global _original_iter
    with _lock:
        if _original_iter is not None:
            return
        _original_iter = EventStream.__iter__
        EventStream.__iter__ = _patched_iter


def unpatch_botocore() -> None:
    """Restore botocore's own decoding (idempotent, thread-safe)."""
    global _original_iter
    with _lock:
        if _original_iter is None:
            return
        EventStream.__iter__ = _original_iter
        _original_iter = None


def is_patched() -> bool:
    """True while :func:`patch_botocore` is in effect."""
    return _original_iter is not None
