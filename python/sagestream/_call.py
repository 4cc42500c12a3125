"""One call and its attempts: the retry loop, written once for both paths and both clients.

:class:`Retries` is sans-I/O. Its :meth:`~Retries.steps` generator is the one retry loop: it
yields what to do — send an attempt, wait before the next, run something that may block — and,
given what came back, decides whether to send again and after how long (botocore's retry
handler decides; the subclass asks it). Two kinds of attempts fill it in: :class:`Attempts`, the
request path's (the request built from the operation table, signed in Rust), and
``sagestream._botocore_path.BotocoreAttempts``, botocore's own path over the same transport
(the asyncio client's fallback, and S3 for async inference jobs). :class:`Call` is one call on
the request path as both clients prepare it — the bridge's cached answers, the credentials, the
attempts, the answer named — so the clients differ only in the driver. :func:`send` and
:func:`send_async` are the two ways to wait: a thread that blocks in Rust with the GIL released,
and an asyncio task awaiting the transport's futures. A request is retried only before its
response headers; once they are in, nothing is sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sagestream import _core
from sagestream._botocore import SERVICE_ID, Bridge, botocore_error, http_response, invocation_id
from sagestream._route import Route
from sagestream.exceptions import (
    ConnectError,
    ConnectionLostError,
    DeadlineExceededError,
    ReadTimeoutError,
    service_error_from_response,
)

if TYPE_CHECKING:
    from sagestream._observe import CallWatch

__all__ = [
    "RETRYABLE",
    "AttemptObserver",
    "Attempts",
    "Call",
    "Retries",
    "answer_of",
    "deadline_passed",
    "gave_up",
    "response_metadata",
    "send",
    "send_async",
]

Mode = Literal["whole", "stream"]

#: Failures before a response that botocore's retry rules may retry.
RETRYABLE = (ConnectError, ConnectionLostError, ReadTimeoutError)

#: What :meth:`Retries.steps` asks of its driver: send an attempt (``(args, kwargs)`` of
#: ``Transport.send``), wait (seconds), or run a function that may block (asyncio runs it in a
#: worker thread); the driver sends back the response, None, or the function's result.
SEND, WAIT, BLOCK = "send", "wait", "block"
Step = tuple[str, Any]


class AttemptObserver(Protocol):
    """What a client's ``observer=`` is told of each attempt (for logging and metrics).

    Called on the thread (or in the task) making the call; keep the methods quick.
    """

    def attempt_started(self, url: str, attempt: int) -> None:
        """Attempt ``attempt`` (1 for the first) of a call to ``url`` is about to be sent."""

    def attempt_ended(self, url: str, attempt: int, failure: str | None, retry_in: float | None) -> None:
        """The attempt ended: ``failure`` says why it did not give the call's answer (a
        transport error, or an error status), None when it did; ``retry_in``: the delay
        before the next attempt, None when there is none."""


def response_metadata(headers: dict[str, str], status: int, retries: int) -> dict[str, Any]:
    """botocore's ``ResponseMetadata`` of an answer."""
    return {
        "RequestId": headers.get("x-amzn-requestid"),
        "HTTPStatusCode": status,
        "HTTPHeaders": headers,
        "RetryAttempts": retries,
    }


def answer_of(route: Route, headers: dict[str, str], status: int, retries: int) -> dict[str, Any]:
    """The botocore-style answer of a response's headers: the operation's header members by
    their API names, and its ``ResponseMetadata``."""
    answer = route.output_headers(headers)
    answer["ResponseMetadata"] = response_metadata(headers, status, retries)
    return answer


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def deadline_passed(deadline: float, cause: BaseException | None) -> DeadlineExceededError:
    """The error of a call whose deadline passed between its attempts, caused by the last
    attempt's error (if any)."""
    error = DeadlineExceededError(f"the call did not finish within its {_seconds(deadline)} s deadline")
    error.__cause__ = cause
    return error


def gave_up(
    deadline: float, left: float, delay: float, attempt: int, cause: BaseException | None
) -> DeadlineExceededError:
    """The error of a call that stops retrying before its deadline, because the backoff before
    the next attempt would end past it: it says so, names the deadline the call was given,
    and is caused by the last attempt's error."""
    error = DeadlineExceededError(
        f"the call gave up {_seconds(left)} s before its {_seconds(deadline)} s deadline: "
        f"attempt {attempt} failed, and the {_seconds(delay)} s backoff before a retry "
        "would end past the deadline (the attempt's error is the cause)"
    )
    error.__cause__ = cause
    return error


