"""The span of an asynchronous inference job: from its submission to its result in S3.

The InvokeEndpointAsync call made to submit it is its child (a CLIENT span of its own); the
job's span ends when ``wait()`` returns the output or raises the failure or the timeout.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from sagestream.otel import _conventions as c
from sagestream.otel._spans import Scope, describe_error, error_type, job_context

__all__ = ["Job"]

ASYNC_OPERATION = "InvokeEndpointAsync"


class Job:
    """One job's span and duration (``sagestream._observe.JobWatch``)."""

    __slots__ = ("attributes", "ended", "polls", "span", "started", "telemetry", "token")

    def __init__(self, telemetry: Scope, endpoint_name: str, params: Mapping[str, Any]) -> None:
        self.telemetry = telemetry
        self.started = time.monotonic()
        self.attributes = telemetry.common(telemetry.operation_name, endpoint_name, ASYNC_OPERATION, None)
        attributes = dict(self.attributes)
        inference_id = params.get("InferenceId")
        if inference_id:
            attributes[c.SAGEMAKER_INFERENCE_ID] = str(inference_id)
        self.span = telemetry.tracer.start_span(
            f"async_inference {endpoint_name}", kind=SpanKind.INTERNAL, attributes=attributes
        )
        self.polls = 0
        self.ended = False
        # The submission's call, made next in this context, is the job span's child.
        self.token: Any = job_context.set(trace.set_span_in_context(self.span))

    def _release(self) -> None:
        token, self.token = self.token, None
        if token is not None:
            # Submitted from another context: nothing of ours is set there.
            with contextlib.suppress(ValueError):
                job_context.reset(token)

    def submitted(self, inference_id: str | None, output: str | None, failure: str | None) -> None:
        self._release()
        span = self.span
        if inference_id:
            span.set_attribute(c.SAGEMAKER_INFERENCE_ID, inference_id)
        if output:
            span.set_attribute(c.SAGEMAKER_OUTPUT_LOCATION, output)
        if failure:
            span.set_attribute(c.SAGEMAKER_FAILURE_LOCATION, failure)
        span.add_event(c.EVENT_SUBMITTED)

    def polled(self) -> None:
        self.polls += 1

    def done(self, output: bytes | None = None) -> None:
        self._end(None)

    def failed(self, error: BaseException) -> None:
        self._end(error)

    def _end(self, error: BaseException | None) -> None:
        self._release()
        if self.ended:
            return
        self.ended = True
        attributes = self.attributes
        if error is not None:
            attributes = {**attributes, c.ERROR_TYPE: error_type(error)}
        self.telemetry.instruments.job_duration.record(time.monotonic() - self.started, attributes)
        span = self.span
        span.set_attribute(c.POLLS, self.polls)
        if error is not None:
            describe_error(span, error)
        span.end()
