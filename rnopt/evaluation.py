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
from rnopt.predictions import predicted_batches
from rnopt.preprocessing import Preprocessing
from rnopt.results import Comparison, EmbeddingSection, EvalResult, EvalSection, RetrievalResult
from rnopt.retrieval import KS, fidelity, search


@dataclass(frozen=True)
class RanAs:
    """What a variant ran as: what its result rows name (a row is scored from outputs, which may have been made
    in another process)."""

    label: str
    spec_id: str
    backend: str
    precision: str
    device: str
    head: str

    @classmethod
    def of(cls, variant: Variant) -> "RanAs":
        return cls(variant.label, variant.spec.id, variant.session.backend, variant.session.precision,
                   variant.session.device, variant.model.head)


@dataclass
class _Tally:
    top1: int = 0
    top5: int = 0


class ClassifierScore:
    """Top-1/top-5 of every variant and each candidate's agreement with the first, accumulated batch by batch.
    Fed the same batches in the same order, it gives the same figures bit for bit wherever the outputs came from
    (one process, or shards of whole batches from several)."""

    def __init__(self, rows: list[RanAs]) -> None:
        self.rows = rows
        self.tallies = [_Tally() for _ in rows]
        self.diffs = [OutputComparer() for _ in rows[1:]]
        self.seen = 0

    def add(self, logits: list[np.ndarray], labels: np.ndarray) -> None:
        for row, tally, out in zip(self.rows, self.tallies, logits):
            _score(tally, _scores(row.label, out, len(labels)), labels)
        for diff, out in zip(self.diffs, logits[1:]):
            diff.add(logits[0], out)
        self.seen += len(labels)

    def section(self, dataset: str) -> EvalSection:
        seen = self.seen
        results = [EvalResult(row.label, t.top1 / seen, t.top5 / seen, seen, row.backend, row.precision, row.spec_id,
                              row.device) for row, t in zip(self.rows, self.tallies)]
        reference = self.rows[0]
        comparisons = []
        for row, r, comparer in zip(self.rows[1:], results[1:], self.diffs):
            d = comparer.result()
            comparisons.append(Comparison(reference.label, row.label, r.top1 - results[0].top1, d.top1_agreement,
                                          d.mean_abs_diff, d.max_abs_diff, d.max_rel_diff, reference.spec_id,
                                          row.spec_id))
        return EvalSection(dataset, results, comparisons)


def evaluate(variants: list[Variant], dataset: ImageDataset, preprocessing: Preprocessing,
             batch_size: int = 100, on_batch: Callable[[int], None] | None = None) -> EvalSection:
    """Run every variant on each batch (images decoded once), then score and compare with variants[0]."""
    score = ClassifierScore([RanAs.of(v) for v in variants])
    for outputs, labels in predicted_batches(variants, dataset, preprocessing, batch_size, on_batch):
        score.add(outputs, labels)
    return score.section(dataset.name)


def score_outputs(rows: list[RanAs], outputs: list[np.ndarray], labels: np.ndarray, dataset: str,
                  batch_size: int) -> EvalSection | EmbeddingSection:
    """The figures `evaluate_variants` gives, from every variant's outputs on the whole (aligned, limited) set,
    in image order: fed to the same scoring in the same batches, so they are equal bit for bit."""
    if rows[0].head == "features":
        return score_embeddings(rows, outputs, labels, dataset)
    score = ClassifierScore(rows)
    for start in range(0, len(labels), batch_size):
        score.add([out[start:start + batch_size] for out in outputs], labels[start:start + batch_size])
    return score.section(dataset)


def evaluation_set(variants: list[Variant], dataset: ImageDataset, limit: int | None,
                   batch_size: int) -> tuple[ImageDataset, Preprocessing]:
    """The images the variants are scored on (the dataset's seeded `limit`, labels aligned with the model's
    classes) and their preprocessing, once the variants are checked to be comparable."""
    preprocessing = variants[0].model.preprocessing
    if any(v.model.preprocessing != preprocessing for v in variants):
        raise RnoptError("these models expect different input preprocessing: evaluate them separately")
    check_batch_fits(batch_size, preprocessing.crop)
    if len({v.model.head for v in variants}) > 1:
        raise RnoptError("some of these models output logits and some embeddings: evaluate them separately")
    return align_labels(dataset, variants[0].model.class_names).subset(limit), preprocessing


