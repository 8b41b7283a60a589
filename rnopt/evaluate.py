"""Accuracy of one or more models on labelled images, and each candidate compared with the first."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnopt.bench import Variant
from rnopt.data import ImageDataset, align_labels
from rnopt.errors import RnoptError
from rnopt.execute.inprocess import InProcessExecutor
from rnopt.numerics import OutputComparer
from rnopt.preprocessing import Preprocessing
from rnopt.results import Comparison, EvalResult, EvalSection, Failure
from rnopt.spec import VariantSpec


@dataclass
class _Tally:
    top1: int = 0
    top5: int = 0


def evaluate(variants: list[Variant], dataset: ImageDataset, preprocessing: Preprocessing,
             batch_size: int = 100, on_batch: Callable[[int], None] | None = None
             ) -> tuple[list[EvalResult], list[Comparison]]:
    """Run every variant on each batch (images decoded once), then score and compare with variants[0]."""
    tallies = [_Tally() for _ in variants]
    diffs = [OutputComparer() for _ in variants[1:]]
    seen = 0
    for images, labels in dataset.batches(batch_size, preprocessing):
        logits = [v.session.predict(images) for v in variants]
        for tally, out in zip(tallies, logits):
            _score(tally, out, labels)
        for diff, out in zip(diffs, logits[1:]):
            diff.add(logits[0], out)
        seen += len(labels)
        if on_batch:
            on_batch(len(labels))
    results = [EvalResult(v.label, t.top1 / seen, t.top5 / seen, seen, v.session.backend, v.session.precision,
                          v.spec.id, v.session.device) for v, t in zip(variants, tallies)]
    reference = variants[0]
    comparisons = []
    for v, r, comparer in zip(variants[1:], results[1:], diffs):
        d = comparer.result()
        comparisons.append(Comparison(reference.label, v.label, r.top1 - results[0].top1, d.top1_agreement,
                                      d.mean_abs_diff, d.max_abs_diff, d.max_rel_diff, reference.spec.id, v.spec.id))
    return results, comparisons


def evaluate_specs(specs: list[VariantSpec], dataset: ImageDataset, limit: int | None = None, batch_size: int = 100,
                   on_batch: Callable[[int], None] | None = None, executor: InProcessExecutor | None = None
                   ) -> tuple[EvalSection, list[Failure]]:
    """Load the specs (the first that loads is the reference), align the labels, evaluate; a spec that cannot
    load is a Failure and the others go on."""
    variants, failures = (executor or InProcessExecutor()).load(specs)
    if not variants:
        raise RnoptError(failures[0].reason if failures else "nothing to evaluate")
    preprocessing = variants[0].model.preprocessing
    if any(v.model.preprocessing != preprocessing for v in variants):
        raise RnoptError("these models expect different input preprocessing: evaluate them separately")
    dataset = align_labels(dataset, variants[0].model.class_names).subset(limit)
    results, comparisons = evaluate(variants, dataset, preprocessing, batch_size, on_batch)
    return EvalSection(dataset.name, results, comparisons), failures


def _score(tally: _Tally, logits: np.ndarray, labels: np.ndarray) -> None:
    k = min(5, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    tally.top1 += int((logits.argmax(1) == labels).sum())
    tally.top5 += int((top == labels[:, None]).any(1).sum())
