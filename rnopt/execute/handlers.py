"""A task run in this process: what the in-process executor does, and what every worker does with the task it
is sent. Each kind loads its specs through `load` (the executor's, which keeps sessions for the next task) and
calls the compute code (bench, evaluation, embedding, memory); no runtime is named here.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rnopt.artifacts import ArtifactStore
from rnopt.bench import BenchConfig, Variant, bench_variants
from rnopt.embedding import embed_images, require_embedding_model
from rnopt.errors import RnoptError, first_line
from rnopt.evaluation import RanAs, evaluate_variants, predict_part, score_outputs
from rnopt.execute.tasks import BenchOutcome, EvalOutcome, Outcome, OutputsOutcome, Task
from rnopt.memory import measure_here
from rnopt.predictions import cached_outputs
from rnopt.results import Failure
from rnopt.spec import VariantSpec

if TYPE_CHECKING:  # onnx is imported where validation images are read, not where a task is handled
    from rnopt.accuracy import ValidationSet

Advance = Callable[..., None]  # advance(n=1, note=None), as rnopt.progress.task gives
Load = Callable[[list[VariantSpec]], tuple[list[Variant], list[Failure]]]


def specs_of(task: Task, specs: Sequence[VariantSpec]) -> list[VariantSpec]:
    """The task's specs, in the task's order, from those given (which may hold more)."""
    by_id = {spec.id: spec for spec in specs}
    missing = [i for i in task.spec_ids if i not in by_id]
    if missing:
        raise RnoptError(f"the {task.kind} task names spec {missing[0]}, which was not sent with it")
    return [by_id[i] for i in task.spec_ids]


def perform(task: Task, specs: Sequence[VariantSpec], load: Load, store: ArtifactStore,
            advance: Advance | None = None) -> Outcome:
    """Run `task` here and return its outcome; a spec that fails to load or run is a Failure, the others go on."""
    chosen = specs_of(task, specs)
    step = advance or (lambda n=1, note=None: None)
    if task.kind == "memory":  # measured in this process: the caller makes it a fresh one
        return measure_here(chosen[0], int(task.config["batch_size"]))
    if task.kind == "probe":
        return _probe(task, chosen, store)
    variants, failures = load(chosen)
    if task.kind == "time":
        outcome = BenchOutcome(failures=failures)
        if variants:
            outcome.results = bench_variants(variants, BenchConfig.from_dict(task.config),
                                             lambda note: step(1, note))
        return outcome
    if not variants:
        raise RnoptError(failures[0].reason if failures else f"nothing to {task.kind}")
    if task.data is None:
        raise RnoptError(f"a {task.kind} task needs data")
    batch_size = int(task.config.get("batch_size", 100))
    if task.kind == "evaluate":
        section = evaluate_variants(variants, task.data.dataset(), task.data.limit, batch_size, lambda n: step(n))
        return EvalOutcome(section, failures)
    if task.kind == "embed":
        require_embedding_model(variants[0])
        return embed_images(variants[0], task.data.dataset(), batch_size, bool(task.config.get("skip_bad")),
                            lambda n: step(n))
    if task.kind == "predict":
        name, outputs, labels = predict_part(variants, task.data.dataset(), task.data.limit, batch_size,
                                             int(task.config["start"]), int(task.config["stop"]), lambda n: step(n),
                                             task.config.get("sha256"))
        return OutputsOutcome({v.spec.id: out for v, out in zip(variants, outputs)}, failures, labels, name,
                              {v.spec.id: asdict(RanAs.of(v)) for v in variants})
    if task.kind == "validate":
        validation = store.data.validation(task.data.reference(), variants[0].meta)
        return _outputs(variants, failures, validation, batch_size, step)
    raise RnoptError(f"this executor cannot run {task.kind} tasks")


def _probe(task: Task, specs: list[VariantSpec], store: ArtifactStore) -> OutputsOutcome:
    """The int8 file with the task's nodes kept in float, on the validation images: its outputs. The float model
    is pre-processed here as `rnopt quantize` does, so that tensor names match."""
    from rnopt.quantization.sensitivity import pre_process, probe_outputs  # ORT's quantization tools: only here

    if task.data is None:
        raise RnoptError("a probe task needs validation data")
    int8, float_model = (store.model_file(spec.artifact) for spec in specs)
    validation = store.data.validation(task.data.reference(), float_model.meta)
    with tempfile.TemporaryDirectory(prefix="rnopt-probe-") as scratch:
        prepped = Path(scratch) / "float.onnx"
        pre_process(float_model.path, prepped)
        outputs = probe_outputs(prepped, int8.path, list(task.config["nodes"]), validation.images)
    return OutputsOutcome({specs[0].id: outputs})


def merge_predictions(task: Task, parts: list[OutputsOutcome]) -> EvalOutcome:
    """An evaluation put back together from the predict tasks of its shards (in image order): every spec's
    outputs concatenated and scored as one process scores them, so the figures equal a local run's bit for bit.
    A spec that failed in any shard is a Failure, scored nowhere."""
    failed = {f.spec_id: f for part in parts for f in part.failures}
    ids = [i for i in dict.fromkeys(task.spec_ids) if i not in failed and all(i in p.outputs for p in parts)]
    if not ids:
        raise RnoptError(next(iter(failed.values())).reason if failed else "nothing to evaluate")
    used = [p for p in parts if p.labels is not None and len(p.labels)]
    outputs = [np.concatenate([p.outputs[i] for p in used]) for i in ids]
    labels = np.concatenate([p.labels for p in used if p.labels is not None])
    rows = [RanAs(**parts[0].ran[i]) for i in ids]
    section = score_outputs(rows, outputs, labels, parts[0].dataset, int(task.config.get("batch_size", 100)))
    return EvalOutcome(section, list(failed.values()))


def _outputs(variants: list[Variant], failures: list[Failure], validation: ValidationSet, batch_size: int,
             step: Advance) -> OutputsOutcome:
    """Each variant's outputs on the validation images, in order (the prediction cache's where it holds the same
    bits); a variant whose runtime fails is a Failure."""
    outcome = OutputsOutcome(failures=failures)
    batches = validation.batches(batch_size)
    for variant in variants:
        try:
            outcome.outputs[variant.spec.id], stored = cached_outputs(
                variant, f"validation {validation.sha256}", batch_size,
                lambda: np.concatenate([_predict(variant, batch, step) for batch in batches]))
            if stored:
                step(len(validation))
            outcome.ran[variant.spec.id] = asdict(RanAs.of(variant))
        except RnoptError as exc:
            outcome.failures.append(Failure(variant.spec.id, variant.spec.label, "validate", str(exc)))
    return outcome


def _predict(variant: Variant, batch: np.ndarray, step: Advance) -> np.ndarray:
    try:
        result = variant.session.predict(batch)
    except RnoptError:
        raise
    except Exception as exc:  # noqa: BLE001 - a runtime's own error on this variant: the others go on
        raise RnoptError(f"{type(exc).__name__}: {first_line(exc, 200)}") from None
    step(len(batch))
    return result
