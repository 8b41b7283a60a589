"""Executors: where specs run. One interface (`Executor`), a registry; adding one (a cluster) = one module
and one line in `EXECUTORS`."""
from __future__ import annotations

from rnopt.errors import RnoptError
from rnopt.execute.base import BenchOutcome, Executor, load_variant
from rnopt.execute.inprocess import InProcessExecutor
from rnopt.execute.subprocess import SubprocessExecutor

EXECUTORS: dict[str, type[Executor]] = {"inprocess": InProcessExecutor, "subprocess": SubprocessExecutor}


def get_executor(name: str) -> Executor:
    if name not in EXECUTORS:
        raise RnoptError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name]()


__all__ = ["EXECUTORS", "BenchOutcome", "Executor", "InProcessExecutor", "SubprocessExecutor", "get_executor",
           "load_variant"]
