"""One fresh Python process per spec (rnopt.execute.worker), talking JSON: the spec goes in, results come out.

Used to time specs that must not share a process (thread counts), and to measure each variant's memory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rnopt import memory
from rnopt.bench import BenchConfig
from rnopt.errors import RnoptError
from rnopt.execute.base import BenchOutcome, Executor, Progress
from rnopt.results import BenchResult, Failure, build
from rnopt.spec import VariantSpec

WORKER_TIMEOUT_S = 600
# The child imports rnopt from where this process did, installed or a checkout (the GPU check runs uninstalled).
_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); from rnopt.execute.worker import main; sys.exit(main())"
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])


_RUNNING: set[subprocess.Popen] = set()  # workers alive now: stopped with this process (kill_workers)


def kill_workers() -> None:
    """Stop every worker this process started (on SIGTERM/SIGINT: no orphan keeps running)."""
    for proc in list(_RUNNING):
        proc.kill()


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


class SubprocessExecutor(Executor):
    name = "subprocess"

    def bench(self, specs: list[VariantSpec], config: BenchConfig, on_progress: Progress | None = None) -> BenchOutcome:
        outcome = BenchOutcome()
        timing = BenchConfig(**{**config.to_dict(), "memory": False})
        timed: list[VariantSpec] = []
        for spec in specs:
            try:
                answer = run_worker({"task": "bench", "spec": spec.to_dict(), "config": timing.to_dict()},
                                    f"timing {spec.label}")
            except RnoptError as exc:
                outcome.failures.append(Failure(spec.id, spec.label, "bench", str(exc)))
                continue
            outcome.results += [build(BenchResult, r) for r in answer["results"]]
            outcome.failures += [build(Failure, f) for f in answer["failures"]]
            timed.append(spec)
            if on_progress:
                on_progress(f"{spec.label} timed in its own process")
        if config.memory and outcome.results:
            add_memory(outcome.results, timed, on_progress)
        return outcome


def measure_memory(requests: dict[Hashable, tuple[VariantSpec, int]], workers: int | None = None,
                   on_done: Progress | None = None) -> dict[Hashable, memory.MemoryUse | RnoptError]:
    """Each (spec, batch size) in a fresh process, a few at a time; each key maps to a use or an error."""

    def one(key: Hashable) -> memory.MemoryUse | RnoptError:
        spec, batch = requests[key]
        try:
            answer = run_worker({"task": "memory", "spec": spec.to_dict(), "batch_size": batch},
                                f"measuring memory of {spec.label} at batch {batch}")
            return memory.MemoryUse(**answer)
        except RnoptError as exc:
            return exc
        finally:
            if on_done:
                on_done(f"memory of {spec.label}, batch {batch}")

    # Memory does not depend on timing, so several of these processes run at once, one per core.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return dict(zip(requests, pool.map(one, requests)))


def add_memory(results: list[BenchResult], specs: list[VariantSpec], on_progress: Progress | None = None) -> None:
    """Fill in each result's memory, measured per spec and batch size in processes of their own."""
    if not memory.supported():
        results[0].warnings.append("memory per variant not measured: it needs Linux's /proc")
        return
    by_id = {spec.id: spec for spec in specs}
    keyed = {(r.spec_id, r.batch_size): r for r in results if r.spec_id in by_id}
    # torch.compile would compile again in every probe process, for minutes: not measured.
    requests = {key: (by_id[key[0]], key[1]) for key in keyed
                if not getattr(by_id[key[0]].config, "compile", False)}
    warned: set[str] = set()
    for (spec_id, batch), use in measure_memory(requests, on_done=on_progress).items():
        result = keyed[(spec_id, batch)]
        if isinstance(use, memory.MemoryUse):
            result.memory_process_mb, result.memory_mb, result.memory_gpu_mb = use.peak_rss_mb, use.added_mb, use.gpu_mb
        elif spec_id not in warned:  # one reason per variant is enough
            warned.add(spec_id)
            result.warnings.append(str(use))
