"""Tasks: what an executor runs, named completely in JSON so that any process (a worker, a cluster node) can run
it from the task, the specs and the data it names.

A task is a kind, the ids of the specs it runs, a data reference and the kind's settings:

- `time`: the specs timed together in interleaved rounds (`config` is a `BenchConfig`); interleaving is a
  property of the task, so one timing task is the unit that must have a machine to itself.
- `evaluate`: top-1/top-5 (or retrieval metrics) of the specs on labelled images, each compared with the first.
- `validate`: each spec's outputs on validation images named by content (`tune` scores them; a score needs
  the float reference's outputs, so scoring stays with the caller and outputs come back whole).
- `predict`: the specs' outputs on images [start, stop) of an evaluation set, with the labels and what each spec
  ran as: a shard of an evaluation, put back together by the caller (`evaluation.score_outputs`, bit for bit).
- `embed`: one spec's vectors for every image of a folder.
- `memory`: what one spec adds to a fresh process's peak memory at one batch size.
- `probe`: an ONNX Runtime int8 spec with some nodes kept in float (`config["nodes"]`; the second spec is the
  float model it was quantized from), run on validation images named by content: its outputs (one of
  sensitivity's ground truths; the caller scores them).

(Accuracy-aware int8's revert loop still probes inside its step, on the machine that builds it.)

Each kind's outcome is a dataclass with `to_dict()`/`from_dict()`, so what a worker prints is what the
in-process executor returns. Arrays travel as base64 .npy: outputs are compared bit for bit.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rnopt.data import ImageDataset, load_dataset
from rnopt.embedding import Embedded
from rnopt.errors import RnoptError
from rnopt.fileio import decode_array, encode_array
from rnopt.memory import MemoryUse
from rnopt.results import BenchResult, EmbeddingSection, EvalSection, Failure, build
from rnopt.spec import VariantSpec

if TYPE_CHECKING:
    from rnopt.accuracy import ValidationSet  # onnx: not needed where only PyTorch runs

KINDS = ("time", "evaluate", "validate", "predict", "embed", "memory", "probe")


@dataclass(frozen=True)
class DataRef:
    """Images a task reads: a bundled set's name or a folder every worker sees, the first `limit` of its seeded
    order, and for validation images the sha256 of their decoded pixels (checked where they are read again)."""

    data: str
    limit: int | None = None
    sha256: str | None = None
    unlabelled_ok: bool = False
    # A dataset this process already holds (the Python API takes one); never sent: a worker reads `data`.
    local: ImageDataset | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, dataset: ImageDataset, limit: int | None = None, unlabelled_ok: bool = False) -> "DataRef":
        return cls(dataset.name, limit, None, unlabelled_ok, dataset)

    def dataset(self) -> ImageDataset:
        """The whole set (a dataset held here, else read from `data`); the task applies `limit` (evaluation
        aligns labels with the model's classes first)."""
        return self.local if self.local is not None else load_dataset(self.data, self.unlabelled_ok)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "limit": self.limit, "sha256": self.sha256, "unlabelled_ok": self.unlabelled_ok}

    def reference(self) -> dict[str, Any]:
        """The form a recipe step names validation images by (rnopt.recipes.DataSource reads it)."""
        return {"data": self.data, "limit": self.limit, "sha256": self.sha256}


@dataclass(frozen=True)
class Task:
    kind: str
    spec_ids: tuple[str, ...]
    data: DataRef | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RnoptError(f"unknown task kind {self.kind!r}: one of {', '.join(KINDS)}")
        if not self.spec_ids:
            raise RnoptError(f"a {self.kind} task names no spec")
        if self.kind in ("embed", "memory") and len(self.spec_ids) != 1:
            raise RnoptError(f"a {self.kind} task runs one spec, not {len(self.spec_ids)}")
        if self.kind == "probe" and len(self.spec_ids) != 2:
            raise RnoptError("a probe task names two specs: the int8 model and the float model it came from")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "spec_ids": list(self.spec_ids),
                "data": self.data.to_dict() if self.data else None, "config": self.config}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Task":
        try:
            ref = data.get("data")
            return cls(data["kind"], tuple(data["spec_ids"]), DataRef(**ref) if ref else None,
                       dict(data.get("config") or {}))
        except (KeyError, TypeError) as exc:
            raise RnoptError(f"not a task ({type(exc).__name__}: {exc})") from None


