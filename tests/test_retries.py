"""The one retry loop (``sagestream._call.Retries.steps``), driven without I/O, and the two kinds
of attempts that fill it in: the request path's and botocore's own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sagestream import _botocore_path, _call
from sagestream.exceptions import ConnectError, DeadlineExceededError


class _Transport:
    """Answers each ``send`` with the next of ``outcomes`` (an exception is raised)."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.sent: list[tuple[Any, ...]] = []

    def send(self, *args: Any, **kwargs: Any) -> Any:
        """The outcome; an awaitable of it when called with a ``hub`` (as the asyncio driver calls)."""
        self.sent.append(args)
        outcome = self.outcomes.pop(0)
        if "hub" in kwargs:
            return self._later(outcome)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _later(self, outcome: Any) -> Any:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class _Kind(_call.Retries):
    """Retries a connect error and a 503 after ``delay`` s, at most ``limit`` attempts."""

    def __init__(
        self, transport: _Transport, *, delay: float = 0.0, limit: int = 3, deadline: float | None = None
    ):
        self._start(deadline, time.monotonic())
        self.transport = transport
        self.mode = "whole"
        self.delay = delay
        self.limit = limit
        self.prepared: list[int] = []
        self.blocked: list[int] = []

    def prepare(self) -> Any:
        self.prepared.append(self.attempt)
        self.blocked.append((yield _call.BLOCK, lambda: self.attempt))

    def send_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (self.attempt,), {}

    def failed(self, exc: BaseException) -> float:
        if self.attempt >= self.limit:
            raise exc
        self._last_error = exc
        return self.delay

    def answered(self, response: Any) -> float | None:
        if response == 503 and self.attempt < self.limit:
            return self.delay
        return None


def test_the_loop_retries_until_an_answer_ends_the_call() -> None:
    transport = _Transport([ConnectError("refused"), 503, 200])
    kind = _Kind(transport)
    assert _call.send(kind) == 200
    assert transport.sent == [(1,), (2,), (3,)]
    assert kind.prepared == kind.blocked == [1, 2, 3]  # a blocking step's result comes back


def test_both_drivers_run_the_same_steps() -> None:
    transport = _Transport([503, ConnectError("refused"), 200])
    kind = _Kind(transport)
    assert asyncio.run(_call.send_async(kind, hub=None)) == 200  # type: ignore[arg-type]
    assert kind.blocked == [1, 2, 3]


def test_a_failure_the_kind_does_not_retry_is_raised() -> None:
    transport = _Transport([ConnectError("one"), ConnectError("two")])
    with pytest.raises(ConnectError, match="two"):
        _call.send(_Kind(transport, limit=2))
    with pytest.raises(ValueError, match="not retryable"):
        _call.send(_Kind(_Transport([ValueError("not retryable")])))


def test_a_backoff_past_the_deadline_gives_up_with_the_last_error_as_cause() -> None:
    kind = _Kind(_Transport([ConnectError("refused")]), delay=10.0, deadline=1.0)
    with pytest.raises(DeadlineExceededError, match="gave up") as caught:
        _call.send(kind)
    assert isinstance(caught.value.__cause__, ConnectError)


def test_one_loop_and_one_retryable_set_serve_both_paths() -> None:
    for kind in (_call.Attempts, _botocore_path.BotocoreAttempts):
        assert issubclass(kind, _call.Retries)
        assert "steps" not in vars(kind)
    assert not hasattr(_botocore_path, "_RETRYABLE")
