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
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import ClassVar

from rnopt import memory
from rnopt.artifacts import ArtifactStore
from rnopt.backends import get_backend
from rnopt.bench import BenchConfig, Variant
from rnopt.errors import RnoptError
from rnopt.execute.handlers import Advance
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

    def close(self) -> None:
        """Release what the executor holds (a cluster connection); nothing for a local one."""

    def bench(self, specs: list[VariantSpec], config: BenchConfig, on_progress: Progress | None = None) -> BenchOutcome:
        """Time every spec at every batch size of `config`; with `config.memory`, then measure each in a process
        of its own (after all timing, so that no timed run shares the machine with the probe processes)."""
        if not specs:
            return BenchOutcome()
        outcome = self.run(timing_task(specs, config), specs, _notes(on_progress))
        assert isinstance(outcome, BenchOutcome)
        if config.memory and outcome.results:
            self.add_memory(outcome.results, specs, on_progress)
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

    def add_memory(self, results: list[BenchResult], specs: list[VariantSpec], on_progress: Progress | None = None
                   ) -> None:
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
        for (spec_id, batch), use in self.measure_memory(requests, on_done=on_progress).items():
            result = keyed[(spec_id, batch)]
            if isinstance(use, memory.MemoryUse):
                result.memory_process_mb, result.memory_mb, result.memory_gpu_mb = use.peak_rss_mb, use.added_mb, use.gpu_mb
            elif spec_id not in warned:  # one reason per variant is enough
                warned.add(spec_id)
                result.warnings.append(str(use))


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
