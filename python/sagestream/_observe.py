"""The slot an instrumentation fills to watch every call (``sagestream.otel`` fills it).

Nothing here imports an instrumentation library. While the slot is empty a call pays one
module-attribute load and a ``None`` test, allocates nothing more, and its stream's parts are the
Rust iterator's own: no Python frame runs per part. When it is filled, each call asks the
:class:`Watcher` for a :class:`CallWatch` and tells it what happens: each attempt, the answer's
headers, the parts (which the watch may observe through the Rust iterator's ``observe()``, or
wrap), the end or the failure.

Framework integrations say what their calls are (a chat, a text completion) and report the
token usage they parse through :func:`sagestream.observe.annotate`; the watch of a call made
inside it finds the ``Annotation`` in ``sagestream.observe.annotation``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

__all__ = [
    "CallWatch",
    "Failures",
    "JobWatch",
    "Watcher",
    "answered",
    "answered_botocore",
    "call_watch",
    "watched",
    "watcher",
]


class CallWatch(Protocol):
    """What happens to one call of one operation (any method may be skipped but ``failed``)."""

    def attempt_started(self, attempt: int) -> None:
        """Attempt ``attempt`` (1 for the first) is about to be sent."""

    def attempt_ended(self, attempt: int, failure: BaseException | None, retry_in: float | None) -> None:
        """The attempt ended: ``failure`` is why it did not give the answer (None: it did);
        ``retry_in`` the backoff before the next attempt (None: there is none)."""

    def answered(self, status: int, headers: Mapping[str, str], attempts: int) -> None:
        """The answer's status and headers arrived, after ``attempts`` attempts."""

    def parts(self, parts: Any, asynchronous: bool, answer: Callable[[], Any] | None = None) -> Any:
        """The stream's part iterator, or one standing in for it; the call ends with it.
        ``answer()``: the answer's ``(status, headers)`` at the end, for a call whose answer
        came while its stream was read (the bidirectional one)."""

    def part(self, data: bytes) -> None:
        """A payload part reached the caller (for streams whose parts are not from ``parts``)."""

    def stream_ended(self, stats: Any, error: BaseException | None, closed: bool) -> None:
        """The stream ended (``closed``: its reader closed it early); ``stats``: the Rust
        stream's ``StreamStats``, or None."""

    def done(self, body: bytes | None = None) -> None:
        """The call ended with its answer (``body``: the whole answer, when there is one)."""

    def failed(self, error: BaseException) -> None:
        """The call ended with ``error`` (raised to the caller next)."""


class JobWatch(Protocol):
    """An asynchronous inference job, from its submission to its result."""

    def submitted(self, inference_id: str | None, output: str | None, failure: str | None) -> None:
        """InvokeEndpointAsync answered: the job runs, its result will be at ``output``."""

    def polled(self) -> None:
        """One look at the output and failure locations found neither."""

    def done(self, output: bytes | None = None) -> None:
        """The result arrived."""

    def failed(self, error: BaseException) -> None:
        """The job failed, timed out, or could not be submitted."""


class Watcher(Protocol):
    """What fills the slot: one watch per call."""

    def call(self, operation: str, params: Mapping[str, Any], server: str | None) -> CallWatch:
        """A call of ``operation`` with botocore-named ``params``, to ``server`` (a URL)."""

    def job(self, endpoint_name: str, params: Mapping[str, Any]) -> JobWatch:
        """An asynchronous inference job on ``endpoint_name``."""


#: The watcher of every call, or None (the default: nothing watches, nothing is paid).
watcher: Watcher | None = None


def call_watch(operation: str, params: Mapping[str, Any], server: str | None) -> CallWatch | None:
    """The watch of a call to ``server`` (its URL); None (and nothing made) while nothing
    watches."""
    w = watcher
    return None if w is None else w.call(operation, params, server)


def answered(watch: CallWatch, status: int, headers: Mapping[str, str], answer: Mapping[str, Any]) -> None:
    """Tell ``watch`` of an answer, counting the attempts its ``ResponseMetadata`` says."""
    meta = answer.get("ResponseMetadata") or {}
    watch.answered(status, headers, int(meta.get("RetryAttempts") or 0) + 1)


class Failures:
    """``with Failures(watch):`` tells ``watch`` (if any) of an exception raised inside, which
    ends it, and lets the exception go on."""

    __slots__ = ("watch",)

    def __init__(self, watch: CallWatch | JobWatch | None) -> None:
        self.watch = watch

    def __enter__(self) -> CallWatch | JobWatch | None:
        return self.watch

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if error is not None and self.watch is not None:
            self.watch.failed(error)


async def watched(watch: CallWatch, pending: Awaitable[tuple[Any, Any]]) -> tuple[Any, Any]:
    """Await an asyncio client's call (its response and parsed answer), telling ``watch`` of the
    answer, or of the failure (which ends the watch)."""
    try:
        response, answer = await pending
    except BaseException as exc:
        watch.failed(exc)
        raise
    answered(watch, response.status, response.headers, answer)
    return response, answer


def answered_botocore(watch: CallWatch, response: Mapping[str, Any]) -> None:
    """Tell ``watch`` of an answer botocore parsed (status and headers from its metadata)."""
    meta = response.get("ResponseMetadata") or {}
    answered(watch, int(meta.get("HTTPStatusCode") or 200), meta.get("HTTPHeaders") or {}, response)
