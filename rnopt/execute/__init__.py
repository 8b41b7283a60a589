"""Executors: where tasks run. One interface (`Executor.run(task, specs)`), a registry; adding one (a cluster) =
one module and one line in `EXECUTORS`. Tasks (`rnopt.execute.tasks`) are JSON: a kind, spec ids, a data
reference and the kind's settings."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rnopt.errors import RnoptError
from rnopt.execute.base import Executor, load_variant
from rnopt.execute.cluster import RayExecutor
from rnopt.execute.inprocess import InProcessExecutor
from rnopt.execute.subprocess import SubprocessExecutor
from rnopt.execute.tasks import KINDS, BenchOutcome, DataRef, EvalOutcome, OutputsOutcome, Task

# "ray" imports Ray only when it first runs a task (`pip install 'rnopt[ray]'`; RNOPT_CLUSTER names the cluster).
EXECUTORS: dict[str, type[Executor]] = {"inprocess": InProcessExecutor, "subprocess": SubprocessExecutor,
                                        "ray": RayExecutor}


def get_executor(name: "str | Executor") -> Executor:
    """An executor by its name (a new one), or the one given."""
    if isinstance(name, Executor):
        return name
    if name not in EXECUTORS:
        raise RnoptError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name]()


@contextlib.contextmanager
def using(executor: "str | Executor") -> Iterator[Executor]:
    """The executor named (made here, and closed after: a private Ray cluster stops) or the one given (the
    caller's to close)."""
    if isinstance(executor, Executor):
        yield executor
        return
    made = get_executor(executor)
    try:
        yield made
    finally:
        made.close()


__all__ = ["EXECUTORS", "KINDS", "BenchOutcome", "DataRef", "EvalOutcome", "Executor", "InProcessExecutor",
           "OutputsOutcome", "RayExecutor", "SubprocessExecutor", "Task", "get_executor", "load_variant", "using"]
