"""sagestream: fast, correct streaming from Amazon SageMaker AI endpoints.

The AWS event stream is decoded in Rust (``sagestream._core``): sagestream's own zero-copy frame
splitter with CRC32 checks and size caps, differential-fuzzed against ``aws-smithy-eventstream``,
which encodes. ``patch_botocore()`` puts stock boto3 (and aiobotocore) streams on the same decoder.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sagestream._core import __version__
from sagestream.exceptions import (
    AsyncInferenceError,
    AsyncInferenceFailed,
    AsyncInferenceFailedError,
    AsyncInferenceTimeout,
    AsyncInferenceTimeoutError,
    ChecksumMismatchError,
    ConnectError,
    ConnectionLostError,
    ConnectTimeoutError,
    ContentTypeWarning,
    DeadlineExceededError,
    DecodeError,
    DuplicateHeaderError,
    FallbackWarning,
    FrameTooLargeError,
    InputClosedError,
    InputValidationError,
    InternalDependencyException,
    InternalFailure,
    InternalServerError,
    InternalStreamFailure,
    InvalidFrameError,
    LineTooLongError,
    ModelError,
    ModelNotReadyException,
    ModelStreamError,
    ParamValidationError,
    ReadTimeoutError,
    ReassemblyError,
    SageStreamError,
    ServiceError,
    ServiceUnavailable,
    ServiceUnavailableError,
    SigningError,
    StreamError,
    TransportError,
    TruncatedStreamError,
    ValidationError,
)

if TYPE_CHECKING:
    from sagestream._aio import AsyncClient, AsyncResponseStream
    from sagestream._call import AttemptObserver
    from sagestream._client import Client, InvokeResult, stream_from_boto3
    from sagestream._duplex import AsyncDuplexSession, DuplexSession, OutputPart
    from sagestream._jobs import (
        AsyncInferenceJob,
        AsyncInvocation,
        AsyncInvocationAsync,
        InferenceJob,
        WaitProgress,
        as_completed,
        as_completed_async,
        wait_many,
        wait_many_async,
    )
    from sagestream._patch import is_patched, patch_botocore, unpatch_botocore
    from sagestream._stream import ResponseStream, StreamMetrics

# Public names defined in modules that import botocore/aiohttp machinery: loaded on first use
# so that `import sagestream` (and the Rust codec) stays cheap.
_LAZY = {
    "Client": "sagestream._client",
    "stream_from_boto3": "sagestream._client",
    "InvokeResult": "sagestream._operations",
    "ResponseStream": "sagestream._stream",
    "StreamMetrics": "sagestream._stream",
    "AttemptObserver": "sagestream._call",
    "patch_botocore": "sagestream._patch",
    "unpatch_botocore": "sagestream._patch",
    "is_patched": "sagestream._patch",
    "AsyncClient": "sagestream._aio",
    "AsyncResponseStream": "sagestream._aio",
    "InferenceJob": "sagestream._jobs",
    "AsyncInferenceJob": "sagestream._jobs",
    "AsyncInvocation": "sagestream._jobs",
    "AsyncInvocationAsync": "sagestream._jobs",
    "wait_many": "sagestream._jobs",
    "as_completed": "sagestream._jobs",
    "wait_many_async": "sagestream._jobs",
    "as_completed_async": "sagestream._jobs",
    "WaitProgress": "sagestream._jobs",
    "DuplexSession": "sagestream._duplex",
    "AsyncDuplexSession": "sagestream._duplex",
    "OutputPart": "sagestream._duplex",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sagestream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "Client",
    "stream_from_boto3",
    "InvokeResult",
    "ResponseStream",
    "StreamMetrics",
    "AttemptObserver",
    "patch_botocore",
    "unpatch_botocore",
    "is_patched",
    "AsyncClient",
    "AsyncResponseStream",
    "InferenceJob",
    "AsyncInferenceJob",
    "AsyncInvocation",
    "AsyncInvocationAsync",
    "wait_many",
    "as_completed",
    "wait_many_async",
    "as_completed_async",
    "WaitProgress",
    "DuplexSession",
    "AsyncDuplexSession",
    "OutputPart",
    "InputClosedError",
    "InputValidationError",
    "InternalServerError",
    "ServiceUnavailableError",
    "LineTooLongError",
    "ReassemblyError",
    "AsyncInferenceError",
    "AsyncInferenceFailedError",
    "AsyncInferenceTimeoutError",
    "AsyncInferenceFailed",
    "AsyncInferenceTimeout",
    "ChecksumMismatchError",
    "ConnectError",
    "ContentTypeWarning",
    "FallbackWarning",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "DeadlineExceededError",
    "DecodeError",
    "DuplicateHeaderError",
    "FrameTooLargeError",
    "InternalDependencyException",
    "InternalFailure",
    "InternalStreamFailure",
    "InvalidFrameError",
    "ModelError",
    "ModelNotReadyException",
    "ModelStreamError",
    "ParamValidationError",
    "ReadTimeoutError",
    "SageStreamError",
    "ServiceError",
    "ServiceUnavailable",
    "SigningError",
    "StreamError",
    "TransportError",
    "TruncatedStreamError",
    "ValidationError",
]
