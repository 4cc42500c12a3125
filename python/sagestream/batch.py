"""Many requests to one endpoint from one process: :func:`invoke_many`.

``invoke_many(client, endpoint_name, bodies, max_in_flight=16)`` sends every body with an
:class:`~sagestream.AsyncClient`, at most ``max_in_flight`` at once, and yields a
:class:`Result` per body as each one finishes (completion order; ``Result.index`` is the
body's position). A failed request is a result with its typed ``error``, never an exception
out of the iterator, so one bad row does not end the batch. It is the building block of
:class:`sagestream.ray.SageMakerStream`, which runs it in every Ray actor.

What it does besides sending:

- ``limiter=``: a :class:`Limiter` (or the Ray coordinator's) gates every request: see
  :mod:`sagestream._limits` for what the rate and concurrency limits guarantee.
- Retries before the response are the client's (its botocore ``Config``). In-stream failures
  (``ModelStreamError``, ``InternalStreamFailure``, a cut connection) restart the request only
  with ``stream_restarts=N``: the partial output is then discarded. Without restarts, the parts
  received before the failure are the result's ``output``, next to its ``error``.
- ``attempts`` counts the HTTP requests a body took: every attempt the client made (told by an
  :class:`AttemptCounter` given to the client as ``observer=``; without one, the retries the
  answer reports) over every restart.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Hashable, Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sagestream._limits import Limiter
from sagestream.exceptions import (
    ConnectionLostError,
    ModelNotReadyException,
    ReadTimeoutError,
    ServiceError,
    StreamError,
    TruncatedStreamError,
)
from sagestream.service import INVOKE_ASYNC

if TYPE_CHECKING:
    from sagestream._aio import AsyncClient
    from sagestream._call import AttemptObserver

__all__ = [
    "AttemptCounter",
    "Limiter",
    "Mode",
    "Output",
    "Request",
    "Result",
    "SupportsLimit",
    "error_text",
    "invoke_many",
    "render",
]

#: Which operation sends the bodies: InvokeEndpointWithResponseStream, InvokeEndpoint, or
#: InvokeEndpointAsync (input uploaded to S3, the result waited for there).
Mode = Literal["stream", "invoke", "async"]
#: What ``Result.output`` holds: the bytes, the text, or the lines / SSE ``data`` / JSON lines
#: reassembled from the parts, joined with ``"\n"`` (JSON values re-serialized compactly).
Output = Literal["bytes", "text", "lines", "sse", "json_lines"]

MODES: tuple[Mode, ...] = ("stream", "invoke", "async")
OUTPUTS: tuple[Output, ...] = ("bytes", "text", "lines", "sse", "json_lines")

#: Failures inside a stream that ``stream_restarts`` may restart: an error event, the
#: connection cut between or inside frames, no data within the read timeout.
RESTARTABLE: tuple[type[BaseException], ...] = (
    StreamError,
    ConnectionLostError,
    TruncatedStreamError,
    ReadTimeoutError,
)


@dataclass(frozen=True)
class Request:
    """One body with its own request options (None: ``invoke_many``'s)."""

    body: bytes
    custom_attributes: str | None = None
    content_type: str | None = None
    accept: str | None = None
    target_variant: str | None = None
    inference_component_name: str | None = None
    inference_id: str | None = None
    #: The routing hint of PREFIX_AWARE endpoints: bodies of one conversation (same prompt
    #: prefix) with the same id reach the same instance, whose KV cache they reuse.
    prefix_aware_id: str | None = None


#: The request options a :class:`Request` may set (the clients' keywords of the operation
#: table), and those InvokeEndpointAsync does not take.
_OPTION_NAMES = tuple(f.name for f in fields(Request) if f.name != "body")
_NOT_ASYNC = tuple(name for name in _OPTION_NAMES if name not in INVOKE_ASYNC.by_keyword)


@dataclass
class Result:
    """What became of one body."""

    #: The body's position in the input.
    index: int
    #: The answer (see :data:`Output`); on failure what arrived before it, or None.
    output: bytes | str | None
    #: The typed exception that ended the request (after its restarts), None on success.
    error: BaseException | None
    #: Seconds from the last try's start to its first part (None: no part, or mode "async").
    time_to_first_part: float | None
    #: Payload parts of the last try (InvokeEndpoint: 1; mode "async": None).
    parts: int | None
    #: Seconds from the first request (after the limiter's grant) to the end.
    duration: float
    #: HTTP requests sent for this body, retries and restarts included.
    attempts: int
    #: Times the request was restarted after an in-stream failure.
    restarts: int = 0

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return self.error is None

    @property
    def error_text(self) -> str | None:
        """``"ClassName: message"`` of the error, None on success."""
        return None if self.error is None else error_text(self.error)


def error_text(error: BaseException) -> str:
    """``"ClassName: message"``: how a row's error is written down."""
    return f"{type(error).__name__}: {error}"


class SupportsLimit(Protocol):
    """What :func:`invoke_many` needs of a limiter (:class:`Limiter` is one)."""

    async def acquire(self, key: Hashable, holder: Hashable = None) -> None:
        """Wait until call ``key`` may start."""

    def answered(self, key: Hashable) -> None:
        """The call's response headers are in, or it failed before them."""

    def charge(self, key: Hashable) -> None:
        """The call's client sent a retry of its own."""

    def release(self, key: Hashable) -> None:
        """The call is over."""

    def throttled(self) -> None:
        """The endpoint throttled a call."""


class _Try:
    """The attempt bookkeeping of the request in progress in one task (see AttemptCounter)."""

    __slots__ = ("attempts", "key", "limiter")

    def __init__(self, key: Hashable, limiter: SupportsLimit | None) -> None:
        self.key = key
        self.limiter = limiter
        self.attempts = 0


_current_try: contextvars.ContextVar[_Try | None] = contextvars.ContextVar(
    "sagestream_batch_try", default=None
)


class AttemptCounter:
    """An :class:`~sagestream.AttemptObserver` that tells :func:`invoke_many` of every attempt.

    Give it to the client (``AsyncClient(observer=AttemptCounter())``): ``Result.attempts``
    then counts transport failures too, and a limiter is charged for the client's own retries
    and told of the 429 answers it retried. Outside ``invoke_many`` it only forwards to
    ``inner``, another observer, if given.
    """

    def __init__(self, inner: AttemptObserver | None = None) -> None:
        self.inner = inner

    def attempt_started(self, url: str, attempt: int) -> None:
        """Count the attempt; a retry is charged to the limiter."""
        current = _current_try.get()
        if current is not None:
            current.attempts += 1
            if attempt > 1 and current.limiter is not None:
                current.limiter.charge(current.key)
        if self.inner is not None:
            self.inner.attempt_started(url, attempt)

    def attempt_ended(self, url: str, attempt: int, failure: str | None, retry_in: float | None) -> None:
        """A retried 429 answer is a throttle signal for the limiter."""
        current = _current_try.get()
        if (
            current is not None
            and current.limiter is not None
            and retry_in is not None
            and failure == "HTTP 429"
        ):
            current.limiter.throttled()
        if self.inner is not None:
            self.inner.attempt_ended(url, attempt, failure, retry_in)


def render(parts: list[bytes], output: Output) -> bytes | str:
    """The parts as ``output`` asks (reassembled in Rust for lines, SSE and JSON lines)."""
    if output == "bytes":
        return b"".join(parts)
    if output == "text":
        return b"".join(parts).decode("utf-8")
    from sagestream import reassembly

    if output == "lines":
        return "\n".join(reassembly.iter_lines(parts))
    if output == "sse":
        return "\n".join(event.data for event in reassembly.iter_sse(parts))
    return "\n".join(
        json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        for value in reassembly.iter_json_lines(parts)
    )


def _reported_attempts(error: BaseException | None, metadata: dict[str, Any] | None) -> int:
    """Attempts of one call as its answer reports them (when no AttemptCounter counted)."""
    if metadata is None and isinstance(error, ServiceError):
        metadata = error.response.get("ResponseMetadata")
    retries = (metadata or {}).get("RetryAttempts")
    return retries + 1 if isinstance(retries, int) else 1


@dataclass(frozen=True)
class _Options:
    endpoint_name: str
    mode: Mode
    output: Output
    stream_restarts: int
    defaults: dict[str, str | None]
    deadline: float | None
    input_prefix: str | None
    wait_timeout: float | None
    holder: Hashable


class _Run:
    """One :func:`invoke_many` call: its client, options, limiter and key counter."""

    def __init__(self, client: AsyncClient, options: _Options, limiter: SupportsLimit | None) -> None:
        self.client = client
        self.options = options
        self.limiter = limiter
        self._keys = 0

    def _key(self) -> Hashable:
        self._keys += 1
        return (self.options.holder, self._keys)

    def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.options.defaults)
        for name in _OPTION_NAMES:
            value = getattr(request, name)
            if value is not None:
                params[name] = value
        return params

    async def _call(self, request: Request, key: Hashable, parts: list[bytes]) -> tuple[Any, float | None]:
        """One try: the parts go to ``parts`` as they come; returns (metadata, time to first)."""
        opts, client, limiter = self.options, self.client, self.limiter
        params = self._params(request)
        if opts.mode == "stream":
            async with client.invoke_stream(
                opts.endpoint_name, request.body, deadline=opts.deadline, **params
            ) as stream:
                if limiter is not None:
                    limiter.answered(key)
                async for part in stream:
                    parts.append(part)
            return stream.response_metadata, stream.metrics.time_to_first_part
        if opts.mode == "invoke":
            started = time.monotonic()
            result = await client.invoke(opts.endpoint_name, request.body, deadline=opts.deadline, **params)
            parts.append(result.body)
            return result.response_metadata, time.monotonic() - started
        for name in _NOT_ASYNC:
            if params.pop(name, None) is not None:
                raise ValueError(f'{name} does not apply to mode="async" (InvokeEndpointAsync)')
        job = await client.invoke_async(
            opts.endpoint_name, input=request.body, input_prefix=opts.input_prefix, **params
        )
        if limiter is not None:
            # The endpoint has the request: waiting for its result in S3 holds no slot.
            limiter.release(key)
        parts.append(await job.wait(opts.wait_timeout))
        return None, None

    async def one(self, index: int, request: Request) -> Result:
        """Send one body (with its restarts) and say what became of it."""
        opts, limiter = self.options, self.limiter
        attempts = restarts = 0
        first_start: float | None = None
        error: BaseException | None = None
        while True:
            key = self._key()
            if limiter is not None:
                await limiter.acquire(key, opts.holder)
            current = _Try(key, limiter)
            token = _current_try.set(current)
            parts: list[bytes] = []
            metadata: dict[str, Any] | None = None
            ttfp: float | None = None
            error = None
            if first_start is None:
                first_start = time.monotonic()
            try:
                metadata, ttfp = await self._call(request, key, parts)
            except Exception as exc:
                error = exc
            finally:
                _current_try.reset(token)
                if limiter is not None:
                    limiter.release(key)
            attempts += current.attempts or _reported_attempts(error, metadata)
            if isinstance(error, ModelNotReadyException) and limiter is not None:
                limiter.throttled()
            if error is not None and isinstance(error, RESTARTABLE) and restarts < opts.stream_restarts:
                restarts += 1
                continue
            break
        output: bytes | str | None = None
        if error is None or parts:
            try:
                output = render(parts, opts.output)
            except Exception as exc:  # invalid UTF-8 or JSON, a line over the bound
                output, error = None, error or exc
        return Result(
            index=index,
            output=output,
            error=error,
            time_to_first_part=ttfp if parts and opts.mode != "async" else None,
            parts=None if opts.mode == "async" else len(parts),
            duration=time.monotonic() - first_start,
            attempts=attempts,
            restarts=restarts,
        )


