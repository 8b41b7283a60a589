"""The executor interface: run tasks (rnopt.execute.tasks) somewhere and bring back typed outcomes keyed by
spec id.

`run(task, specs)` runs one task of any kind; `bench(specs, config)` is the timing task plus, when the config
asks for it, one memory task per spec and batch size. Two executors exist: `inprocess` (specs loaded once in
this process and kept for the next task; timing interleaves them: the fair comparison of variants) and
`subprocess` (every task in a fresh process: the only fair way to compare thread counts, which PyTorch sets
process-wide). Memory is measured in a fresh process whatever the executor. A cluster executor is one more
module that ships `task.to_dict()` and the specs to a worker running `rnopt.execute.worker` (or calls
`rnopt.execute.handlers.perform` there) and reads back the same JSON.
"""
from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import ClassVar

from rnopt import memory
from rnopt.artifacts import ArtifactStore
from rnopt.backends import get_backend
from rnopt.bench import BenchConfig, Variant
from rnopt.errors import RnoptError
from rnopt.execute.handlers import Advance
from rnopt.execute.process import kill_workers
from rnopt.execute.tasks import BenchOutcome, Outcome, Task
from rnopt.results import BenchResult
from rnopt.spec import VariantSpec

Progress = Callable[[str], None]


def timing_task(specs: Sequence[VariantSpec], config: BenchConfig) -> Task:
    """The specs timed together, interleaved; memory is not part of timing (`Executor.bench` adds it)."""
    return Task("time", tuple(s.id for s in specs), None, replace(config, memory=False).to_dict())


def memory_task(spec: VariantSpec, batch_size: int) -> Task:
    return Task("memory", (spec.id,), None, {"batch_size": batch_size})


