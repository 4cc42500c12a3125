"""One call on the request path: its attempts, written once for both clients.

:class:`Attempts` is sans-I/O: it says what to send, and, given what came back, whether to send
again and after how long (botocore's retry handler decides, :mod:`sagestream._botocore` asks).
:func:`send` and :func:`send_async` are its two drivers: a thread that blocks in Rust with the
GIL released, and an asyncio task awaiting the transport's futures. A request is retried only
before its response headers; once they are in, nothing is sent again.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sagestream import _core
from sagestream._botocore import SERVICE_ID, Bridge, Route, botocore_error, http_response, invocation_id
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
    "Attempts",
    "AttemptObserver",
    "deadline_passed",
    "gave_up",
    "response_metadata",
    "send",
    "send_async",
]

Mode = Literal["whole", "stream"]


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


#: Failures before a response that botocore's retry rules may retry.
_RETRYABLE = (ConnectError, ConnectionLostError, ReadTimeoutError)


def response_metadata(headers: dict[str, str], status: int, retries: int) -> dict[str, Any]:
    """botocore's ``ResponseMetadata`` of an answer."""
    return {
        "RequestId": headers.get("x-amzn-requestid"),
        "HTTPStatusCode": status,
        "HTTPHeaders": headers,
        "RetryAttempts": retries,
    }


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


class Attempts:
    """The attempts of one call of ``route`` with ``params``, within ``deadline`` seconds."""

    __slots__ = (
        "_after",
        "_context",
        "_last",
        "_last_error",
        "attempt",
        "body",
        "bridge",
        "deadline",
        "deadline_at",
        "headers",
        "invocation",
        "mode",
        "route",
        "template",
        "url",
        "watch",
    )

    def __init__(
        self,
        bridge: Bridge,
        route: Route,
        params: dict[str, Any],
        *,
        mode: Mode,
        deadline: float | None,
        started: float,
        watch: CallWatch | None = None,
    ) -> None:
        #: What watches the call (``sagestream._observe``), while instrumented.
        self.watch = watch
        self.bridge = bridge
        self.route = route
        self.mode = mode
        self.template = template = bridge.template(route)
        url, headers, self.body = bridge.request(route, params)
        self.url = url
        self.headers = [*headers, *template.signed] if template.signed else headers
        self.attempt = 1
        self.invocation = invocation_id()
        self.deadline = deadline
        self.deadline_at = None if deadline is None else started + deadline
        self._context: dict[str, Any] | None = None
        self._last: Any = None
        #: Why the last attempt did not give the call's answer (a retry followed it).
        self._last_error: BaseException | None = None
        self._after = template.after(self.invocation)

    def _deadline_error(self) -> DeadlineExceededError:
        return deadline_passed(self.deadline or 0.0, self._last_error)

    def expired(self, error: DeadlineExceededError) -> DeadlineExceededError:
        """``error`` (the deadline passed during an attempt), caused by the previous attempt's
        failure when there was one."""
        if error.__cause__ is None and self._last_error is not None:
            error.__cause__ = self._last_error
        return error

    def remaining(self) -> float | None:
        """Seconds left of the deadline (None: no deadline); raises once it has passed."""
        if self.deadline_at is None:
            return None
        left = self.deadline_at - time.monotonic()
        if left <= 0:
            raise self._deadline_error()
        return left

    def send_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments of ``Transport.send`` for this attempt."""
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

    def adaptive(self) -> bool:
        """Whether adaptive mode's rate limiter must see the attempt first (it may sleep)."""
        return self.bridge.retry_mode == "adaptive"

    def before_send(self) -> None:
        """Let adaptive mode's client-side rate limiter hold the attempt back (blocking)."""
        self.bridge.client.meta.events.emit(f"before-send.{SERVICE_ID}.{self.route.name}", request=None)

    def _context_for_retry(self) -> dict[str, Any]:
        if self._context is None:
            self._context = self.bridge.retry_context()
            self._context["retries"] = {"attempt": self.attempt, "invocation-id": self.invocation}
        return self._context

    def failed(self, exc: BaseException) -> float:
        """An attempt failed before any response: the delay before the next one, or raise."""
        if not isinstance(exc, _RETRYABLE):
            self._ended(str(exc), None, exc)
            raise exc
        caught = botocore_error(exc, self.url)
        delay = self.bridge.ask_retry(self.route, self.attempt, self._context_for_retry(), caught=caught)
        self._ended(str(exc), delay, exc)
        if delay is None:
            raise exc from caught
        self._last = None
        self._last_error = exc
        return delay

    def answered(self, response: Any) -> float | None:
        """An attempt got an answer: None when it is the call's result, else the delay before
        the next attempt; raises the typed error of a final error answer."""
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

    def pause(self, delay: float) -> float:
        """The delay to sleep before the next attempt; raises when the deadline would pass
        before the attempt could start (the error chained to the last attempt's)."""
        left = self.remaining()
        if left is not None and delay >= left:
            raise gave_up(self.deadline or 0.0, left, delay, self.attempt, self._last_error)
        return delay

    def next(self) -> None:
        """Move on to the next attempt (its retry headers as botocore sets them)."""
        self.attempt += 1
        retry = self.bridge.retry_header(self._context_for_retry(), self.attempt, self._last)
        self._after = self.template.after(self.invocation, retry)


def send(attempts: Attempts) -> Any:
    """Run the attempts on this thread; the response of the last one."""
    transport = attempts.bridge.transport
    adaptive = attempts.adaptive()
    while True:
        if adaptive:
            attempts.before_send()
        args, kwargs = attempts.send_args()
        try:
            response = transport.send(*args, **kwargs)
        except _RETRYABLE as exc:
            delay = attempts.failed(exc)
        except DeadlineExceededError as exc:
            raise attempts.expired(exc) from exc.__cause__
        else:
            answered = attempts.answered(response)
            if answered is None:
                return response
            delay = answered
            del response  # its body goes before the next attempt reads another
        time.sleep(attempts.pause(delay))
        attempts.next()


async def send_async(attempts: Attempts, hub: _core.Hub) -> Any:
    """Run the attempts in this task; the response of the last one."""
    transport = attempts.bridge.transport
    adaptive = attempts.adaptive()
    while True:
        if adaptive:
            await asyncio.to_thread(attempts.before_send)
        args, kwargs = attempts.send_args()
        try:
            response = await transport.send_async(hub, *args, **kwargs)
        except _RETRYABLE as exc:
            delay = attempts.failed(exc)
        except DeadlineExceededError as exc:
            raise attempts.expired(exc) from exc.__cause__
        else:
            answered = attempts.answered(response)
            if answered is None:
                return response
            delay = answered
            del response  # its body goes before the next attempt reads another
        await asyncio.sleep(attempts.pause(delay))
        attempts.next()
