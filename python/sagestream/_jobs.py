"""Asynchronous inference jobs (InvokeEndpointAsync), and waiting for their results in S3.

SageMaker answers InvokeEndpointAsync at once (202) with the S3 URIs where the output or the
failure document will appear. A job polls both locations with capped exponential backoff and
jitter until one of them exists, bounded by the request's own lifetime (RequestTTLSeconds +
InvocationTimeoutSeconds) unless a timeout is given.

* :class:`InferenceJob` - a job of the sync :class:`sagestream.Client`.
* :class:`AsyncInferenceJob` - a job of :class:`sagestream.AsyncClient`, waited for with
  ``await``; thousands of waits share the client's connection pool, no thread each.
* :func:`wait_many` / :func:`as_completed` wait for sync jobs (a list / an iterator);
  :func:`wait_many_async` / :func:`as_completed_async` for asyncio ones (an awaitable / an async
  iterator).

A job reads S3 through the small get/put protocol its client hands it (:class:`S3Access`,
:class:`AsyncS3Access`) and is submitted through the client's InvokeEndpointAsync call; it
knows nothing else of the client.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sagestream import _observe, _params
from sagestream._operations import AsyncAnswer
from sagestream.exceptions import (
    AsyncInferenceFailedError,
    AsyncInferenceTimeoutError,
    ParamValidationError,
)
from sagestream.service import (
    DEFAULT_INVOCATION_TIMEOUT_SECONDS,
    DEFAULT_REQUEST_TTL_SECONDS,
    INVOKE_ASYNC,
)

__all__ = [
    "DEFAULT_INVOCATION_TIMEOUT_SECONDS",
    "DEFAULT_REQUEST_TTL_SECONDS",
    "AsyncInferenceJob",
    "AsyncInvocation",
    "AsyncInvocationAsync",
    "AsyncS3Access",
    "InferenceJob",
    "S3Access",
    "WaitProgress",
    "as_completed",
    "as_completed_async",
    "submit",
    "submit_async",
    "wait_many",
    "wait_many_async",
]


class S3Access(Protocol):
    """What a sync job needs of S3: read an object (None while it does not exist), write one."""

    def get(self, bucket: str, key: str) -> bytes | None: ...

    def put(self, bucket: str, key: str, data: bytes) -> None: ...


class AsyncS3Access(Protocol):
    """What an asyncio job needs of S3 (as :class:`S3Access`, awaited)."""

    async def get(self, bucket: str, key: str) -> bytes | None: ...

    async def put(self, bucket: str, key: str, data: bytes) -> None: ...


#: First delay between polls, its cap, and the growth factor (full jitter on the upper half).
MIN_POLL_INTERVAL = 0.05
MAX_POLL_INTERVAL = 20.0
_BACKOFF = 2.0

State = Literal["waiting", "succeeded", "failed", "timed_out"]


@dataclass(frozen=True)
class WaitProgress:
    """What a progress callback receives after each poll of one invocation."""

    inference_id: str
    #: Seconds since the wait started.
    elapsed: float
    #: Polls made so far (one poll looks at both locations).
    attempts: int
    state: State
    output_location: str
    failure_location: str


ProgressCallback = Callable[[WaitProgress], object]


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ParamValidationError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise ParamValidationError(f"an s3://bucket/key URI is needed, got {uri!r}")
    return bucket, key


def _delay(attempt: int, min_interval: float, max_interval: float) -> float:
    """Capped exponential backoff with jitter: a random point in the upper half of the step."""
    step = min(max_interval, min_interval * _BACKOFF ** min(attempt, 60))
    return step * (0.5 + 0.5 * random.random())


class _Handle:
    """What both kinds of job share: locations, the default bound, the cached outcome."""

    #: What watches the job (``sagestream._observe.JobWatch``), while instrumented.
    _watch: _observe.JobWatch | None = None

    def __init__(
        self, inference_id: str, output_location: str, failure_location: str, lifetime: float
    ) -> None:
        self.inference_id = inference_id
        self.output_location = output_location
        self.failure_location = failure_location
        #: RequestTTLSeconds + InvocationTimeoutSeconds of the request (service defaults if unset).
        self.lifetime = lifetime
        self.submitted_at = time.monotonic()
        self._output: bytes | None = None
        self._error: BaseException | None = None
        self._attempts = 0

    @property
    def done(self) -> bool:
        """Whether the outcome is known (output, failure document or timeout)."""
        return self._output is not None or self._error is not None

    @property
    def output(self) -> bytes | None:
        """The output bytes once succeeded, else None."""
        return self._output

    @property
    def error(self) -> BaseException | None:
        """The ``AsyncInferenceFailedError`` / ``AsyncInferenceTimeoutError`` once failed, else None."""
        return self._error

    def result(self) -> bytes:
        """The output bytes, or raise the failure; ``RuntimeError`` while still unknown."""
        if self._error is not None:
            raise self._error
        if self._output is None:
            raise RuntimeError(f"async inference {self.inference_id} is not finished; call wait()")
        return self._output

    def _deadline(self, timeout: float | None, started: float) -> float:
        if timeout is not None:
            if timeout < 0:
                raise ParamValidationError(f"timeout must be >= 0 seconds, got {timeout!r}")
            return started + timeout
        return self.submitted_at + self.lifetime

    def _failed(self, document: bytes) -> AsyncInferenceFailedError:
        text = document[:500].decode("utf-8", "replace")
        return AsyncInferenceFailedError(
            f"async inference {self.inference_id} failed ({self.failure_location}): {text}",
            failure=document,
            failure_location=self.failure_location,
        )

    def _timed_out(self, waited: float) -> AsyncInferenceTimeoutError:
        error = AsyncInferenceTimeoutError(
            f"async inference {self.inference_id}: neither the output ({self.output_location}) nor"
            f" the failure document ({self.failure_location}) appeared within {waited:.1f} s",
            output_location=self.output_location,
            failure_location=self.failure_location,
        )
        if self._watch is not None:
            self._watch.failed(error)
        return error

    def _report(self, progress: ProgressCallback | None, started: float, state: State) -> None:
        if progress is not None:
            progress(
                WaitProgress(
                    inference_id=self.inference_id,
                    elapsed=time.monotonic() - started,
                    attempts=self._attempts,
                    state=state,
                    output_location=self.output_location,
                    failure_location=self.failure_location,
                )
            )

    def _settle(self, output: bytes | None, failure: bytes | None) -> State:
        watch = self._watch
        if output is not None:
            self._output = output
            if watch is not None:
                watch.done(output)
            return "succeeded"
        if failure is not None:
            self._error = self._failed(failure)
            if watch is not None:
                watch.failed(self._error)
            return "failed"
        if watch is not None:
            watch.polled()
        return "waiting"

    def __repr__(self) -> str:
        state = "succeeded" if self._output is not None else "failed" if self._error else "pending"
        return (
            f"{type(self).__name__}(inference_id={self.inference_id!r}, state={state},"
            f" output_location={self.output_location!r})"
        )


def _lifetime(params: dict[str, Any]) -> float:
    ttl = params.get("RequestTTLSeconds", DEFAULT_REQUEST_TTL_SECONDS)
    timeout = params.get("InvocationTimeoutSeconds", DEFAULT_INVOCATION_TIMEOUT_SECONDS)
    return float(ttl + timeout)


# --- validation and input upload, shared -----------------------------------------------------


_PLACEHOLDER_LOCATION = "s3://bucket/key"


def _validate(
    arguments: Mapping[str, Any], input: Any, input_prefix: str | None, extra: Mapping[str, Any] | None
) -> tuple[dict[str, Any], tuple[str, str, Any] | None]:
    """Validate everything before any I/O; returns the API params and what to upload, if any.

    ``arguments`` are the call's keywords of InvokeEndpointAsync (``endpoint_name``,
    ``input_location``, ...). ``input`` is the content to upload (``bytes``, or ``str`` sent as
    UTF-8), or a file: an ``os.PathLike``, or a ``str`` that names an existing file.
    """
    given = [name for name in ("input_location", "body") if arguments.get(name) is not None]
    if input is None:
        if not given:
            raise ParamValidationError(
                "an input is required: input_location, body (inline), or input with input_prefix to upload it"
            )
        return INVOKE_ASYNC.of_call(arguments, extra), None
    if given:
        raise ParamValidationError(f"give either {given[0]} or input (with input_prefix), not both")
    if input_prefix is None:
        raise ParamValidationError("input_prefix (s3://bucket/prefix) is required to upload input")
    _params.check_s3_uri(input_prefix, "input_prefix")
    params = INVOKE_ASYNC.of_call({**arguments, "input_location": _PLACEHOLDER_LOCATION}, extra)
    name = ""
    if isinstance(input, bytes | bytearray | memoryview):
        source: Any = bytes(input)
    elif isinstance(input, os.PathLike) or (isinstance(input, str) and os.path.isfile(input)):
        path = os.fspath(input)
        if not os.path.isfile(path):
            raise ParamValidationError(f"input file not found: {path!r}")
        source = path
        name = os.path.basename(path)
    elif isinstance(input, str):
        source = input.encode("utf-8")
    else:
        raise ParamValidationError(
            f"input must be bytes, text or a file path (os.PathLike), got {type(input).__name__}"
        )
    bucket, _, prefix = input_prefix[5:].partition("/")
    key = f"{prefix.rstrip('/')}/" if prefix.strip("/") else ""
    key += uuid.uuid4().hex + (f"-{name}" if name else "")
    return params, (bucket, key, source)


def _read_source(source: Any) -> bytes:
    if isinstance(source, bytes):
        return source
    with open(source, "rb") as f:
        return f.read()


# --- the sync job ----------------------------------------------------------------------------


class InferenceJob(_Handle):
    """A submitted InvokeEndpointAsync request of the sync client; :meth:`wait` for its output."""

    def __init__(self, s3: S3Access, answer: AsyncAnswer, lifetime: float) -> None:
        super().__init__(answer.inference_id, answer.output_location, answer.failure_location, lifetime)
        self._s3 = s3

    def _get(self, uri: str) -> bytes | None:
        return self._s3.get(*_split_s3(uri))

    def poll(self) -> bool:
        """Look at both locations once; True when the outcome is known."""
        if self.done:
            return True
        self._attempts += 1
        output = self._get(self.output_location)
        failure = None
        if output is None and self.failure_location:
            failure = self._get(self.failure_location)
        return self._settle(output, failure) != "waiting"

    def wait(
        self,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        *,
        min_interval: float = MIN_POLL_INTERVAL,
        max_interval: float = MAX_POLL_INTERVAL,
    ) -> bytes:
        """Block until the output exists and return its bytes.

        Raises :class:`~sagestream.AsyncInferenceFailedError` (``.failure`` holds the failure
        document) or :class:`~sagestream.AsyncInferenceTimeoutError` after ``timeout`` seconds, by
        default RequestTTLSeconds + InvocationTimeoutSeconds after submission.
        """
        started = time.monotonic()
        deadline = self._deadline(timeout, started)
        while not self.poll():
            self._report(progress, started, "waiting")
            now = time.monotonic()
            if now >= deadline:
                self._report(progress, started, "timed_out")
                raise self._timed_out(now - started)
            time.sleep(min(_delay(self._attempts - 1, min_interval, max_interval), deadline - now))
        self._report(progress, started, "succeeded" if self._output is not None else "failed")
        return self.result()


def submit(
    s3: S3Access,
    invoke: Callable[[dict[str, Any]], AsyncAnswer],
    arguments: Mapping[str, Any],
    *,
    input: Any = None,
    input_prefix: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> InferenceJob:
    """Validate ``arguments`` (the call's keywords of InvokeEndpointAsync), upload ``input`` if
    given, call InvokeEndpointAsync through ``invoke``."""
    params, upload = _validate(arguments, input, input_prefix, extra)
    watcher = _observe.watcher
    watch = None if watcher is None else watcher.job(params["EndpointName"], params)
    with _observe.Failures(watch):
        if upload is not None:
            bucket, key, source = upload
            s3.put(bucket, key, _read_source(source))
            params["InputLocation"] = f"s3://{bucket}/{key}"
        job = InferenceJob(s3, invoke(params), _lifetime(params))
    if watch is not None:
        _watched(job, watch)
    return job


def _watched(job: _Handle, watch: _observe.JobWatch) -> None:
    job._watch = watch
    watch.submitted(job.inference_id, job.output_location, job.failure_location)


# --- the asyncio job -------------------------------------------------------------------------


class AsyncInferenceJob(_Handle):
    """A submitted InvokeEndpointAsync request of the :class:`~sagestream.AsyncClient`."""

    def __init__(self, s3: AsyncS3Access, answer: AsyncAnswer, lifetime: float) -> None:
        super().__init__(answer.inference_id, answer.output_location, answer.failure_location, lifetime)
        self._s3 = s3

    async def _get(self, uri: str) -> bytes | None:
        return await self._s3.get(*_split_s3(uri))

    async def poll(self) -> bool:
        """Look at both locations once; True when the outcome is known."""
        if self.done:
            return True
        self._attempts += 1
        output = await self._get(self.output_location)
        failure = None
        if output is None and self.failure_location:
            failure = await self._get(self.failure_location)
        return self._settle(output, failure) != "waiting"

    async def wait(
        self,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        *,
        min_interval: float = MIN_POLL_INTERVAL,
        max_interval: float = MAX_POLL_INTERVAL,
    ) -> bytes:
        """Wait for the output and return its bytes (same rules as :meth:`InferenceJob.wait`)."""
        started = time.monotonic()
        deadline = self._deadline(timeout, started)
        while not await self.poll():
            self._report(progress, started, "waiting")
            now = time.monotonic()
            if now >= deadline:
                self._report(progress, started, "timed_out")
                raise self._timed_out(now - started)
            await asyncio.sleep(min(_delay(self._attempts - 1, min_interval, max_interval), deadline - now))
        self._report(progress, started, "succeeded" if self._output is not None else "failed")
        return self.result()


async def submit_async(
    s3: AsyncS3Access,
    invoke: Callable[[dict[str, Any]], Awaitable[AsyncAnswer]],
    arguments: Mapping[str, Any],
    *,
    input: Any = None,
    input_prefix: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> AsyncInferenceJob:
    """The same as :func:`submit`, awaited (a file is read in a worker thread)."""
    params, upload = _validate(arguments, input, input_prefix, extra)
    watcher = _observe.watcher
    watch = None if watcher is None else watcher.job(params["EndpointName"], params)
    with _observe.Failures(watch):
        if upload is not None:
            bucket, key, source = upload
            data = source if isinstance(source, bytes) else await asyncio.to_thread(_read_source, source)
            await s3.put(bucket, key, data)
            params["InputLocation"] = f"s3://{bucket}/{key}"
        job = AsyncInferenceJob(s3, await invoke(params), _lifetime(params))
    if watch is not None:
        _watched(job, watch)
    return job


#: The names of one release before: the jobs were "invocations".
AsyncInvocation = InferenceJob
AsyncInvocationAsync = AsyncInferenceJob


# --- many jobs -------------------------------------------------------------------------------


def _overall_deadline(jobs: Sequence[_Handle], timeout: float | None, started: float) -> list[float]:
    return [h._deadline(timeout, started) for h in jobs]


def _only(jobs: Iterable[Any], kind: type[_Handle], other: str) -> list[Any]:
    items = list(jobs)
    for job in items:
        if not isinstance(job, kind):
            raise TypeError(f"expected {kind.__name__} objects, got {type(job).__name__}; use {other}")
    return items


def as_completed(
    jobs: Iterable[InferenceJob],
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    min_interval: float = MIN_POLL_INTERVAL,
    max_interval: float = MAX_POLL_INTERVAL,
) -> Iterator[InferenceJob]:
    """Each sync job once its outcome is known, first done first, polled from this thread.

    Every job comes out exactly once; ``job.result()`` returns its output or raises its failure
    (a job still unfinished at the timeout carries an ``AsyncInferenceTimeoutError``).
    """
    items = _only(jobs, InferenceJob, "as_completed_async for AsyncInferenceJob")
    started = time.monotonic()
    deadlines = _overall_deadline(items, timeout, started)
    queue: list[tuple[float, int]] = []
    for index, job in enumerate(items):
        if job.done:
            yield job
        else:
            queue.append((started, index))
    heapq.heapify(queue)
    while queue:
        when, index = heapq.heappop(queue)
        pause = when - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        job = items[index]
        if job.poll():
            job._report(progress, started, "succeeded" if job.output is not None else "failed")
            yield job
            continue
        job._report(progress, started, "waiting")
        now = time.monotonic()
        if now >= deadlines[index]:
            job._error = job._timed_out(now - started)
            job._report(progress, started, "timed_out")
            yield job
            continue
        pause = min(_delay(job._attempts - 1, min_interval, max_interval), deadlines[index] - now)
        heapq.heappush(queue, (now + pause, index))


def wait_many(
    jobs: Iterable[InferenceJob],
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    return_exceptions: bool = False,
    min_interval: float = MIN_POLL_INTERVAL,
    max_interval: float = MAX_POLL_INTERVAL,
) -> list[Any]:
    """Wait for many sync jobs; their outputs in order.

    The first failure is raised unless ``return_exceptions``, which puts each failure in its place
    in the list instead. ``timeout`` bounds the whole wait; by default each job's own lifetime
    bounds it.
    """
    items = _only(jobs, InferenceJob, "wait_many_async for AsyncInferenceJob")
    for job in as_completed(items, timeout, progress, min_interval=min_interval, max_interval=max_interval):
        if job.error is not None and not return_exceptions:
            raise job.error
    return [h.output if h.error is None else h.error for h in items]


async def as_completed_async(
    jobs: Iterable[AsyncInferenceJob],
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    min_interval: float = MIN_POLL_INTERVAL,
    max_interval: float = MAX_POLL_INTERVAL,
) -> AsyncIterator[AsyncInferenceJob]:
    """Each asyncio job once its outcome is known, first done first (see :func:`as_completed`)."""
    items = _only(jobs, AsyncInferenceJob, "as_completed for InferenceJob")

    async def one(job: AsyncInferenceJob) -> AsyncInferenceJob:
        try:
            await job.wait(timeout, progress, min_interval=min_interval, max_interval=max_interval)
        except (AsyncInferenceFailedError, AsyncInferenceTimeoutError) as exc:
            job._error = exc
        return job

    tasks = [asyncio.ensure_future(one(h)) for h in items]
    try:
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def wait_many_async(
    jobs: Iterable[AsyncInferenceJob],
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    return_exceptions: bool = False,
    min_interval: float = MIN_POLL_INTERVAL,
    max_interval: float = MAX_POLL_INTERVAL,
) -> list[Any]:
    """Wait for many asyncio jobs concurrently; their outputs in order (see :func:`wait_many`)."""
    items = _only(jobs, AsyncInferenceJob, "wait_many for InferenceJob")
    async for job in as_completed_async(
        items, timeout, progress, min_interval=min_interval, max_interval=max_interval
    ):
        if job.error is not None and not return_exceptions:
            raise job.error
    return [h.output if h.error is None else h.error for h in items]
