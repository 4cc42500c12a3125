"""sagestream: fast, correct streaming from Amazon SageMaker AI endpoints.

The AWS event stream is decoded in Rust (``sagestream._core``, on ``aws-smithy-eventstream``).
"""

from __future__ import annotations

from sagestream._core import __version__
from sagestream.exceptions import (
    AsyncInferenceError,
    AsyncInferenceFailed,
    AsyncInferenceTimeout,
    ChecksumMismatchError,
    ConnectionLostError,
    DeadlineExceededError,
    DecodeError,
    DuplicateHeaderError,
    FrameTooLargeError,
    InternalDependencyException,
    InternalFailure,
    InternalStreamFailure,
    InvalidFrameError,
    ModelError,
    ModelNotReadyException,
    ModelStreamError,
    ParamValidationError,
    ReadTimeoutError,
    SageStreamError,
    ServiceError,
    ServiceUnavailable,
    StreamError,
    TransportError,
    TruncatedStreamError,
    ValidationError,
)

__all__ = [
    "__version__",
    "AsyncInferenceError",
    "AsyncInferenceFailed",
    "AsyncInferenceTimeout",
    "ChecksumMismatchError",
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
    "StreamError",
    "TransportError",
    "TruncatedStreamError",
    "ValidationError",
]