def evaluate_variants(variants: list[Variant], dataset: ImageDataset, limit: int | None = None, batch_size: int = 100,
                      on_batch: Callable[[int], None] | None = None) -> EvalSection | EmbeddingSection:
    """The variants (the first is the reference) on the dataset's first `limit` images, labels aligned with the
    model's classes; embedding models give an EmbeddingSection."""
    dataset, preprocessing = evaluation_set(variants, dataset, limit, batch_size)
    if variants[0].model.head == "features":
        return evaluate_embeddings(variants, dataset, preprocessing, batch_size, on_batch)
    return evaluate(variants, dataset, preprocessing, batch_size, on_batch)


def predict_part(variants: list[Variant], dataset: ImageDataset, limit: int | None, batch_size: int, start: int,
                 stop: int, on_batch: Callable[[int], None] | None = None, sha256: str | None = None
                 ) -> tuple[str, list[np.ndarray], np.ndarray]:
    """Images [start, stop) of the evaluation set (`evaluation_set`): the set's name, every variant's outputs
    on them in order, and their labels; a shard of an evaluation that `score_outputs` puts back together.
    `sha256`: the shard's content where it was planned (`ImageDataset.content_sha256`), checked here first."""
    whole, preprocessing = evaluation_set(variants, dataset, limit, batch_size)
    part = whole.part(start, stop)
    if sha256 and part.content_sha256() != sha256:
        raise RnoptError(f"images {start}-{stop} of {whole.name} here are not those the evaluation was planned on "
                         f"(their sha256 differs): give every node the same copy of the data")
    if not len(part):
        return whole.name, [np.zeros((0, 0), np.float32) for _ in variants], np.zeros(0, np.int64)
    outputs, labels = embed(variants, part, preprocessing, batch_size, on_batch)
    return whole.name, outputs, labels


def embed(variants: list[Variant], dataset: ImageDataset, preprocessing: Preprocessing, batch_size: int = 100,
          on_batch: Callable[[int], None] | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Every variant's outputs on every image (images decoded once), in image order, and the labels."""
    chunks: list[list[np.ndarray]] = [[] for _ in variants]
    labels = []
    for outputs, batch_labels in predicted_batches(variants, dataset, preprocessing, batch_size, on_batch):
        for chunk, v, output in zip(chunks, variants, outputs):
            chunk.append(_scores(v.label, output, len(batch_labels)))
        labels.append(batch_labels)
    return [np.concatenate(c) for c in chunks], np.concatenate(labels)


def evaluate_embeddings(variants: list[Variant], dataset: ImageDataset, preprocessing: Preprocessing,
                        batch_size: int = 100, on_batch: Callable[[int], None] | None = None) -> EmbeddingSection:
    embeddings, labels = embed(variants, dataset, preprocessing, batch_size, on_batch)
    return score_embeddings([RanAs.of(v) for v in variants], embeddings, labels, dataset.name)


def score_embeddings(rows: list[RanAs], embeddings: list[np.ndarray], labels: np.ndarray,
                     dataset: str) -> EmbeddingSection:
    """Retrieval quality of every variant's embeddings, and each candidate's fidelity to the first's."""
    found = [search(e, labels) for e in embeddings]
    results = []
    for row, e, neighbours in zip(rows, embeddings, found):
        result = RetrievalResult(row.label, len(e), e.shape[1], {str(k): p for k, p in neighbours.precision_at.items()},
                                 neighbours.average_precision, row.backend, row.precision, row.device, row.spec_id)
        if row is not rows[0]:
            f = fidelity(embeddings[0], e, found[0].top, neighbours.top)
            result.reference, result.reference_id = rows[0].label, rows[0].spec_id
            result.cosine_mean, result.cosine_p1, result.cosine_min = f.cosine_mean, f.cosine_p1, f.cosine_min
            result.overlap_at = {str(k): f.overlap_at[k] for k in KS}
        results.append(result)
    return EmbeddingSection(dataset, results)


def _scores(label: str, output: np.ndarray, rows: int) -> np.ndarray:
    """A classifier's output must be one score vector per image; anything else is not a classifier."""
    if output.ndim != 2 or output.shape[0] != rows or output.shape[1] < 1:
        raise RnoptError(f"{label} outputs shape {tuple(output.shape)}, not one score vector per image "
                         f"({rows} x classes): it is not a classifier rnopt can score")
    return output


def _score(tally: _Tally, logits: np.ndarray, labels: np.ndarray) -> None:
    k = min(5, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    tally.top1 += int((logits.argmax(1) == labels).sum())
    tally.top5 += int((top == labels[:, None]).any(1).sum())