class Executor(ABC):
    name: ClassVar[str]

    @abstractmethod
    def run(self, task: Task, specs: Sequence[VariantSpec], advance: Advance | None = None) -> Outcome:
        """Run one task on the specs it names (`specs` may hold more); a spec that fails is recorded in the
        outcome, not raised, where the kind has more than one spec."""

    def run_all(self, tasks: list[Task], specs: Sequence[VariantSpec]) -> list[Outcome]:
        """Several tasks (a cluster runs them side by side); their outcomes in order."""
        return [self.run(task, specs) for task in tasks]

    _ahead: Future | None = None  # memory measured ahead of the timing (measure_ahead), and how to stop it
    _stop: threading.Event | None = None

    def close(self) -> None:
        """Release what the executor holds (a cluster connection; memory probes started ahead and not taken)."""
        self._stop_ahead()

    def measure_ahead(self, specs: list[VariantSpec], batch_sizes: Sequence[int]) -> None:
        """Start measuring `specs`' memory at `batch_sizes` now, in the background, one probe process at a time:
        `rnopt run` calls it for the variants that need no model file (PyTorch's) before the export, which runs on
        one core. `bench` then takes these figures instead of measuring them again. (Memory, unlike time, does not
        depend on what else the machine runs.) Measured: the timing step 2.8 s shorter, the export up to 1.9 s
        longer, a first run 1.3 s shorter (medians of 8 pairs, benchmarks/README.md)."""
        requests = {(s.id, b): (s, b) for s in specs for b in batch_sizes if measurable(s)}
        if not requests or self._ahead is not None or not memory.supported():
            return
        self._stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnopt-memory-ahead")
        self._ahead = pool.submit(self._measure_until_stopped, requests, self._stop)
        pool.shutdown(wait=False)

    def _measure_until_stopped(self, requests: dict[Hashable, tuple[VariantSpec, int]], stop: threading.Event
                               ) -> dict[Hashable, memory.MemoryUse | RnoptError]:
        measured: dict[Hashable, memory.MemoryUse | RnoptError] = {}
        for key, request in requests.items():
            if stop.is_set():
                break
            measured.update(self.measure_memory({key: request}, workers=1))
        return measured

    def _taken_ahead(self) -> dict[Hashable, memory.MemoryUse | RnoptError]:
        """What `measure_ahead` measured (waiting for it to finish); empty when nothing was started."""
        ahead, self._ahead = self._ahead, None
        return ahead.result() if ahead is not None else {}

    def _stop_ahead(self) -> None:
        """Probes started ahead and never taken (the command failed before its timing) are stopped: no new one
        starts, the running one is killed, and the exit does not wait for them."""
        if self._ahead is not None and not self._ahead.done():
            assert self._stop is not None
            self._stop.set()
            kill_workers()
        self._ahead = None

    def bench(self, specs: list[VariantSpec], config: BenchConfig, on_progress: Progress | None = None) -> BenchOutcome:
        """Time every spec at every batch size of `config`; with `config.memory`, then measure each in a process
        of its own (after all timing, so that no timed run shares the machine with the probe processes; probes
        started ahead finish before the timing starts, and their figures are taken)."""
        if not specs:
            return BenchOutcome()
        ahead = self._taken_ahead()
        outcome = self.run(timing_task(specs, config), specs, _notes(on_progress))
        assert isinstance(outcome, BenchOutcome)
        if config.memory and outcome.results:
            self.add_memory(outcome.results, specs, on_progress, ahead)
        return outcome

    def measure_memory(self, requests: dict[Hashable, tuple[VariantSpec, int]], workers: int | None = None,
                       on_done: Progress | None = None) -> dict[Hashable, memory.MemoryUse | RnoptError]:
        """Each (spec, batch size) as a memory task, a few at a time; each key maps to a use or an error."""

        def one(key: Hashable) -> memory.MemoryUse | RnoptError:
            spec, batch = requests[key]
            try:
                use = self.run(memory_task(spec, batch), [spec])
                assert isinstance(use, memory.MemoryUse)
                return use
            except RnoptError as exc:
                return exc
            finally:
                if on_done:
                    on_done(f"memory of {spec.label}, batch {batch}")

        # Memory does not depend on timing, so several of these processes run at once, one per core.
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            return dict(zip(requests, pool.map(one, requests)))

    def add_memory(self, results: list[BenchResult], specs: list[VariantSpec], on_progress: Progress | None = None,
                   measured: dict[Hashable, memory.MemoryUse | RnoptError] | None = None) -> None:
        """Fill in each result's memory, measured per spec and batch size in processes of their own (those keyed
        (spec id, batch size) in `measured` already were)."""
        if not memory.supported():
            results[0].warnings.append("memory per variant not measured: it needs Linux's /proc")
            return
        by_id = {spec.id: spec for spec in specs}
        keyed = {(r.spec_id, r.batch_size): r for r in results if r.spec_id in by_id}
        ahead = {key: use for key, use in (measured or {}).items() if key in keyed}
        requests = {key: (by_id[key[0]], key[1]) for key in keyed if measurable(by_id[key[0]]) and key not in ahead}
        warned: set[str] = set()
        for (spec_id, batch), use in {**ahead, **self.measure_memory(requests, on_done=on_progress)}.items():
            result = keyed[(spec_id, batch)]
            if isinstance(use, memory.MemoryUse):
                result.memory_process_mb, result.memory_mb, result.memory_gpu_mb = use.peak_rss_mb, use.added_mb, use.gpu_mb
            elif spec_id not in warned:  # one reason per variant is enough
                warned.add(spec_id)
                result.warnings.append(str(use))


def measurable(spec: VariantSpec) -> bool:
    """Whether a probe process measures `spec`'s memory: torch.compile would compile again in every probe
    process, for minutes, so a compiled variant is not measured."""
    return not getattr(spec.config, "compile", False)


def _notes(on_progress: Progress | None) -> Advance | None:
    """A timing task's progress notes, for a caller that listens to notes only."""
    if on_progress is None:
        return None
    return lambda n=1, note=None: on_progress(note) if note else None


def load_variant(spec: VariantSpec, store: ArtifactStore) -> Variant:
    """Build `spec`'s artifact for its runtime and load it in this process."""
    backend = get_backend(spec.runtime)
    model = store.model_for(spec.artifact, backend.formats)
    session = backend.load(model, spec)
    return Variant(spec, session, model)
