"""The live line of ``invoke-async --wait`` on a terminal, drawn by rich (``sagestream[rich]``).

Imported only when rich is installed and stderr is a terminal (:mod:`._waiting`).
"""

from __future__ import annotations

from typing import IO, Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TimeElapsedColumn
from rich.progress_bar import ProgressBar
from rich.table import Column
from rich.text import Text


def make_progress(
    *,
    bound: float | None,
    limit: str,
    name: str,
    console: Console | None,
    stream: IO[str],
    refresh_per_second: float,
) -> tuple[Progress, Any]:
    """A transient one-line progress display and its task: spinner, clock, a bar of the time
    waited against ``bound`` (None: no bar), then ``limit``, the polls and ``name``."""
    # Only the status text may shrink (rich collapses the wrapable columns first), and it is
    # cut with an ellipsis rather than wrapped: the display stays one line at any width.
    fixed = Column(no_wrap=True)
    columns: list[ProgressColumn] = [
        SpinnerColumn(table_column=fixed),
        TimeElapsedColumn(table_column=fixed),
    ]
    if bound is not None:
        columns.append(_LimitBar(bound))
    columns.append(_Status(limit, name))
    progress = Progress(
        *columns,
        console=console or Console(file=stream),
        transient=True,
        refresh_per_second=refresh_per_second,
    )
    task = progress.add_task("", total=None, polls=0)
    return progress, task


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
