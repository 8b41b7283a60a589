"""The terminal: rich consoles for standard output and standard error, shared by the progress bars and the
renderers (neither imports the other)."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from rnopt.progress import Update

# Piped output (CI logs, `| less`) gets a wide fixed width so tables do not fold into unreadable columns.
_WIDTH = None if sys.stdout.isatty() else 200
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)


class ProgressBars:
    """A `rnopt.progress` listener that draws a bar per running step on standard error (on a terminal only)."""

    def __init__(self) -> None:
        self._bars: Progress | None = None
        self._tasks: dict[int, object] = {}

    def __call__(self, update: Update) -> None:
        if not err_console.is_terminal:
            return
        if update.finished:
            self._end(update.key)
            return
        description = escape(update.description)  # a folder name like "[old]" must not turn into markup
        if update.note:
            description += f" {escape(update.note)}"
        if update.key not in self._tasks:
            if self._bars is None:
                self._bars = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True)
                self._bars.start()
            self._tasks[update.key] = self._bars.add_task(description, total=update.total)
        assert self._bars is not None
        self._bars.update(self._tasks[update.key], completed=update.done, description=description)  # type: ignore[arg-type]

    def _end(self, key: int) -> None:
        task_id = self._tasks.pop(key, None)
        if task_id is not None and self._bars is not None:
            self._bars.remove_task(task_id)  # type: ignore[arg-type]
        if not self._tasks and self._bars is not None:
            self._bars.stop()
            self._bars = None
