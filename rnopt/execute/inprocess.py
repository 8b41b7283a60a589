"""Tasks run in this process: all specs of a timing task loaded here and timed in interleaved rounds
(rnopt.bench), the fair comparison.

Loaded variants are kept, so a task after the timing (an evaluation in `rnopt run`, validation in `tune`) reuses
the same sessions. Memory tasks go to a fresh process: what a variant adds to memory cannot be read in a process
that holds the others.
"""
from __future__ import annotations

from collections.abc import Sequence

from rnopt.artifacts import ArtifactStore
from rnopt.bench import Variant
from rnopt.errors import RnoptError
from rnopt.execute.base import Executor, load_variant
from rnopt.execute.handlers import Advance, perform
from rnopt.execute.process import run_in_fresh_process
from rnopt.execute.tasks import Outcome, Task
from rnopt.results import Failure
from rnopt.spec import VariantSpec


class InProcessExecutor(Executor):
    name = "inprocess"

    def __init__(self, store: ArtifactStore | None = None) -> None:
        self.store = store or ArtifactStore()
        self._loaded: dict[str, Variant] = {}

    def load(self, specs: list[VariantSpec]) -> tuple[list[Variant], list[Failure]]:
        """The specs loaded here (once each); a spec that cannot run becomes a Failure with its reason."""
        variants, failures = [], []
        for spec in specs:
            try:
                if spec.id not in self._loaded:
                    self._loaded[spec.id] = load_variant(spec, self.store)
                variants.append(self._loaded[spec.id])
            except RnoptError as exc:
                failures.append(Failure(spec.id, spec.label, "load", str(exc)))
        return variants, failures

    def run(self, task: Task, specs: Sequence[VariantSpec], advance: Advance | None = None) -> Outcome:
        if task.kind == "memory":
            return run_in_fresh_process(task, specs)
        return perform(task, specs, self.load, self.store, advance)
