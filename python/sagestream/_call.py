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
from typing import Any, Literal, Protocol

from sagestream import _core
from sagestream._botocore import SERVICE_ID, Bridge, Route, botocore_error, http_response, invocation_id
from sagestream.exceptions import (
    ConnectError,
    ConnectionLostError,
    DeadlineExceededError,
    ReadTimeoutError,
    service_error_from_response,
)

__all__ = ["Attempts", "AttemptObserver", "response_metadata", "send", "send_async"]

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


class Attempts:
    """The attempts of one call of ``route`` with ``params``, within ``deadline`` seconds."""

    __slots__ = (
        "_after",
        "_context",
        "_last",
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
    ) -> None:
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
        self._after = template.after(self.invocation)

    def _deadline_error(self) -> DeadlineExceededError:
        return DeadlineExceededError(
            f"the call did not finish within its {_seconds(self.deadline or 0.0)} s deadline"
        )

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
        return (
            ("POST", self.url, self.headers, self.body),
            {"after": self._after, "mode": self.mode, "deadline": self.remaining()},
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
            self._ended(str(exc), None)
            raise exc
        caught = botocore_error(exc, self.url)
        delay = self.bridge.ask_retry(self.route, self.attempt, self._context_for_retry(), caught=caught)
        self._ended(str(exc), delay)
        if delay is None:
            raise exc from caught
        self._last = None
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
        self._ended(f"HTTP {status}", delay)
        if delay is None:
            metadata = parsed.setdefault("ResponseMetadata", {})
            metadata["RetryAttempts"] = self.attempt - 1
            raise service_error_from_response(parsed, self.route.name)
        self._last = (http, parsed)
        return delay

    def _ended(self, failure: str | None, retry_in: float | None) -> None:
        observer = self.bridge.observer
        if observer is not None:
            observer.attempt_ended(self.url, self.attempt, failure, retry_in)

    def pause(self, delay: float) -> float:
        """The delay to sleep before the next attempt; raises when the deadline would pass."""
        left = self.remaining()
        if left is not None and delay >= left:
            raise self._deadline_error()
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
        else:
            answered = attempts.answered(response)
            if answered is None:
                return response
            delay = answered
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
        else:
            answered = attempts.answered(response)
            if answered is None:
                return response
            delay = answered
        await asyncio.sleep(attempts.pause(delay))
        attempts.next()
