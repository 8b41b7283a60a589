"""Progress of long steps, told to whoever listens: compute code only calls `task`; the CLI listens with progress
bars (`rnopt.console.ProgressBars`), an API caller with any callback (`listening`), and nobody listens by default.
This module draws nothing and imports no renderer."""
from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Update:
    """One step's progress: `done` of `total` (None: unknown), the latest note, and whether it has ended."""

    key: int  # tells apart steps of the same description, and nested ones
    description: str
    done: int = 0
    total: int | None = None
    note: str | None = None
    finished: bool = False


Listener = Callable[[Update], None]
_listener: ContextVar[Listener | None] = ContextVar("rnopt_progress_listener", default=None)
_keys = itertools.count()


@contextlib.contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Within the block, every step's progress goes to `listener` (None: to nobody)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


@contextlib.contextmanager
def task(description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """Yield `advance(n=1, note=None)`; the listener hears the start, every advance and the end."""
    listener = _listener.get()
    if listener is None:
        yield lambda n=1, note=None: None
        return
    state = Update(next(_keys), description, 0, total)
    listener(state)

    def advance(n: int = 1, note: str | None = None) -> None:
        nonlocal state
        state = replace(state, done=state.done + n, note=note)
        listener(state)

    try:
        yield advance
    finally:
        listener(replace(state, finished=True))
