"""The instruments: the GenAI client metrics, and the client's attempts, retries and errors."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.metrics import Counter, Histogram, Meter, NoOpHistogram

from sagestream.otel import _conventions as c

__all__ = ["Instruments"]


@dataclass(frozen=True)
class Instruments:
    """Every instrument sagestream records to, made once per ``instrument()``."""

    duration: Histogram
    time_to_first_chunk: Histogram
    time_per_output_chunk: Histogram
    token_usage: Histogram
    attempts: Counter
    retries: Counter
    errors: Counter
    job_duration: Histogram

    @property
    def per_chunk(self) -> bool:
        """Whether ``time_per_output_chunk`` records anything: not when it is left out
        (``chunk_metric=False``) or the meter makes no-op instruments; then the gaps between
        parts are not even walked."""
        return not isinstance(self.time_per_output_chunk, NoOpHistogram)

    @classmethod
    def of(cls, meter: Meter, *, chunk_metric: bool = True) -> Instruments:
        """The instruments, made on ``meter``; ``chunk_metric=False``: the time per output chunk
        records nothing (no SDK work per part)."""

        def seconds(name: str, description: str) -> Histogram:
            return meter.create_histogram(
                name,
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=list(c.BUCKETS_SECONDS),
            )

        return cls(
            duration=seconds(c.GEN_AI_CLIENT_OPERATION_DURATION, "GenAI operation duration."),
            time_to_first_chunk=seconds(
                c.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK,
                "Time to receive the first chunk, measured from when the client issues the "
                "generation request to when the first chunk is received in the response stream.",
            ),
            time_per_output_chunk=NoOpHistogram(c.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK)
            if not chunk_metric
            else seconds(
                c.GEN_AI_CLIENT_TIME_PER_OUTPUT_CHUNK,
                "Time per output chunk, recorded for each chunk received after the first one, "
                "measured as the time elapsed from the end of the previous chunk to the end of the "
                "current chunk.",
            ),
            token_usage=meter.create_histogram(
                c.GEN_AI_CLIENT_TOKEN_USAGE,
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=[float(b) for b in c.BUCKETS_TOKENS],
            ),
            attempts=meter.create_counter(
                c.CLIENT_ATTEMPTS,
                unit="{attempt}",
                description="HTTP requests sent to SageMaker Runtime, retries included "
                "(error.type: why the attempt did not give the call's answer).",
            ),
            retries=meter.create_counter(
                c.CLIENT_RETRIES,
                unit="{retry}",
                description="Attempts the retry policy sent again (error.type: the failure retried).",
            ),
            errors=meter.create_counter(
                c.CLIENT_ERRORS,
                unit="{error}",
                description="Calls that ended with an error, by error.type.",
            ),
            job_duration=seconds(
                c.CLIENT_JOB_DURATION,
                "Asynchronous inference jobs, from the submission to the result in S3.",
            ),
        )
