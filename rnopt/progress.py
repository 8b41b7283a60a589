"""Progress bars for long steps; silent when output is not a terminal or --quiet is given."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from rnopt.console import err_console

_enabled = True


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


@contextlib.contextmanager
def task(description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """Yield `advance(n=1, note=None)`; shows a bar with elapsed time on a terminal."""
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err_console, transient=True,
                        disable=not (_enabled and err_console.is_terminal))
    description = escape(description)  # a folder name like "[old]" must not turn into markup
    with progress:
        task_id = progress.add_task(description, total=total)

        def advance(n: int = 1, note: str | None = None) -> None:
            progress.update(task_id, advance=n, description=f"{description} {escape(note)}" if note else description)

        yield advance
