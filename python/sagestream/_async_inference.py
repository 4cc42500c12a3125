"""InvokeEndpointAsync, and waiting for its result in S3.

SageMaker answers InvokeEndpointAsync at once (202) with the S3 URIs where the output or the
failure document will appear. The handles here poll both locations with capped exponential
backoff and jitter until one of them exists, bounded by the request's own lifetime
(RequestTTLSeconds + InvocationTimeoutSeconds) unless a timeout is given.

* :class:`AsyncInvocation` - the handle of the sync :class:`sagestream.Client` (boto3 S3 calls).
* :class:`AsyncInvocationAsync` - the handle of :class:`sagestream.AsyncClient`; its S3 calls are
  signed by a botocore S3 client and sent with the AsyncClient's aiohttp session, so thousands of
  waits share one connection pool instead of a small thread pool.
* :func:`wait_many` / :func:`as_completed` take either kind of handle (sync: a list / an iterator;
  async: an awaitable / an async iterator); :func:`wait_many_async` / :func:`as_completed_async`
  are the explicit async forms.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

from sagestream import _params
from sagestream.exceptions import AsyncInferenceFailed, AsyncInferenceTimeout, ParamValidationError

if TYPE_CHECKING:
    from sagestream._aio import AsyncClient

__all__ = [
    "DEFAULT_INVOCATION_TIMEOUT_SECONDS",
    "DEFAULT_REQUEST_TTL_SECONDS",
    "AsyncInvocation",
    "AsyncInvocationAsync",
    "WaitProgress",
    "as_completed",
    "as_completed_async",
    "start_invocation",
    "start_invocation_async",
    "wait_many",
    "wait_many_async",
]

# Service defaults when the request does not set them, from the SageMaker Runtime API reference
# for InvokeEndpointAsync (also in botocore's sagemaker-runtime model documentation):
# "RequestTTLSeconds ... The default is 6 hours, or 21,600 seconds."
# "InvocationTimeoutSeconds ... The default is 15 minutes, or 900 seconds."
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpointAsync.html
DEFAULT_REQUEST_TTL_SECONDS = 21_600
DEFAULT_INVOCATION_TIMEOUT_SECONDS = 900

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
    """What both handles share: locations, the default bound, the cached outcome."""

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
        """The ``AsyncInferenceFailed`` / ``AsyncInferenceTimeout`` once failed, else None."""
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

    def _failed(self, document: bytes) -> AsyncInferenceFailed:
        text = document[:500].decode("utf-8", "replace")
        return AsyncInferenceFailed(
            f"async inference {self.inference_id} failed ({self.failure_location}): {text}",
            failure=document,
            failure_location=self.failure_location,
        )

    def _timed_out(self, waited: float) -> AsyncInferenceTimeout:
        return AsyncInferenceTimeout(
            f"async inference {self.inference_id}: neither the output ({self.output_location}) nor"
            f" the failure document ({self.failure_location}) appeared within {waited:.1f} s",
            output_location=self.output_location,
            failure_location=self.failure_location,
        )

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
        if output is not None:
            self._output = output
            return "succeeded"
        if failure is not None:
            self._error = self._failed(failure)
            return "failed"
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
    endpoint_name: str,
    input_location: str | None,
    input: Any,
    input_prefix: str | None,
    options: dict[str, Any],
) -> tuple[dict[str, Any], tuple[str, str, Any] | None]:
    """Validate everything before any I/O; returns the API params and what to upload, if any."""
    if input_location is not None:
        if input is not None:
            raise ParamValidationError("give either input_location or input (with input_prefix), not both")
        return _params.async_params(endpoint_name, input_location, **options), None
    if input is None:
        raise ParamValidationError("input_location is required (or input with input_prefix to upload it)")
    if input_prefix is None:
        raise ParamValidationError("input_prefix (s3://bucket/prefix) is required to upload input")
    _params.check_s3_uri(input_prefix, "input_prefix")
    params = _params.async_params(endpoint_name, _PLACEHOLDER_LOCATION, **options)
    if isinstance(input, bytes | bytearray | memoryview):
        source: Any = bytes(input)
        name = ""
    elif isinstance(input, str | os.PathLike):
        path = os.fspath(input)
        if not os.path.isfile(path):
            raise ParamValidationError(f"input file not found: {path!r}")
        source = path
        name = os.path.basename(path)
    else:
        raise ParamValidationError(f"input must be bytes or a file path, got {type(input).__name__}")
    bucket, _, prefix = input_prefix[5:].partition("/")
    key = f"{prefix.rstrip('/')}/" if prefix.strip("/") else ""
    key += uuid.uuid4().hex + (f"-{name}" if name else "")
    return params, (bucket, key, source)


def _read_source(source: Any) -> bytes:
    if isinstance(source, bytes):
        return source
    with open(source, "rb") as f:
        return f.read()


# --- the sync handle -------------------------------------------------------------------------


def _s3_client_of(client: Any) -> Any:
    s3 = getattr(client, "_sagestream_s3", None)
    if s3 is None:
        s3 = client._session.client(
            "s3",
            region_name=client._runtime.meta.region_name,
            endpoint_url=getattr(client, "_s3_endpoint_url", None),
            config=getattr(client, "_config", None),
        )
        with contextlib.suppress(AttributeError):  # a client with __slots__: no cache
            client._sagestream_s3 = s3
    return s3


def _get_sync(s3: Any, uri: str) -> bytes | None:
    bucket, key = _split_s3(uri)
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    except Exception as exc:
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            return None
        raise
    body = response["Body"]
    try:
        return bytes(body.read())
    finally:
        body.close()


class AsyncInvocation(_Handle):
    """A submitted InvokeEndpointAsync request of the sync client; :meth:`wait` for its output."""

    def __init__(
        self, s3: Any, inference_id: str, output_location: str, failure_location: str, lifetime: float
    ):
        super().__init__(inference_id, output_location, failure_location, lifetime)
        self._s3 = s3

    def poll(self) -> bool:
        """Look at both locations once; True when the outcome is known."""
        if self.done:
            return True
        self._attempts += 1
        output = _get_sync(self._s3, self.output_location)
        failure = None if output is not None else _get_sync(self._s3, self.failure_location)
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

        Raises :class:`~sagestream.AsyncInferenceFailed` (``.failure`` holds the failure document)
        or :class:`~sagestream.AsyncInferenceTimeout` after ``timeout`` seconds, by default
        RequestTTLSeconds + InvocationTimeoutSeconds after submission.
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


def start_invocation(
    client: Any,
    endpoint_name: str,
    *,
    input_location: str | None = None,
    input: Any = None,
    input_prefix: str | None = None,
    **options: Any,
) -> AsyncInvocation:
    """``Client.invoke_async``: validate, upload ``input`` if given, call InvokeEndpointAsync."""
    params, upload = _validate(endpoint_name, input_location, input, input_prefix, options)
    s3 = _s3_client_of(client)
    if upload is not None:
        bucket, key, source = upload
        s3.put_object(Bucket=bucket, Key=key, Body=_read_source(source))
        params["InputLocation"] = f"s3://{bucket}/{key}"
    answer = client._invoke_async_call(params)
    return AsyncInvocation(
        s3, answer.inference_id, answer.output_location, answer.failure_location, _lifetime(params)
    )


# --- the asyncio handle ----------------------------------------------------------------------


class AsyncInvocationAsync(_Handle):
    """A submitted InvokeEndpointAsync request of the :class:`~sagestream.AsyncClient`."""

    def __init__(
        self,
        client: AsyncClient,
        inference_id: str,
        output_location: str,
        failure_location: str,
        lifetime: float,
    ):
        super().__init__(inference_id, output_location, failure_location, lifetime)
        self._client = client

    async def _get(self, uri: str) -> bytes | None:
        bucket, key = _split_s3(uri)
        reply = await self._client._s3_call("GetObject", {"Bucket": bucket, "Key": key})
        return None if reply.status == 404 else reply.body

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
        """Wait for the output and return its bytes (same rules as :meth:`AsyncInvocation.wait`)."""
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


async def start_invocation_async(
    client: AsyncClient,
    endpoint_name: str,
    *,
    input_location: str | None = None,
    input: Any = None,
    input_prefix: str | None = None,
    **options: Any,
) -> AsyncInvocationAsync:
    """``AsyncClient.invoke_async``: validate, upload ``input`` if given, call InvokeEndpointAsync."""
    params, upload = _validate(endpoint_name, input_location, input, input_prefix, options)
    if upload is not None:
        bucket, key, source = upload
        data = source if isinstance(source, bytes) else await asyncio.to_thread(_read_source, source)
        reply = await client._s3_call("PutObject", {"Bucket": bucket, "Key": key, "Body": data})
        if reply.status >= 300:
            from sagestream.exceptions import ServiceError

            raise ServiceError(reply.parsed or {}, "PutObject")
        params["InputLocation"] = f"s3://{bucket}/{key}"
    answer = await client._invoke_async_call(params)
    return AsyncInvocationAsync(
        client, answer.inference_id, answer.output_location, answer.failure_location, _lifetime(params)
    )


# --- many handles ----------------------------------------------------------------------------


def _overall_deadline(handles: Sequence[_Handle], timeout: float | None, started: float) -> list[float]:
    return [h._deadline(timeout, started) for h in handles]


def _as_completed_sync(
    handles: Sequence[AsyncInvocation],
    timeout: float | None,
    progress: ProgressCallback | None,
    min_interval: float,
    max_interval: float,
) -> Iterator[AsyncInvocation]:
    started = time.monotonic()
    deadlines = _overall_deadline(handles, timeout, started)
    queue: list[tuple[float, int]] = []
    for index, handle in enumerate(handles):
        if handle.done:
            yield handle
        else:
            queue.append((started, index))
    heapq.heapify(queue)
    while queue:
        when, index = heapq.heappop(queue)
        pause = when - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        handle = handles[index]
        if handle.poll():
            handle._report(progress, started, "succeeded" if handle.output is not None else "failed")
            yield handle
            continue
        handle._report(progress, started, "waiting")
        now = time.monotonic()
        if now >= deadlines[index]:
            handle._error = handle._timed_out(now - started)
            handle._report(progress, started, "timed_out")
            yield handle
            continue
        pause = min(_delay(handle._attempts - 1, min_interval, max_interval), deadlines[index] - now)
        heapq.heappush(queue, (now + pause, index))


async def as_completed_async(
    handles: Iterable[AsyncInvocationAsync],
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    min_interval: float = MIN_POLL_INTERVAL,
    max_interval: float = MAX_POLL_INTERVAL,
) -> AsyncIterator[AsyncInvocationAsync]:
    """Yield each handle once its outcome is known (``handle.result()`` gives it), first done first.

    Every handle is yielded exactly once; one that did not finish in time carries an
    ``AsyncInferenceTimeout`` as its ``error``.
    """
    items = list(handles)

    async def one(handle: AsyncInvocationAsync) -> AsyncInvocationAsync:
        try:
            await handle.wait(timeout, progress, min_interval=min_interval, max_interval=max_interval)
        except (AsyncInferenceFailed, AsyncInferenceTimeout) as exc:
            handle._error = exc
        return handle

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
    handles: Iterable[AsyncInvocationAsync],
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    return_exceptions: bool = False,
    min_interval: float = MIN_POLL_INTERVAL,
    max_interval: float = MAX_POLL_INTERVAL,
) -> list[Any]:
    """Wait for every handle concurrently; outputs in the handles' order.

    Raises the first failure to happen unless ``return_exceptions``, which puts each
    ``AsyncInferenceFailed`` / ``AsyncInferenceTimeout`` in its place in the list instead.
    """
    items = list(handles)
    async for handle in as_completed_async(
        items, timeout, progress, min_interval=min_interval, max_interval=max_interval
    ):
        if handle.error is not None and not return_exceptions:
            raise handle.error
    return [h.output if h.error is None else h.error for h in items]


def _wait_many_sync(
    handles: Sequence[AsyncInvocation],
    timeout: float | None,
    progress: ProgressCallback | None,
    return_exceptions: bool,
    min_interval: float,
    max_interval: float,
) -> list[Any]:
    for handle in _as_completed_sync(handles, timeout, progress, min_interval, max_interval):
        if handle.error is not None and not return_exceptions:
            raise handle.error
    return [h.output if h.error is None else h.error for h in handles]


def _kind(handles: Sequence[_Handle]) -> type[_Handle]:
    kinds = {type(h) for h in handles}
    if kinds <= {AsyncInvocation}:
        return AsyncInvocation
    if kinds <= {AsyncInvocationAsync}:
        return AsyncInvocationAsync
    raise TypeError("handles must be all AsyncInvocation (sync) or all AsyncInvocationAsync (asyncio)")


@overload
def wait_many(
    handles: Iterable[AsyncInvocation],
    timeout: float | None = ...,
    progress: ProgressCallback | None = ...,
    *,
    return_exceptions: bool = ...,
    min_interval: float = ...,
    max_interval: float = ...,
) -> list[Any]: ...
@overload
def wait_many(
    handles: Iterable[AsyncInvocationAsync],
    timeout: float | None = ...,
    progress: ProgressCallback | None = ...,
    *,
    return_exceptions: bool = ...,
    min_interval: float = ...,
    max_interval: float = ...,
) -> Awaitable[list[Any]]: ...
def wait_many(
    handles: Iterable[Any],
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    return_exceptions: bool = False,
    min_interval: float = MIN_POLL_INTERVAL,
    max_interval: float = MAX_POLL_INTERVAL,
) -> Any:
    """Wait for many invocations; their outputs in order.

    Sync handles (``Client.invoke_async``): returns the list, polling every handle from this
    thread. asyncio handles (``AsyncClient.invoke_async``): returns an awaitable of the list (the
    same as :func:`wait_many_async`). The first failure is raised unless ``return_exceptions``.
    ``timeout`` bounds the whole wait; by default each handle's own lifetime bounds it.
    """
    items = list(handles)
    if _kind(items) is AsyncInvocationAsync and items:
        return wait_many_async(
            items,
            timeout,
            progress,
            return_exceptions=return_exceptions,
            min_interval=min_interval,
            max_interval=max_interval,
        )
    return _wait_many_sync(items, timeout, progress, return_exceptions, min_interval, max_interval)


@overload
def as_completed(
    handles: Iterable[AsyncInvocation],
    timeout: float | None = ...,
    progress: ProgressCallback | None = ...,
    *,
    min_interval: float = ...,
    max_interval: float = ...,
) -> Iterator[AsyncInvocation]: ...
@overload
def as_completed(
    handles: Iterable[AsyncInvocationAsync],
    timeout: float | None = ...,
    progress: ProgressCallback | None = ...,
    *,
    min_interval: float = ...,
    max_interval: float = ...,
) -> AsyncIterator[AsyncInvocationAsync]: ...
def as_completed(
    handles: Iterable[Any],
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    min_interval: float = MIN_POLL_INTERVAL,
    max_interval: float = MAX_POLL_INTERVAL,
) -> Any:
    """Each handle once its outcome is known, first done first.

    Sync handles: an iterator (``for h in as_completed(handles)``). asyncio handles: an async
    iterator (``async for h in as_completed(handles)``, same as :func:`as_completed_async`).
    Every handle comes out exactly once; ``h.result()`` returns its output or raises its failure
    (a handle still unfinished at the timeout carries an ``AsyncInferenceTimeout``).
    """
    items = list(handles)
    if _kind(items) is AsyncInvocationAsync and items:
        return as_completed_async(
            items, timeout, progress, min_interval=min_interval, max_interval=max_interval
        )
    return _as_completed_sync(items, timeout, progress, min_interval, max_interval)