Bodies = Iterable[bytes | Request] | AsyncIterable[bytes | Request]


async def _aiter(bodies: Bodies) -> AsyncGenerator[Request, None]:
    if isinstance(bodies, AsyncIterable):
        async for body in bodies:
            yield _request(body)
    else:
        for body in bodies:
            yield _request(body)


def _request(body: bytes | Request) -> Request:
    if isinstance(body, Request):
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return Request(bytes(body))
    raise TypeError(f"each body must be bytes or a sagestream.batch.Request, got {type(body).__name__}")


def _check(
    max_in_flight: int, mode: str, output: str, stream_restarts: int, input_prefix: str | None
) -> None:
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
        raise ValueError(f"max_in_flight must be a positive integer, got {max_in_flight!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {output!r}")
    if isinstance(stream_restarts, bool) or not isinstance(stream_restarts, int) or stream_restarts < 0:
        raise ValueError(f"stream_restarts must be an integer >= 0, got {stream_restarts!r}")
    if mode == "async" and not input_prefix:
        raise ValueError('mode="async" needs input_prefix= (the s3:// prefix the inputs are uploaded to)')


async def invoke_many(
    client: AsyncClient,
    endpoint_name: str,
    bodies: Bodies,
    *,
    max_in_flight: int = 16,
    mode: Mode = "stream",
    output: Output = "bytes",
    stream_restarts: int = 0,
    limiter: SupportsLimit | None = None,
    content_type: str | None = None,
    accept: str | None = None,
    custom_attributes: str | None = None,
    target_variant: str | None = None,
    inference_component_name: str | None = None,
    deadline: float | None = None,
    input_prefix: str | None = None,
    wait_timeout: float | None = None,
    holder: Hashable = None,
) -> AsyncIterator[Result]:
    """Send every body to ``endpoint_name``, ``max_in_flight`` at a time; yield the results as
    they finish.

    ``bodies`` is an iterable or async iterable of ``bytes`` or :class:`Request`, read only as
    fast as requests can start (so it may be endless). The request options apply to every body
    a :class:`Request` does not override. ``deadline`` bounds each try (seconds);
    ``mode="async"`` uploads each body under ``input_prefix`` and waits up to ``wait_timeout``
    for its result (default: the request's own lifetime). ``holder`` names this caller to a
    shared limiter. Leaving the iterator early (``break``, cancellation) cancels the requests
    still in progress. A bad option raises ``ValueError`` before anything is sent.
    """
    _check(max_in_flight, mode, output, stream_restarts, input_prefix)
    options = _Options(
        endpoint_name=endpoint_name,
        mode=mode,
        output=output,
        stream_restarts=stream_restarts,
        defaults={
            "content_type": content_type,
            "accept": accept,
            "custom_attributes": custom_attributes,
            "target_variant": target_variant,
            "inference_component_name": inference_component_name,
            "prefix_aware_id": None,  # per body: Request.prefix_aware_id
        },
        deadline=deadline,
        input_prefix=input_prefix,
        wait_timeout=wait_timeout,
        holder=holder,
    )
    if mode == "async":
        for name in _NOT_ASYNC:
            if options.defaults[name] is not None:
                raise ValueError(f'{name} does not apply to mode="async" (InvokeEndpointAsync)')
    run = _Run(client, options, limiter)
    running: set[asyncio.Task[Result]] = set()
    source: AsyncGenerator[Request, None] | None = _aiter(bodies)
    # The next body is awaited next to the requests in progress, so a slow source (a queue
    # fed by the caller) never holds back the results of requests already done.
    reading: asyncio.Task[Request] | None = None
    index = 0
    try:
        while True:
            if reading is None and source is not None and len(running) < max_in_flight:
                reading = asyncio.ensure_future(source.__anext__())
            waiting: set[asyncio.Future[Any]] = set(running)
            if reading is not None:
                waiting.add(reading)
            if not waiting:
                break
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if reading is not None and reading in done:
                done.discard(reading)
                try:
                    request = reading.result()
                except StopAsyncIteration:
                    source = None
                else:
                    running.add(asyncio.ensure_future(run.one(index, request)))
                    index += 1
                reading = None
            for task in done:
                running.discard(task)
                yield task.result()
    finally:
        pending: list[asyncio.Future[Any]] = [*running, *([reading] if reading is not None else [])]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if source is not None:
            await source.aclose()
