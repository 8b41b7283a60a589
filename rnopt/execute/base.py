"""The executor interface: run specs somewhere and bring back typed results keyed by spec id.

An executor times a list of `VariantSpec`s with one `BenchConfig` and returns a `BenchOutcome`: a result
per spec and batch size, and a `Failure` (with its reason) for each spec that could not be built, loaded
or run; the others go on. Two executors exist: `inprocess` (today's interleaved harness, the one to use
for comparing variants) and `subprocess` (a fresh process per spec: the only fair way to compare thread
counts, since `torch.set_num_threads` is process-wide). A cluster executor would be one more module that
ships `spec.to_dict()` and `config.to_dict()` to a worker running `rnopt.execute.worker` and reads back
the same JSON.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from rnopt.artifacts import ArtifactStore
from rnopt.backends import get_backend
from rnopt.bench import BenchConfig, Variant
from rnopt.results import BenchResult, Failure
from rnopt.spec import VariantSpec

Progress = Callable[[str], None]


@dataclass
class BenchOutcome:
    results: list[BenchResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


class Executor(ABC):
    name: ClassVar[str]

    @abstractmethod
    def bench(self, specs: list[VariantSpec], config: BenchConfig, on_progress: Progress | None = None) -> BenchOutcome:
        """Time every spec at every batch size of `config`; a spec that fails is recorded, not raised."""


def load_variant(spec: VariantSpec, store: ArtifactStore) -> Variant:
    """Build `spec`'s artifact for its runtime and load it in this process."""
    backend = get_backend(spec.runtime)
    model = store.model_for(spec.artifact, backend.formats)
    session = backend.load(model, spec)
    return Variant(spec, session, model)
