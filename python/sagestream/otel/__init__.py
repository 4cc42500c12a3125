"""OpenTelemetry traces and GenAI metrics from every sagestream client (``pip install 'sagestream[otel]'``).

```python
from sagestream.otel import SageStreamInstrumentor

SageStreamInstrumentor().instrument()  # the global tracer and meter providers, or pass yours
```

or, with no code change, ``opentelemetry-instrument python app.py`` (the instrumentor is
registered under the ``opentelemetry_instrumentor`` entry point). Every call of every operation,
on ``Client`` and ``AsyncClient``, the drop-in, batch, Ray and the framework integrations, then
has one CLIENT span that covers its whole stream, and records the GenAI client metrics
(``gen_ai.client.operation.duration``, ``.time_to_first_chunk``, ``.time_per_output_chunk``,
``gen_ai.client.token.usage`` where the container reports usage) and the client's own
(``sagestream.client.attempts``, ``.retries``, ``.errors``). See docs/observability.md.

Only ``opentelemetry-api`` is needed; the SDK, exporters and their configuration stay yours.
Until ``instrument()`` is called, ``import sagestream`` imports nothing of OpenTelemetry and a
call pays one ``None`` test.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

from opentelemetry import metrics, trace

from sagestream import _observe
from sagestream.otel import _conventions
from sagestream.otel._calls import Telemetry
from sagestream.otel._metrics import Instruments

__all__ = ["SageStreamInstrumentor"]

#: The instrumentation scope's name (tracer and meter).
SCOPE = "sagestream"
#: The schema of the default names (v1.36.0 of the GenAI conventions; see ``_conventions``).
SCHEMA_URL = "https://opentelemetry.io/schemas/1.36.0"


class SageStreamInstrumentor:
    """Turns sagestream's telemetry on and off, as OpenTelemetry's instrumentors do.

    A singleton, like ``opentelemetry.instrumentation.BaseInstrumentor`` (whose interface it
    offers without depending on its package): ``SageStreamInstrumentor().uninstrument()`` undoes
    what another instance's ``instrument()`` did.
    """

    _instance: SageStreamInstrumentor | None = None
    _lock = threading.Lock()
    _telemetry: Telemetry | None

    def __new__(cls) -> SageStreamInstrumentor:
        with cls._lock:
            if cls._instance is None:
                instance = super().__new__(cls)
                instance._telemetry = None
                cls._instance = instance
            return cls._instance

    def instrumentation_dependencies(self) -> Collection[str]:
        """What must be installed for ``instrument()`` to work (nothing beyond sagestream)."""
        return ()

    @property
    def is_instrumented_by_opentelemetry(self) -> bool:
        return self._telemetry is not None

    def instrument(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        operation_name: str = _conventions.OPERATION_GENERATE_CONTENT,
        capture_content: bool | None = None,
        chunk_metric: bool = True,
        **kwargs: Any,
    ) -> None:
        """Watch every sagestream call from now on (idempotent: a second call does nothing).

        ``tracer_provider`` / ``meter_provider``: OpenTelemetry's global ones by default.
        ``operation_name``: the ``gen_ai.operation.name`` of a plain call (the integrations say
        ``chat`` or ``text_completion`` themselves). ``capture_content``: put request and
        response bodies (their first 16 KiB) on the spans; by default only when
        ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for span content.
        ``chunk_metric=False``: leave out ``gen_ai.client.operation.time_per_output_chunk``, the
        one record per part (most of what being observed costs a stream, in the SDK). Other
        keyword arguments (what ``opentelemetry-instrument`` passes) are accepted and ignored.
        """
        with self._lock:
            if self._telemetry is not None:
                return
            mode = _conventions.mode_from_environment()
            version = _version()
            schema = None if mode.latest else SCHEMA_URL
            tracer = trace.get_tracer(SCOPE, version, tracer_provider, schema_url=schema)
            meter = metrics.get_meter(SCOPE, version, meter_provider, schema_url=schema)
            if capture_content is None:
                capture_content = _conventions.content_from_environment()
            self._telemetry = Telemetry(
                tracer,
                Instruments.of(meter, chunk_metric=chunk_metric),
                mode,
                operation_name=operation_name,
                capture_content=capture_content,
            )
            _observe.watcher = self._telemetry
            from sagestream.otel import _dropin

            _dropin.install(self._telemetry)

    def uninstrument(self, **kwargs: Any) -> None:
        """Stop watching: calls started from now on make no span and record nothing."""
        with self._lock:
            if self._telemetry is None:
                return
            from sagestream.otel import _dropin

            _dropin.uninstall()
            _observe.watcher = None
            self._telemetry = None


def _version() -> str:
    from sagestream import __version__

    return str(__version__)
