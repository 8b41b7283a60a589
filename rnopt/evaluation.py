"""Accuracy of one or more models on labelled images, and each candidate compared with the first.

Classifiers are scored by top-1/top-5; embedding models (the features head) by retrieval quality and their
fidelity to the first model's embeddings (rnopt/retrieval.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnopt.bench import Variant, check_batch_fits
from rnopt.data import ImageDataset, align_labels
from rnopt.errors import RnoptError
from rnopt.numerics import OutputComparer
from rnopt.preprocessing import Preprocessing
from rnopt.results import Comparison, EmbeddingSection, EvalResult, EvalSection, RetrievalResult
from rnopt.retrieval import KS, fidelity, search


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
        logits = [_scores(v, v.session.predict(images), len(labels)) for v in variants]
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


def evaluate_variants(variants: list[Variant], dataset: ImageDataset, limit: int | None = None, batch_size: int = 100,
                      on_batch: Callable[[int], None] | None = None) -> EvalSection | EmbeddingSection:
    """The variants (the first is the reference) on the dataset's first `limit` images, labels aligned with the
    model's classes; embedding models give an EmbeddingSection."""
    preprocessing = variants[0].model.preprocessing
    if any(v.model.preprocessing != preprocessing for v in variants):
        raise RnoptError("these models expect different input preprocessing: evaluate them separately")
    check_batch_fits(batch_size, preprocessing.crop)
    heads = {v.model.head for v in variants}
    if len(heads) > 1:
        raise RnoptError("some of these models output logits and some embeddings: evaluate them separately")
    dataset = align_labels(dataset, variants[0].model.class_names).subset(limit)
    if heads == {"features"}:
        return evaluate_embeddings(variants, dataset, preprocessing, batch_size, on_batch)
    results, comparisons = evaluate(variants, dataset, preprocessing, batch_size, on_batch)
    return EvalSection(dataset.name, results, comparisons)


def embed(variants: list[Variant], dataset: ImageDataset, preprocessing: Preprocessing, batch_size: int = 100,
          on_batch: Callable[[int], None] | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Every variant's embeddings of every image (images decoded once), and the labels."""
    chunks: list[list[np.ndarray]] = [[] for _ in variants]
    labels = []
    for images, batch_labels in dataset.batches(batch_size, preprocessing):
        for chunk, v in zip(chunks, variants):
            chunk.append(_scores(v, v.session.predict(images), len(batch_labels)))
        labels.append(batch_labels)
        if on_batch:
            on_batch(len(batch_labels))
    return [np.concatenate(c) for c in chunks], np.concatenate(labels)


def evaluate_embeddings(variants: list[Variant], dataset: ImageDataset, preprocessing: Preprocessing,
                        batch_size: int = 100, on_batch: Callable[[int], None] | None = None) -> EmbeddingSection:
    embeddings, labels = embed(variants, dataset, preprocessing, batch_size, on_batch)
    found = [search(e, labels) for e in embeddings]
    reference = variants[0]
    results = []
    for v, e, neighbours in zip(variants, embeddings, found):
        result = RetrievalResult(v.label, len(e), e.shape[1], {str(k): p for k, p in neighbours.precision_at.items()},
                                 neighbours.average_precision, v.session.backend, v.session.precision,
                                 v.session.device, v.spec.id)
        if v is not reference:
            f = fidelity(embeddings[0], e, found[0].top, neighbours.top)
            result.reference, result.reference_id = reference.label, reference.spec.id
            result.cosine_mean, result.cosine_p1, result.cosine_min = f.cosine_mean, f.cosine_p1, f.cosine_min
            result.overlap_at = {str(k): f.overlap_at[k] for k in KS}
        results.append(result)
    return EmbeddingSection(dataset.name, results)


def _scores(variant: Variant, output: np.ndarray, rows: int) -> np.ndarray:
    """A classifier's output must be one score vector per image; anything else is not a classifier."""
    if output.ndim != 2 or output.shape[0] != rows or output.shape[1] < 1:
        raise RnoptError(f"{variant.label} outputs shape {tuple(output.shape)}, not one score vector per image "
                         f"({rows} x classes): it is not a classifier rnopt can score")
    return output


def _score(tally: _Tally, logits: np.ndarray, labels: np.ndarray) -> None:
    k = min(5, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    tally.top1 += int((logits.argmax(1) == labels).sum())
    tally.top5 += int((top == labels[:, None]).any(1).sum())