@dataclass
class BenchOutcome:
    results: list[BenchResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    environment: dict[str, Any] | None = None  # the machine that timed (rnopt.environment.snapshot, as a dict)
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)  # a cluster's --nodes: each type's machine

    def to_dict(self) -> dict[str, Any]:
        return {"results": [asdict(r) for r in self.results], "failures": [asdict(f) for f in self.failures],
                "environment": self.environment, "machines": self.machines}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BenchOutcome":
        return cls([build(BenchResult, r) for r in data["results"]], [build(Failure, f) for f in data["failures"]],
                   data.get("environment"), data.get("machines") or {})


@dataclass
class EvalOutcome:
    section: EvalSection | EmbeddingSection
    failures: list[Failure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        kind = "embeddings" if isinstance(self.section, EmbeddingSection) else "evals"
        return {"kind": kind, "section": asdict(self.section), "failures": [asdict(f) for f in self.failures]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalOutcome":
        section_class = EmbeddingSection if data["kind"] == "embeddings" else EvalSection
        return cls(build(section_class, data["section"]), [build(Failure, f) for f in data["failures"]])


@dataclass
class OutputsOutcome:
    """Each spec's outputs (a validation or predict task's), by spec id, in image order; the specs that failed.
    A predict task also gives the labels, the evaluation set's name, and what each spec ran as."""

    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    labels: np.ndarray | None = None
    dataset: str = ""
    ran: dict[str, dict[str, str]] = field(default_factory=dict)  # spec id -> evaluation.RanAs fields

    def to_dict(self) -> dict[str, Any]:
        return {"outputs": {k: encode_array(v) for k, v in self.outputs.items()},
                "failures": [asdict(f) for f in self.failures],
                "labels": None if self.labels is None else encode_array(self.labels), "dataset": self.dataset,
                "ran": self.ran}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OutputsOutcome":
        labels = data.get("labels")
        return cls({k: decode_array(v) for k, v in data["outputs"].items()},
                   [build(Failure, f) for f in data["failures"]], None if labels is None else decode_array(labels),
                   data.get("dataset", ""), data.get("ran", {}))


OUTCOMES: dict[str, type] = {"time": BenchOutcome, "evaluate": EvalOutcome, "validate": OutputsOutcome,
                             "predict": OutputsOutcome, "probe": OutputsOutcome,
                             "embed": Embedded, "memory": MemoryUse}
Outcome = BenchOutcome | EvalOutcome | OutputsOutcome | Embedded | MemoryUse


def evaluation_task(specs: Sequence[VariantSpec], data: DataRef, batch_size: int = 100) -> Task:
    """The specs scored on labelled images (the first is the reference the others are compared with)."""
    return Task("evaluate", tuple(s.id for s in specs), data, {"batch_size": batch_size})


def validation_task(specs: Sequence[VariantSpec], validation: "ValidationSet", batch_size: int) -> Task:
    """The specs' outputs on validation images, named by content (a worker decodes them again and checks)."""
    reference = validation.reference()
    return Task("validate", tuple(s.id for s in specs), DataRef(reference["data"], reference["limit"],
                                                                reference["sha256"]), {"batch_size": batch_size})


def prediction_task(evaluation: Task, start: int, stop: int, sha256: str | None = None) -> Task:
    """Images [start, stop) of an evaluation task's set: one shard of it (`sha256`: its content, checked where it
    is read)."""
    return Task("predict", evaluation.spec_ids, evaluation.data,
                {**evaluation.config, "start": start, "stop": stop, "sha256": sha256})


def probe_task(int8: VariantSpec, float_model: VariantSpec, validation: "ValidationSet", nodes: list[str]) -> Task:
    """`int8` with `nodes` kept in float, on the validation images (named by content)."""
    reference = validation.reference()
    return Task("probe", (int8.id, float_model.id), DataRef(reference["data"], reference["limit"],
                                                             reference["sha256"]), {"nodes": list(nodes)})


def embedding_task(spec: VariantSpec, data: DataRef, batch_size: int = 100, skip_bad: bool = False) -> Task:
    return Task("embed", (spec.id,), data, {"batch_size": batch_size, "skip_bad": skip_bad})
