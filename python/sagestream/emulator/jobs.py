"""InvokeEndpointAsync's jobs: read the input from S3, run the model, write output or failure.

Jobs queue behind ``async_max_concurrency`` slots. A job that waited longer than its
RequestTTLSeconds fails with ``RequestExpired``; one that runs longer than its
InvocationTimeoutSeconds with ``InvocationTimeout`` (both scaled by ``async_time_scale`` for
tests). The failure document is JSON ``{"InferenceId", "ErrorCode", "Message", ...}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import faults as _faults
from .config import EmulatorConfig, log
from .faults import KnobError
from .models import (
    Model,
    ModelRequest,
    aclose_reply,
    call_model,
    join_reply,
)
from .protocol import EmulatorError, model_error
from .s3 import S3Store

__all__ = ["MAX_ASYNC_OUTPUT_BYTES", "AsyncJob", "AsyncJobs"]

#: The emulator holds an async output in memory before writing it: at most this many bytes.
MAX_ASYNC_OUTPUT_BYTES = 64 * 1024 * 1024


@dataclass
class AsyncJob:
    """One accepted InvokeEndpointAsync request."""

    endpoint: str
    model: Model
    inference_id: str
    #: Where the input is, or None when it came inline (``body``).
    input_location: str | None
    output_uri: str
    failure_uri: str
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    ttl: float
    timeout: float
    #: The inline input (InvokeEndpointAsync's Body), when there is no input location.
    body: bytes | None = None


class AsyncJobs:
    """Runs async invocations in the server's event loop, as ``config`` says (its region,
    ``async_max_concurrency``, ``async_time_scale``, ``token_delay``), on the S3 of ``store``."""

    def __init__(self, config: EmulatorConfig, store: Callable[[], S3Store]) -> None:
        self._region = config.region
        self._store = store
        self._config = config
        self._sem: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, job: AsyncJob) -> None:
        """Queue ``job``; it runs when a slot is free."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._config.async_max_concurrency)
        task = asyncio.ensure_future(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Cancel the queued and running jobs."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job: AsyncJob) -> None:
        loop = asyncio.get_running_loop()
        queued = loop.time()
        assert self._sem is not None
        try:
            async with self._sem:
                if loop.time() - queued > job.ttl * self._config.async_time_scale:
                    await self._fail(
                        job,
                        "RequestExpired",
                        f"Request {job.inference_id} expired: it was not processed within "
                        f"RequestTTLSeconds={int(job.ttl)}.",
                    )
                    return
                try:
                    if job.input_location is None:
                        body = job.body or b""
                    else:
                        location = job.input_location
                        body = await loop.run_in_executor(None, lambda: self._store().get(location))
                except Exception as exc:
                    await self._fail(
                        job,
                        "ValidationError",
                        f"Failed to download the input from {job.input_location}: {exc}",
                    )
                    return
                try:
                    content_type, output = await asyncio.wait_for(
                        self._output(job, body), timeout=job.timeout * self._config.async_time_scale
                    )
                except asyncio.TimeoutError:
                    await self._fail(
                        job,
                        "InvocationTimeout",
                        f"Inference {job.inference_id} did not complete within "
                        f"InvocationTimeoutSeconds={int(job.timeout)}.",
                    )
                    return
                except EmulatorError as exc:
                    await self._fail(job, exc.code, exc.message, exc.fields)
                    return
                await loop.run_in_executor(
                    None, lambda: self._store().put(job.output_uri, output, content_type)
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("async invocation %s failed", job.inference_id)

    async def _output(self, job: AsyncJob, body: bytes) -> tuple[str, bytes]:
        try:
            knobs = _faults.parse_knobs(job.custom_attributes)
        except KnobError as exc:
            raise model_error(job.endpoint, self._region, 400, str(exc)) from None
        if knobs.fault in ("model-error", "throttle", "dependency"):
            _faults.raise_http_fault(knobs, job.endpoint, self._region)
        request = ModelRequest(
            endpoint=job.endpoint,
            body=body,
            content_type=job.content_type,
            accept=job.accept,
            custom_attributes=job.custom_attributes,
            knobs=knobs,
            streaming=False,
            token_delay=self._config.token_delay,
        )
        reply = await call_model(job.model, request, self._region)
        if knobs.fault == "stall":
            await asyncio.sleep(knobs.seconds)
        if knobs.fault in ("model-stream-error", "internal-stream-failure", "error-frame", "cut"):
            await aclose_reply(reply)
            raise EmulatorError(500, "ModelError", "The model failed while producing the response.")
        return reply.content_type, await join_reply(reply, MAX_ASYNC_OUTPUT_BYTES, job.endpoint, self._region)

    async def _fail(
        self, job: AsyncJob, code: str, message: str, fields: dict[str, Any] | None = None
    ) -> None:
        doc = {**(fields or {}), "InferenceId": job.inference_id, "ErrorCode": code, "Message": message}
        data = json.dumps(doc).encode()
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self._store().put(job.failure_uri, data, "application/json")
        )
