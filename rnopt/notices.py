"""Warnings found deep in the library (a model file's unknown metadata keys, a cache entry rebuilt...) that cannot
travel back with a return value.

Within `collecting()` (every API verb, `rnopt run` and `rnopt tune`) they are gathered into a list that the verb
adds to its record's warnings, so an API caller gets them in the Record it receives; outside any verb they wait in
a queue that the CLI drains and prints at the end of the command.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_PENDING: list[str] = []
_collector: ContextVar[list[str] | None] = ContextVar("rnopt_notices", default=None)


def notice(message: str) -> None:
    heard = _collector.get()
    target = _PENDING if heard is None else heard
    if message not in target:
        target.append(message)


@contextlib.contextmanager
def collecting() -> Iterator[list[str]]:
    """Gather the notices given within the block into the list yielded (a nested block keeps its own)."""
    heard: list[str] = []
    token = _collector.set(heard)
    try:
        yield heard
    finally:
        _collector.reset(token)


def drain() -> list[str]:
    """The notices given outside any `collecting()` block, once."""
    messages = list(_PENDING)
    _PENDING.clear()
    return messages
