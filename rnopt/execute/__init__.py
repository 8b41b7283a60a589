"""Executors: where tasks run. One interface (`Executor.run(task, specs)`), a registry; adding one (a cluster) =
one module and one line in `EXECUTORS`. Tasks (`rnopt.execute.tasks`) are JSON: a kind, spec ids, a data
reference and the kind's settings."""
from __future__ import annotations

from rnopt.errors import RnoptError
from rnopt.execute.base import Executor, load_variant
from rnopt.execute.inprocess import InProcessExecutor
from rnopt.execute.subprocess import SubprocessExecutor
from rnopt.execute.tasks import KINDS, BenchOutcome, DataRef, EvalOutcome, OutputsOutcome, Task

EXECUTORS: dict[str, type[Executor]] = {"inprocess": InProcessExecutor, "subprocess": SubprocessExecutor}


def get_executor(name: "str | Executor") -> Executor:
    """An executor by its name (a new one), or the one given."""
    if isinstance(name, Executor):
        return name
    if name not in EXECUTORS:
        raise RnoptError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name]()


__all__ = ["EXECUTORS", "KINDS", "BenchOutcome", "DataRef", "EvalOutcome", "Executor", "InProcessExecutor",
           "OutputsOutcome", "SubprocessExecutor", "Task", "get_executor", "load_variant"]
