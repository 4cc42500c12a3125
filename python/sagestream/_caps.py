"""How many bytes of an answer a call reads into memory: :class:`ResponseLimits`.

A body read whole (InvokeEndpoint's answer, every error answer, an async job's result in S3)
is held in memory until it is returned, so a server that sends more than the service ever
would must not make the process grow with it. Each bound is derived from the service's own
documented limits, with room to spare; a body beyond it raises
:class:`sagestream.ResponseTooLargeError` as soon as the excess is seen (at once when the
Content-Length says so), the connection is closed, and the request is not sent again.
Response streams are bounded by their frames' caps instead (24 MiB per payload).
"""

from __future__ import annotations

from dataclasses import dataclass

from sagestream.exceptions import ResponseTooLargeError

__all__ = ["ASYNC_OUTPUT_BYTES", "BODY_BYTES", "ERROR_BODY_BYTES", "ResponseLimits", "too_large"]

#: InvokeEndpoint's largest answer: 25 MB in the SageMaker documentation of real-time inference
#: responses, taken as 25 MiB (26,214,400 bytes). Must match `MAX_BODY` in src/transport/body.rs.
BODY_BYTES = 25 * 1024 * 1024
#: An error answer's body: the service's are JSON documents of a few hundred bytes (S3's XML
#: ones too). Must match `MAX_ERROR_BODY` in src/transport/body.rs.
ERROR_BODY_BYTES = 1024 * 1024
#: An asynchronous inference's output or failure object in S3, read by ``job.wait()``: async
#: inference takes payloads up to 1 GB.
ASYNC_OUTPUT_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class ResponseLimits:
    """The most bytes of an answer read into memory; pass ``Client(response_limits=...)`` (or
    ``AsyncClient``) to change them.

    ``body``: a successful answer read whole (InvokeEndpoint's, InvokeEndpointAsync's JSON).
    ``error_body``: the body of an error answer (any status from 300 up), of every operation.
    ``async_output``: the output or failure object of an asynchronous inference, read from S3.
    """

    body: int = BODY_BYTES
    error_body: int = ERROR_BODY_BYTES
    async_output: int = ASYNC_OUTPUT_BYTES

    def __post_init__(self) -> None:
        for name in ("body", "error_body", "async_output"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"ResponseLimits.{name} must be a number of bytes (0 or more), got {value!r}"
                )


def too_large(status: int, limit: int, declared: int | None = None) -> ResponseTooLargeError:
    """The error of a body over ``limit`` bytes (worded as the Rust transport words it)."""
    if declared is not None:
        what = f"the HTTP {status} answer declares a body of {declared} bytes (Content-Length)"
    else:
        what = f"the HTTP {status} answer's body goes on"
    return ResponseTooLargeError(
        f"{what}, more than the {limit} bytes a body read into memory may hold "
        "(sagestream.ResponseLimits); the connection was closed, and the request is not sent again",
        limit,
    )
