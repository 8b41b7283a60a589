"""Warnings found deep in the library (a model file's unknown metadata keys...) that the command shows at the end.

Library functions that cannot return a warning alongside their result note it here; the CLI drains and
prints them once, with the command's own warnings.
"""
from __future__ import annotations

_PENDING: list[str] = []


def notice(message: str) -> None:
    if message not in _PENDING:
        _PENDING.append(message)


def drain() -> list[str]:
    messages = list(_PENDING)
    _PENDING.clear()
    return messages
