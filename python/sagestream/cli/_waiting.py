"""The progress of ``invoke-async --wait`` on stderr.

On a terminal, with rich installed (``sagestream[rich]``), one live line: a spinner and the time
waited, redrawn on rich's own timer (not only when S3 is polled), cut to the terminal's width so
it never wraps, and erased when the wait ends, however it ends, Ctrl-C included; a bar is added
when the limit is near enough to move visibly (:mod:`._waiting_live`). Elsewhere (a pipe, a log
file, or no rich), one plain line per poll.
"""

from __future__ import annotations

import datetime
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from sagestream import WaitProgress

#: Limits up to this many seconds get a bar; past it a bar would not move, so only the clock shows.
BAR_LIMIT = 600.0
#: Redraws per second of the live line.
REFRESH_PER_SECOND = 8.0


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


def _have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


class WaitDisplay:
    """A ``progress`` callback for ``InferenceJob.wait``, and the context it draws in.

    ``console`` is for tests: a ``rich.console.Console`` to draw on instead of ``stream``, which
    then counts as a terminal.
    """

    def __init__(
        self, stream: IO[str], inference_id: str, bound: float, console: Console | None = None
    ) -> None:
        self._stream = stream
        self._inference_id = inference_id
        self._bound = bound
        self._console = console
        self._live = console is not None or (stream.isatty() and _have_rich())
        self._progress: Progress | None = None
        self._task: Any = None
        self._last: WaitProgress | None = None

    def __enter__(self) -> WaitDisplay:
        if self._live:
            self._progress = self._make()
            try:
                self._progress.start()
            except BaseException:  # Ctrl-C while the first frame is drawn: take the line down too
                self._stop()
                raise
        return self

    def _make(self) -> Progress:
        from sagestream.cli._waiting_live import make_progress

        progress, self._task = make_progress(
            bound=self._bound if self._bound <= BAR_LIMIT else None,
            limit=f"limit {_clock(self._bound)}",
            name=f"inference {self._inference_id}",
            console=self._console,
            stream=self._stream,
            refresh_per_second=REFRESH_PER_SECOND,
        )
        return progress

    def __call__(self, event: WaitProgress) -> None:
        """Take one poll's outcome (``InferenceJob.wait(progress=...)``)."""
        self._last = event
        if self._progress is not None:
            self._progress.update(self._task, polls=event.attempts)
        else:
            self._stream.write(f"{self._line(event)}\n")
            self._stream.flush()

    def _line(self, event: WaitProgress) -> str:
        state = event.state.replace("_", " ")
        polls = "1 poll" if event.attempts == 1 else f"{event.attempts} polls"
        return f"{event.inference_id}: {state} after {event.elapsed:.1f}s ({polls})"

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is None:
            return
        self._progress.stop()  # erases the live line and shows the cursor again
        self._progress = None
        if self._last is not None and self._last.state != "waiting":
            # The outcome stays on screen as one finished line.
            self._stream.write(f"{self._line(self._last)}\n")
            self._stream.flush()