class Retries:
    """The attempts of one call within ``deadline`` seconds of ``started``: the retry loop, and
    the deadline's bookkeeping. A subclass says how to send an attempt and what its outcome means."""

    transport: Any
    #: The mode of ``Transport.send``: read the whole answer, or return at its headers.
    mode: Mode
    #: Attempts made (1 during the first).
    attempt: int
    deadline: float | None
    deadline_at: float | None
    #: Why the last attempt did not give the call's answer (a retry followed it).
    _last_error: BaseException | None

    def _start(self, deadline: float | None, started: float) -> None:
        self.attempt = 1
        self.deadline = deadline
        self.deadline_at = None if deadline is None else started + deadline
        self._last_error = None

    def steps(self) -> Generator[Step, Any, Any]:
        """The retry loop: what the driver must do next, until the call's result (returned)."""
        while True:
            yield from self.prepare()
            try:
                response = yield SEND, self.send_args()
            except RETRYABLE as exc:
                delay = self.failed(exc)
            except DeadlineExceededError as exc:
                if exc.__cause__ is None:
                    exc.__cause__ = self._last_error
                raise
            else:
                answered = self.answered(response)
                if answered is None:
                    return self.result(response)
                delay = answered
                del response  # its body goes before the next attempt reads another
            yield WAIT, self.pause(delay)
            self.attempt += 1
            self.next()

    # --- what a kind of attempts says ------------------------------------------------------

    def prepare(self) -> Generator[Step, Any, None]:
        """What comes before each attempt (nothing by default)."""
        yield from ()

    def send_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments of ``Transport.send`` for this attempt."""
        raise NotImplementedError

    def failed(self, exc: BaseException) -> float:
        """An attempt failed before any response: the delay before the next one, or raise."""
        raise NotImplementedError

    def answered(self, response: Any) -> float | None:
        """An attempt got an answer: None when it ends the call, else the delay before the next."""
        raise NotImplementedError

    def next(self) -> None:
        """Move on to the next attempt (:attr:`attempt` counts it already)."""

    def result(self, response: Any) -> Any:
        """What the call returns, of its last answer."""
        return response

    # --- the deadline ----------------------------------------------------------------------

    def remaining(self) -> float | None:
        """Seconds left of the deadline (None: no deadline); raises once it has passed."""
        if self.deadline_at is None:
            return None
        left = self.deadline_at - time.monotonic()
        if left <= 0:
            raise deadline_passed(self.deadline or 0.0, self._last_error)
        return left

    def pause(self, delay: float) -> float:
        """The delay to sleep before the next attempt; raises when the deadline would pass
        before the attempt could start (the error chained to the last attempt's)."""
        left = self.remaining()
        if left is not None and delay >= left:
            raise gave_up(self.deadline or 0.0, left, delay, self.attempt, self._last_error)
        return delay


class Attempts(Retries):
    """The attempts of one :class:`Call` on the request path (its request built: a file body
    is read)."""

    def __init__(self, call: Call) -> None:
        self._start(call.deadline, call.started)
        #: What watches the call (``sagestream._observe``), while instrumented.
        self.watch = call.watch
        self.bridge = bridge = call.bridge
        self.transport = call.transport
        self.route = route = bridge.routes[call.operation]
        self.mode = call.mode
        self.template = template = bridge.template(route)
        self.url, headers, self.body = bridge.request(route, call.params)
        self.headers = [*headers, *template.signed] if template.signed else headers
        self.invocation = invocation_id()
        self._context: dict[str, Any] | None = None
        self._last: Any = None
        self._trace = bridge.trace_header()
        self._after = [*template.after(self.invocation), *self._trace]

    def prepare(self) -> Generator[Step, Any, None]:
        if self.bridge.retry_mode == "adaptive":
            # Adaptive mode's client-side rate limiter may hold the attempt back (it sleeps).
            event = f"before-send.{SERVICE_ID}.{self.route.name}"
            yield BLOCK, lambda: self.bridge.client.meta.events.emit(event, request=None)

    def send_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        observer = self.bridge.observer
        if observer is not None:
            observer.attempt_started(self.url, self.attempt)
        if self.watch is not None:
            self.watch.attempt_started(self.attempt)
        return (
            ("POST", self.url, self.headers, self.body),
            {
                "after": self._after,
                "mode": self.mode,
                "deadline": self.remaining(),
                "call_deadline": self.deadline,
                "limit": self.bridge.limits.body,
                "error_limit": self.bridge.limits.error_body,
            },
        )

    def _context_for_retry(self) -> dict[str, Any]:
        if self._context is None:
            self._context = self.bridge.retry_context()
            self._context["retries"] = {"attempt": self.attempt, "invocation-id": self.invocation}
        return self._context

    def failed(self, exc: BaseException) -> float:
        caught = botocore_error(exc, self.url)
        delay = self.bridge.ask_retry(self.route, self.attempt, self._context_for_retry(), caught=caught)
        self._ended(str(exc), delay, exc)
        if delay is None:
            raise exc from caught
        self._last = None
        self._last_error = exc
        return delay

    def answered(self, response: Any) -> float | None:
        """None when the answer is the call's result, else the delay before the next attempt;
        raises the typed error of a final error answer."""
        status = response.status
        if status < 300:
            if self.bridge.tells_successes():
                headers = response.headers
                http = http_response(self.url, status, headers, b"")
                parsed = {"ResponseMetadata": response_metadata(headers, status, self.attempt - 1)}
                context = self._context_for_retry()
                self.bridge.ask_retry(self.route, self.attempt, context, response=(http, parsed))
                self.bridge.after_call(self.route, context, http, parsed)
            self._ended(None, None)
            return None
        headers = response.headers
        body = response.body or b""
        parsed = self.bridge.parse(self.route, status, headers, body)
        http = http_response(self.url, status, headers, body)
        delay = self.bridge.ask_retry(
            self.route, self.attempt, self._context_for_retry(), response=(http, parsed)
        )
        metadata = parsed.setdefault("ResponseMetadata", {})
        metadata["RetryAttempts"] = self.attempt - 1
        error = service_error_from_response(parsed, self.route.name)
        self._ended(f"HTTP {status}", delay, error)
        if delay is None:
            raise error
        # What the retry headers need of this answer is its headers: its body is let go now,
        # before the next attempt reads another.
        self._last = (http_response(self.url, status, headers, b""), parsed)
        self._last_error = error
        return delay

    def _ended(self, failure: str | None, retry_in: float | None, error: BaseException | None = None) -> None:
        observer = self.bridge.observer
        if observer is not None:
            observer.attempt_ended(self.url, self.attempt, failure, retry_in)
        if self.watch is not None:
            self.watch.attempt_ended(self.attempt, error, retry_in)

    def next(self) -> None:
        """The next attempt's retry headers, as botocore sets them."""
        retry = self.bridge.retry_header(self._context_for_retry(), self.attempt, self._last)
        self._after = [*self.template.after(self.invocation, retry), *self._trace]


class Call:
    """One call of ``operation`` with ``params`` (validated by the operation table) on the
    request path, as both clients prepare it; :meth:`steps` takes it from the credentials to
    the answer, and either driver (:func:`send`, :func:`send_async`) runs them.

    ``deadline`` counts from ``started`` (``time.monotonic()``); ``stream``: the call returns at
    the answer's headers, its body unread.
    """

    __slots__ = ("bridge", "deadline", "mode", "operation", "params", "started", "transport", "watch")

    def __init__(
        self,
        bridge: Bridge,
        operation: str,
        params: dict[str, Any],
        *,
        stream: bool,
        deadline: float | None,
        started: float,
        watch: CallWatch | None = None,
    ) -> None:
        self.bridge = bridge
        self.transport = bridge.transport
        #: What watches the call (``sagestream._observe``), while instrumented.
        self.watch = watch
        self.operation = operation
        self.params = params
        self.mode: Mode = "stream" if stream else "whole"
        self.deadline = deadline
        self.started = started

    def steps(self) -> Generator[Step, Any, tuple[Any, dict[str, Any]]]:
        """Fresh credentials (botocore may block for them), the attempts (their request built:
        a file body is read, which may block), the retry loop; the call's last response and the
        botocore-style answer of its headers."""
        bridge = self.bridge
        if not bridge.credentials_fresh():
            yield BLOCK, bridge.refresh_credentials
        body = self.params.get("Body")
        attempts = (
            self._attempts() if body is None or isinstance(body, bytes) else (yield BLOCK, self._attempts)
        )
        response = yield from attempts.steps()
        headers, status = response.headers, response.status
        if self.watch is not None:
            self.watch.answered(status, headers, attempts.attempt)
        return response, answer_of(attempts.route, headers, status, attempts.attempt - 1)

    def _attempts(self) -> Attempts:
        return Attempts(self)

    def remaining(self) -> float | None:
        """Seconds left of the deadline, at least 0 (None: no deadline)."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - (time.monotonic() - self.started))


class _Driver:
    """Feeds a call's :meth:`Retries.steps` what its steps gave; :attr:`result` at the end."""

    __slots__ = ("error", "result", "steps", "value")

    def __init__(self, retries: Retries | Call) -> None:
        self.steps = retries.steps()
        self.value: Any = None
        self.error: Exception | None = None
        self.result: Any = None

    def next(self) -> Step | None:
        """The next step, or None once the call has its result."""
        value, error, self.value, self.error = self.value, self.error, None, None
        try:
            return self.steps.throw(error) if error is not None else self.steps.send(value)
        except StopIteration as stop:
            self.result = stop.value
            return None


def send(retries: Retries | Call) -> Any:
    """Run a call's attempts on this thread; its result."""
    driver = _Driver(retries)
    transport = retries.transport
    while (step := driver.next()) is not None:
        kind, argument = step
        try:
            if kind == SEND:
                driver.value = transport.send(*argument[0], **argument[1])
            elif kind == WAIT:
                time.sleep(argument)
            else:
                driver.value = argument()
        except Exception as exc:
            driver.error = exc
    return driver.result


async def send_async(retries: Retries | Call, hub: _core.Hub) -> Any:
    """Run a call's attempts in this task (what may block, in a worker thread); its result."""
    driver = _Driver(retries)
    transport = retries.transport
    blocking: Callable[..., Any] = asyncio.to_thread
    while (step := driver.next()) is not None:
        kind, argument = step
        try:
            if kind == SEND:
                driver.value = await transport.send(*argument[0], hub=hub, **argument[1])
            elif kind == WAIT:
                await asyncio.sleep(argument)
            else:
                driver.value = await blocking(argument)
        except Exception as exc:
            driver.error = exc
    return driver.result
