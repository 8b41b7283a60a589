"""Retrieval with embeddings: exact nearest neighbours (cosine), their quality, and how far an optimized
variant's neighbours stay from the float model's.

Exact search in NumPy, in chunks of queries: fine for tens of thousands of vectors (the 10,000-image test set
takes seconds). For millions, move to an index library (FAISS, hnswlib); the measures stay the same.

- cosine: of each image's two embeddings (reference vs candidate): mean, 1st percentile, min;
- overlap@k: of the k nearest neighbours in the reference space, the share the candidate also returns;
- precision@k and mAP per variant, with same-class images as the relevant ones.

Why they can disagree: embeddings can agree to a cosine of 0.999 while overlap@10 is far lower, because
many neighbours are near ties, and int8 noise reorders ties; precision@k and mAP then show whether the
reordering changed what is found (same-class neighbours) or only which of several equally good ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KS = (1, 5, 10)
CHUNK = 1024  # queries per similarity block: CHUNK x N floats in memory at once


@dataclass
class Neighbours:
    top: np.ndarray  # N x max(KS) indices of each image's nearest others, nearest first
    precision_at: dict[int, float]  # same-class share of the k nearest (empty: undefined)
    # mAP over the queries that have a same-class image to find (None: without labels, or no such query)
    average_precision: float | None


def _unit(embeddings: np.ndarray) -> np.ndarray:
    e = np.asarray(embeddings, dtype=np.float32)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def search(embeddings: np.ndarray, labels: np.ndarray | None = None, ks: tuple[int, ...] = KS) -> Neighbours:
    """Every image as a query against all the others (itself excluded), by cosine similarity."""
    unit = _unit(embeddings)
    n, kmax = len(unit), max(ks)
    top = np.empty((n, min(kmax, n - 1)), dtype=np.int64)
    hits_at = {k: 0.0 for k in ks}
    ap_sum, queries = 0.0, 0
    for start in range(0, n, CHUNK):
        rows = np.arange(start, min(start + CHUNK, n))
        similarity = unit[rows] @ unit.T
        similarity[np.arange(len(rows)), rows] = -np.inf  # not its own neighbour
        order = np.argsort(-similarity, axis=1, kind="stable")[:, :n - 1]
        top[rows] = order[:, :top.shape[1]]
        if labels is not None:
            relevant = labels[order] == labels[rows][:, None]
            answerable = relevant.any(axis=1)  # a query alone in its class has nothing to find: not scored
            queries += int(answerable.sum())
            for k in ks:
                hits_at[k] += relevant[answerable, :k].sum() / k
            ap_sum += _average_precision(relevant[answerable]).sum()
    if labels is None or queries == 0:  # no labels, or every image alone in its class: undefined, not 0 %
        return Neighbours(top, {}, None)
    return Neighbours(top, {k: hits_at[k] / queries for k in ks}, ap_sum / queries)


def _average_precision(relevant: np.ndarray) -> np.ndarray:
    """Per query: the mean of precision@rank over the ranks of its relevant items (0 when there are none)."""
    hits = np.cumsum(relevant, axis=1)
    precision_at_rank = hits / np.arange(1, relevant.shape[1] + 1)
    count = relevant.sum(axis=1)
    return np.where(count > 0, (precision_at_rank * relevant).sum(axis=1) / np.maximum(count, 1), 0.0)


def cosines(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Each image's cosine similarity between its two embeddings."""
    return (_unit(reference) * _unit(candidate)).sum(axis=1)


@dataclass
class Fidelity:
    cosine_mean: float
    cosine_p1: float
    cosine_min: float
    overlap_at: dict[int, float]


def fidelity(reference: np.ndarray, candidate: np.ndarray, reference_top: np.ndarray, candidate_top: np.ndarray,
             ks: tuple[int, ...] = KS) -> Fidelity:
    cosine = cosines(reference, candidate)
    overlap = {}
    for k in ks:
        shared = (candidate_top[:, :k, None] == reference_top[:, None, :k]).any(axis=2).sum(axis=1)
        overlap[k] = float(shared.mean() / k)
    return Fidelity(float(cosine.mean()), float(np.percentile(cosine, 1)), float(cosine.min()), overlap)
