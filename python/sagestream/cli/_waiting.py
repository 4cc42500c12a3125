"""The progress of ``invoke-async --wait`` on stderr.

On a terminal, one live line drawn by rich: a spinner and the time waited, redrawn on rich's own
timer (not only when S3 is polled), cut to the terminal's width so it never wraps, and erased when
the wait ends, however it ends, Ctrl-C included. A bar is added when the limit is near enough to
move visibly. Elsewhere (a pipe, a log file), one plain line per poll.
"""

from __future__ import annotations

import datetime
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TimeElapsedColumn
from rich.progress_bar import ProgressBar
from rich.table import Column
from rich.text import Text

if TYPE_CHECKING:
    from sagestream import WaitProgress

#: Limits up to this many seconds get a bar; past it a bar would not move, so only the clock shows.
BAR_LIMIT = 600.0
#: Redraws per second of the live line.
REFRESH_PER_SECOND = 8.0


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


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
        self._live = console is not None or stream.isatty()
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
        # Only the status text may shrink (rich collapses the wrapable columns first), and it is
        # cut with an ellipsis rather than wrapped: the display stays one line at any width.
        fixed = Column(no_wrap=True)
        columns: list[ProgressColumn] = [
            SpinnerColumn(table_column=fixed),
            TimeElapsedColumn(table_column=fixed),
        ]
        if self._bound <= BAR_LIMIT:
            columns.append(_LimitBar(self._bound))
        columns.append(_Status(f"limit {_clock(self._bound)}", f"inference {self._inference_id}"))
        progress = Progress(
            *columns,
            console=self._console or Console(file=self._stream),
            transient=True,
            refresh_per_second=REFRESH_PER_SECOND,
        )
        self._task = progress.add_task("", total=None, polls=0)
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


class _LimitBar(ProgressColumn):
    """A bar of the time waited against the limit, moving with the clock."""

    def __init__(self, bound: float) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._bound = bound

    def render(self, task: Task) -> ProgressBar:
        return ProgressBar(total=self._bound, completed=min(task.elapsed or 0.0, self._bound), width=20)


class _Status(ProgressColumn):
    """The limit, the polls so far and the inference id, as one line cut to the width left."""

    def __init__(self, limit: str, name: str) -> None:
        super().__init__()
        self._limit = limit
        self._name = name

    def render(self, task: Task) -> Text:
        polls = task.fields.get("polls", 0)
        text = f"{self._limit} · {polls} poll{'' if polls == 1 else 's'} · {self._name}"
        return Text(text, no_wrap=True, overflow="ellipsis")
