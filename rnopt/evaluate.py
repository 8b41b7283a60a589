"""Accuracy of one or more models on labelled images, and each candidate compared with the first."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnopt.backends.base import Session
from rnopt.data import ImageDataset
from rnopt.models.registry import Preprocessing
from rnopt.report.results import Comparison, EvalResult


@dataclass
class _Tally:
    top1: int = 0
    top5: int = 0


@dataclass
class _Diff:
    agree: int = 0
    abs_sum: float = 0.0
    abs_max: float = 0.0
    count: int = 0


def evaluate(models: list[tuple[str, Session]], dataset: ImageDataset, preprocessing: Preprocessing,
             batch_size: int = 100, on_batch: Callable[[int], None] | None = None
             ) -> tuple[list[EvalResult], list[Comparison]]:
    """Run every model on each batch (images decoded once), then score and compare with models[0]."""
    tallies = [_Tally() for _ in models]
    diffs = [_Diff() for _ in models[1:]]
    seen = 0
    for images, labels in dataset.batches(batch_size, preprocessing):
        logits = [session.predict(images) for _, session in models]
        for tally, out in zip(tallies, logits):
            _score(tally, out, labels)
        for diff, out in zip(diffs, logits[1:]):
            _compare(diff, logits[0], out)
        seen += len(labels)
        if on_batch:
            on_batch(len(labels))
    results = [EvalResult(name, t.top1 / seen, t.top5 / seen, seen, session.backend, session.precision)
               for (name, session), t in zip(models, tallies)]
    comparisons = [Comparison(models[0][0], name, r.top1 - results[0].top1, d.agree / seen,
                              d.abs_sum / max(d.count, 1), d.abs_max)
                   for (name, _), r, d in zip(models[1:], results[1:], diffs)]
    return results, comparisons


def _score(tally: _Tally, logits: np.ndarray, labels: np.ndarray) -> None:
    k = min(5, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    tally.top1 += int((logits.argmax(1) == labels).sum())
    tally.top5 += int((top == labels[:, None]).any(1).sum())


def _compare(diff: _Diff, reference: np.ndarray, candidate: np.ndarray) -> None:
    delta = np.abs(reference - candidate)
    diff.agree += int((reference.argmax(1) == candidate.argmax(1)).sum())
    diff.abs_sum += float(delta.sum())
    diff.abs_max = max(diff.abs_max, float(delta.max()))
    diff.count += delta.size
