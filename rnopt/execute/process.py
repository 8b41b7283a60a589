"""A task in a fresh Python process (`rnopt.execute.worker`), talking JSON: the task and its specs go in on
stdin, the outcome comes back as one JSON line. Used by the subprocess executor for every task, and by any
executor for memory, which is only fair in a process that holds nothing else.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnopt.errors import RnoptError
from rnopt.execute.tasks import OUTCOMES, Outcome, Task
from rnopt.spec import VariantSpec

WORKER_TIMEOUT_S = 600
# The child imports rnopt from where this process did, installed or a checkout (the GPU check runs uninstalled).
_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); from rnopt.execute.worker import main; "
          "from rnopt.exiting import exit_now; exit_now(main())")
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])

_RUNNING: set[subprocess.Popen] = set()  # workers alive now: stopped with this process (kill_workers)


def kill_workers() -> None:
    """Stop every worker this process started (on SIGTERM/SIGINT: no orphan keeps running)."""
    for proc in list(_RUNNING):
        proc.kill()


def request_for(task: Task, specs: Sequence[VariantSpec]) -> dict[str, Any]:
    """The JSON a worker reads: the task and the specs it names (a dataset held in this process does not
    travel: the worker reads the task's data reference)."""
    return {"task": task.to_dict(), "specs": [s.to_dict() for s in specs if s.id in task.spec_ids]}


def run_in_fresh_process(task: Task, specs: Sequence[VariantSpec]) -> Outcome:
    """`task` run by a new worker process; its outcome, or a one-line RnoptError saying what failed."""
    answer = run_worker(request_for(task, specs), describe(task, specs))
    return OUTCOMES[task.kind].from_dict(answer)


def describe(task: Task, specs: Sequence[VariantSpec]) -> str:
    """The task in words, for progress and errors."""
    labels = ", ".join(s.label for s in specs if s.id in task.spec_ids)
    if task.kind == "memory":
        return f"measuring memory of {labels} at batch {task.config.get('batch_size')}"
    return {"time": "timing", "evaluate": "evaluating", "validate": "validating", "embed": "embedding"
            }.get(task.kind, task.kind) + f" {labels}"


def run_worker(request: dict[str, Any], what: str) -> Any:
    """Send `request` to a fresh worker process; its JSON answer, or a one-line RnoptError."""
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, _IMPORT_ROOT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _RUNNING.add(proc)
    try:
        stdout, stderr = proc.communicate(json.dumps(request), timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RnoptError(f"{what} took over {WORKER_TIMEOUT_S} s") from None
    finally:
        if proc.poll() is None:  # interrupted: the worker goes with us
            proc.kill()
        _RUNNING.discard(proc)
    if proc.returncode != 0 or not stdout.strip():
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        raise RnoptError(f"{what} failed: {last[:200]}")
    return json.loads(stdout.strip().splitlines()[-1])
