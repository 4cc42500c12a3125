"""An actor's rows as Ray's own metrics (``SageMakerStream(..., ray_metrics=True)``).

Ray's convention for what an application measures inside its actors is ``ray.util.metrics``:
Ray's metrics agent exports them with its own (``ray_`` prefixed, on each node's Prometheus
endpoint, in Ray's Grafana dashboards), tagged here by endpoint. Per row: one ``sagestream_rows``
(``outcome`` ``done`` / ``failed``, ``error_type`` of a failure), its attempts, its parts, its
time to first part and its duration.
"""

from __future__ import annotations

from typing import Any

from sagestream.batch import Result

__all__ = ["BUCKETS_SECONDS", "RayMetrics"]

#: The histograms' boundaries: the GenAI conventions' for durations, in seconds.
BUCKETS_SECONDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]


class RayMetrics:
    """The instruments of one actor (made once, as Ray asks), recorded once per row."""

    def __init__(self, endpoint_name: str) -> None:
        from ray.util.metrics import Counter, Histogram

        self.rows = Counter(
            "sagestream_rows",
            description="Rows answered, by outcome (done, failed) and the failure's error type.",
            tag_keys=("endpoint", "outcome", "error_type"),
        )
        self.attempts = Counter(
            "sagestream_attempts",
            description="HTTP requests sent for the rows, retries and restarts included.",
            tag_keys=("endpoint",),
        )
        self.parts = Counter(
            "sagestream_parts",
            description="Payload parts received (the last try of each row).",
            tag_keys=("endpoint",),
        )
        self.time_to_first_part = Histogram(
            "sagestream_time_to_first_part_seconds",
            description="From a row's last try to its first part.",
            boundaries=BUCKETS_SECONDS,
            tag_keys=("endpoint",),
        )
        self.duration = Histogram(
            "sagestream_row_duration_seconds",
            description="From a row's first request to its end.",
            boundaries=BUCKETS_SECONDS,
            tag_keys=("endpoint",),
        )
        self._tags = {"endpoint": endpoint_name}
        instruments: tuple[Any, ...] = (
            self.rows,
            self.attempts,
            self.parts,
            self.time_to_first_part,
            self.duration,
        )
        for instrument in instruments:
            instrument.set_default_tags(self._tags)

    def row(self, result: Result) -> None:
        """Record one row's result."""
        tags = self._tags
        if result.error is None:
            outcome = {"outcome": "done", "error_type": ""}
        else:
            outcome = {"outcome": "failed", "error_type": type(result.error).__qualname__}
        self.rows.inc(1, tags={**tags, **outcome})
        self.attempts.inc(result.attempts, tags=tags)
        if result.parts:
            self.parts.inc(result.parts, tags=tags)
        if result.time_to_first_part is not None:
            self.time_to_first_part.observe(result.time_to_first_part, tags=tags)
        self.duration.observe(result.duration, tags=tags)
