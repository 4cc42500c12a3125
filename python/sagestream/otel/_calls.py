"""One span and its metrics per call: the watcher ``SageStreamInstrumentor`` puts in the slot.

A call's CLIENT span starts when the call does and ends with it: for InvokeEndpoint when the
answer is read, for a response stream when the stream ends, fails or is closed (the span covers
every part). Its metrics are recorded as the facts arrive: the time to the first chunk at the
first chunk, the duration and the errors at the end; the time per output chunk of each later
chunk as the stream reports the gaps it measured (in batches, see ``_streams``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry.trace import SpanKind

from sagestream import observe
from sagestream.otel import _conventions as c
from sagestream.otel._jobs import Job
from sagestream.otel._spans import CONTENT_LIMIT, Scope, describe_error, error_type, job_context, text
from sagestream.otel._streams import BATCH, MAX_DELAY, AsyncParts, Parts, Watcher

__all__ = ["Call", "Telemetry", "last_call"]

#: The last call started in this context (the drop-in skips botocore calls it is waiting for).
last_call: ContextVar[Call | None] = ContextVar("sagestream_last_call", default=None)

#: The parameters that become span attributes, by botocore member name.
_PARAM_ATTRIBUTES = (
    ("InferenceComponentName", c.SAGEMAKER_INFERENCE_COMPONENT),
    ("TargetVariant", c.SAGEMAKER_TARGET_VARIANT),
    ("TargetModel", c.SAGEMAKER_TARGET_MODEL),
    ("InferenceId", c.SAGEMAKER_INFERENCE_ID),
    ("SessionId", c.SAGEMAKER_SESSION_ID),
)


class Telemetry(Scope):
    """The watcher of one ``instrument()`` (``sagestream._observe.Watcher``): a span per call,
    per job."""

    def call(
        self, operation: str, params: Mapping[str, Any], server: str | None, *, started: float | None = None
    ) -> Call:
        """The watch of a call starting now (or at ``started``, a ``time.monotonic()`` time)."""
        note = observe.annotation.get()
        call = Call(self, operation, params, server, note, started)
        if note is not None:
            note.watches.append(call)
        last_call.set(call)
        return call

    @staticmethod
    def inside_call() -> bool:
        """Whether a call started in this context is waiting for its answer."""
        call = last_call.get()
        return call is not None and call.requesting

    def job(self, endpoint_name: str, params: Mapping[str, Any]) -> Job:
        return Job(self, endpoint_name, params)


class Call:
    """The span and metrics of one call (``sagestream._observe.CallWatch``)."""

    __slots__ = (
        "attempts",
        "attempts_counted",
        "attributes",
        "body",
        "bytes",
        "chunk_attributes",
        "ended",
        "held_end",
        "last_part",
        "note",
        "parts_seen",
        "requesting",
        "retries",
        "span",
        "started",
        "telemetry",
        "usage_reported",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        operation: str,
        params: Mapping[str, Any],
        server: str | None,
        note: observe.Annotation | None,
        started: float | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.note = note
        self.held_end: int | None = None
        # The span starts when the call's clock does (the time to first chunk is measured from
        # it), not after the attributes are made.
        now, wall = time.monotonic(), time.time_ns()
        self.started = now if started is None else started
        operation_name = (note.operation_name if note is not None else None) or telemetry.operation_name
        model = params.get("EndpointName")
        self.attributes = attributes = telemetry.common(operation_name, model, operation, server)
        # The time per output chunk, recorded per part, carries only the attributes the GenAI
        # conventions list for it (each one costs the SDK's record).
        self.chunk_attributes = {k: v for k, v in attributes.items() if k != c.RPC_METHOD}
        span_attributes = dict(attributes)
        span_attributes[c.RPC_SYSTEM] = c.RPC_SYSTEM_AWS_API
        span_attributes[c.RPC_SERVICE] = c.RPC_SERVICE_SAGEMAKER_RUNTIME
        for member, key in _PARAM_ATTRIBUTES:
            value = params.get(member)
            if value is not None:
                span_attributes[key] = str(value)
        self.body: bytearray | None = None
        if telemetry.capture_content:
            body = params.get("Body")
            if isinstance(body, (bytes, bytearray, memoryview)):
                span_attributes[c.SAGEMAKER_REQUEST_BODY] = text(body)
            self.body = bytearray()
        self.span = telemetry.tracer.start_span(
            f"{operation_name} {model}" if model else operation_name,
            context=job_context.get(),
            kind=SpanKind.CLIENT,
            attributes=span_attributes,
            start_time=wall if started is None else wall - int((now - started) * 1e9),
        )
        self.requesting = True
        self.attempts = 0
        self.attempts_counted = 0
        self.retries = 0
        self.last_part: float | None = None
        self.parts_seen = 0
        self.bytes = 0
        self.ended = False
        self.usage_reported = False

    # --- the request --------------------------------------------------------------------------

    def attempt_started(self, attempt: int) -> None:
        self.attempts = attempt

    def attempt_ended(self, attempt: int, failure: BaseException | None, retry_in: float | None) -> None:
        instruments = self.telemetry.instruments
        self.attempts_counted = attempt
        if failure is None:
            instruments.attempts.add(1, self.attributes)
            return
        kind = error_type(failure)
        attributes = {**self.attributes, c.ERROR_TYPE: kind}
        instruments.attempts.add(1, attributes)
        event: dict[str, Any] = {c.ATTEMPT: attempt, c.ERROR_TYPE: kind}
        if retry_in is not None:
            self.retries += 1
            instruments.retries.add(1, attributes)
            event[c.RETRY_IN] = retry_in
        self.span.add_event(c.EVENT_ATTEMPT_FAILED, event)

    def answered(self, status: int, headers: Mapping[str, str], attempts: int) -> None:
        self.requesting = False
        span = self.span
        if self.attempts == 0:  # botocore's path: it made the attempts, the answer counts them
            self.attempts = attempts
            self.retries = attempts - 1
            self.attempts_counted = attempts
            self.telemetry.instruments.attempts.add(attempts, self.attributes)
        if not span.is_recording():
            return
        span.set_attribute(c.HTTP_RESPONSE_STATUS_CODE, status)
        request_id = headers.get("x-amzn-requestid")
        if request_id:
            span.set_attribute(c.AWS_REQUEST_ID, request_id)
        variant = headers.get("x-amzn-invoked-production-variant")
        if variant:
            span.set_attribute(c.SAGEMAKER_INVOKED_VARIANT, variant)

    # --- the answer ---------------------------------------------------------------------------

    def parts(self, parts: Any, asynchronous: bool, answer: Callable[[], Any] | None = None) -> Any:
        if self.body is None and hasattr(parts, "observe"):
            # The Rust iterator times the parts itself and reports in batches: no frame per part.
            parts.observe(Watcher(self, answer), BATCH, MAX_DELAY)
            return parts
        return AsyncParts(parts, self, answer) if asynchronous else Parts(parts, self, answer)

    def first_part(self, at: float) -> None:
        """The first part was handed out at ``at`` (``time.monotonic()``), by an observed
        stream."""
        first = at - self.started
        self.last_part = at
        self.telemetry.instruments.time_to_first_chunk.record(first, self.attributes)
        self.span.add_event(c.EVENT_FIRST_CHUNK)
        self.span.set_attribute(c.TIME_TO_FIRST_CHUNK, first)

    def gaps(self, gaps: list[float]) -> None:
        """The time between each two consecutive parts, in order, since the last report (by an
        observed stream): one ``time_per_output_chunk`` record each (none, and no loop, when
        that metric is left out)."""
        instruments = self.telemetry.instruments
        if not instruments.per_chunk:
            return
        record = instruments.time_per_output_chunk.record
        attributes = self.chunk_attributes
        for gap in gaps:
            record(gap, attributes)

    def part(self, data: bytes) -> None:
        """A part reached the caller (told by the content-capturing wrappers and the drop-in,
        only while instrumented; an observed Rust iterator reports gaps instead)."""
        now = time.monotonic()
        last = self.last_part
        self.last_part = now
        self.parts_seen += 1
        self.bytes += len(data)
        instruments = self.telemetry.instruments
        if last is None:
            first = now - self.started
            instruments.time_to_first_chunk.record(first, self.attributes)
            self.span.add_event(c.EVENT_FIRST_CHUNK)
            self.span.set_attribute(c.TIME_TO_FIRST_CHUNK, first)
        elif instruments.per_chunk:
            instruments.time_per_output_chunk.record(now - last, self.chunk_attributes)
        body = self.body
        if body is not None and len(body) < CONTENT_LIMIT:
            body += data

    def usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        """Token usage the container reported (through a framework integration)."""
        if self.usage_reported:
            return
        self.usage_reported = True
        histogram = self.telemetry.instruments.token_usage
        for kind, count, key in (
            ("input", input_tokens, c.GEN_AI_USAGE_INPUT_TOKENS),
            ("output", output_tokens, c.GEN_AI_USAGE_OUTPUT_TOKENS),
        ):
            if count is None:
                continue
            histogram.record(count, {**self.attributes, c.GEN_AI_TOKEN_TYPE: kind})
            if not self.ended or self.held_end is not None:
                self.span.set_attribute(key, count)

    def done(self, body: bytes | None = None) -> None:
        if body is not None and self.body is not None:
            self.body += body[:CONTENT_LIMIT]
        self.end(None)

    def failed(self, error: BaseException) -> None:
        self.end(error)

    def stream_ended(self, stats: Any, error: BaseException | None, closed: bool) -> None:
        """The stream ended (``closed``: its reader closed it before its end)."""
        if self.ended:
            return
        span = self.span
        if span.is_recording():
            if stats is not None:
                span.set_attribute(c.PARTS, stats.parts)
                span.set_attribute(c.BYTES, stats.bytes)
                span.set_attribute(c.MAX_GAP, stats.max_gap)
            else:
                span.set_attribute(c.PARTS, self.parts_seen)
                span.set_attribute(c.BYTES, self.bytes)
            if closed:
                span.set_attribute(c.CLOSED_EARLY, True)
        self.end(error)

    def end(self, error: BaseException | None) -> None:
        """End the span and record the duration (once; later calls do nothing)."""
        if self.ended:
            return
        self.ended = True
        self.requesting = False
        duration = time.monotonic() - self.started
        span = self.span
        instruments = self.telemetry.instruments
        attributes = self.attributes
        if error is not None:
            kind = error_type(error)
            attributes = {**attributes, c.ERROR_TYPE: kind}
            instruments.errors.add(1, attributes)
            if self.attempts > self.attempts_counted:  # an attempt that failed past the retry policy
                self.attempts_counted = self.attempts
                instruments.attempts.add(1, attributes)
        instruments.duration.record(duration, attributes)
        if span.is_recording():
            span.set_attribute(c.ATTEMPTS, self.attempts or 1)
            span.set_attribute(c.RETRIES, self.retries)
            if self.body is not None and self.body:
                span.set_attribute(c.SAGEMAKER_RESPONSE_BODY, text(self.body))
            if error is not None:
                describe_error(span, error)
        note = self.note
        if note is not None and note.open:
            # Usage parsed from the last parts comes after them: the span ends, at this time,
            # when the integration's block is over (``release``).
            self.held_end = time.time_ns()
            return
        span.end()

    def release(self) -> None:
        """The annotating integration is done: end the span if :meth:`end` held it open."""
        held, self.held_end = self.held_end, None
        if held is not None:
            self.span.end(end_time=held)
