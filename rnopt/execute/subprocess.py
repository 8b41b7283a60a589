"""Every task in a fresh Python process of its own (rnopt.execute.worker), talking JSON: the task and its specs
go in, the outcome comes out. A timing task runs one process per spec: specs that must not share a process
(thread counts, which PyTorch sets process-wide) are timed apart.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from rnopt.errors import RnoptError
from rnopt.execute.base import Executor
from rnopt.execute.handlers import Advance, specs_of
from rnopt.execute.process import describe, run_in_fresh_process
from rnopt.execute.tasks import BenchOutcome, Outcome, Task
from rnopt.results import Failure
from rnopt.spec import VariantSpec


class SubprocessExecutor(Executor):
    name = "subprocess"

    def run(self, task: Task, specs: Sequence[VariantSpec], advance: Advance | None = None) -> Outcome:
        chosen = specs_of(task, specs)
        if task.kind == "time":
            return self._time_apart(task, chosen, advance)
        outcome = run_in_fresh_process(task, chosen)
        if advance:
            advance(0, f"{describe(task, chosen)}: done in its own process")
        return outcome

    @staticmethod
    def _time_apart(task: Task, specs: list[VariantSpec], advance: Advance | None) -> BenchOutcome:
        """Each spec timed in a process of its own; one that fails is a Failure, the others go on."""
        outcome = BenchOutcome()
        for spec in specs:
            try:
                one = run_in_fresh_process(replace(task, spec_ids=(spec.id,)), [spec])
            except RnoptError as exc:
                outcome.failures.append(Failure(spec.id, spec.label, "bench", str(exc)))
                continue
            assert isinstance(one, BenchOutcome)
            outcome.results += one.results
            outcome.failures += one.failures
            if advance:
                advance(1, f"{spec.label} timed in its own process")
        return outcome
