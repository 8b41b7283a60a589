"""All specs loaded in this process and timed in interleaved rounds (rnopt.bench): the fair comparison.

Loaded variants are kept, so an evaluation after the timing (as in `rnopt run`) reuses the same sessions.
"""
from __future__ import annotations

from rnopt.artifacts import ArtifactStore
from rnopt.bench import BenchConfig, Variant, bench_variants
from rnopt.execute.base import BenchOutcome, Executor, Progress, load_variant
from rnopt.execute.subprocess import add_memory
from rnopt.errors import RnoptError
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

    def bench(self, specs: list[VariantSpec], config: BenchConfig, on_progress: Progress | None = None) -> BenchOutcome:
        variants, failures = self.load(specs)
        outcome = BenchOutcome(failures=failures)
        if variants:
            outcome.results = bench_variants(variants, config, on_progress)
        if config.memory and outcome.results:
            # After all timing, so that no timed run shares the machine with the probe processes.
            add_memory(outcome.results, [v.spec for v in variants], on_progress)
        return outcome
