"""Which variant to ship: the fastest one whose accuracy stays within budget of the float reference."""
from __future__ import annotations

from dataclasses import dataclass, field

from rnopt.report.loading import ReportData
from rnopt.report.tables import speedup_interval
from rnopt.results import BenchResult, candidate_key, reference_key, variant_key

ACCURACY_BUDGET = 0.01  # top-1 may drop this much (1 point) for a variant to be recommended


@dataclass
class Baseline:
    """The recommended variant against one runtime's fp32 variant: how many times as fast, and that ratio's 95 %
    interval (from the two medians' intervals)."""

    runtime: str
    speedup: float
    interval: tuple[float, float] | None


@dataclass
class Headline:
    variant: BenchResult
    top1: float | None
    top1_delta: float | None
    reason: str
    metric: str = "top-1"  # the accuracy measure: top-1 for classifiers, mAP for embedding models
    baselines: list[Baseline] = field(default_factory=list)  # each other runtime's first fp32 variant, as timed


@dataclass
class VariantPoint:
    """One variant at the headline batch size, with its accuracy when measured."""

    result: BenchResult
    top1: float | None  # the accuracy measure's value: top-1, or mAP for an embedding model
    top1_delta: float | None
    metric: str = "top-1"


def variant_points(data: ReportData) -> list[VariantPoint]:
    if not data.bench:
        return []
    batch = min(r.batch_size for r in data.bench)
    if data.embeddings and not data.evals:
        return _retrieval_points(data, batch)
    top1 = {variant_key(r): r.top1 for e in data.evals for r in e.results}
    delta = {candidate_key(c): c.top1_delta for e in data.evals for c in e.comparisons}
    references = {reference_key(c) for e in data.evals for c in e.comparisons}
    return [VariantPoint(r, top1.get(variant_key(r)),
                         delta.get(variant_key(r), 0.0 if variant_key(r) in references else None))
            for r in data.bench if r.batch_size == batch]


def _retrieval_points(data: ReportData, batch: int) -> list[VariantPoint]:
    """Embedding models: mAP (same class relevant) and its change against the reference variant."""
    retrieval = {variant_key(r): r for e in data.embeddings for r in e.results}
    base = next((r.map for r in retrieval.values() if r.reference is None), None)
    points = []
    for r in data.bench:
        q = retrieval.get(variant_key(r))
        if r.batch_size != batch:
            continue
        value = q.map if q else None
        delta = value - base if value is not None and base is not None else None
        points.append(VariantPoint(r, value, delta, "mAP"))
    return points


def recommend(data: ReportData, budget: float = ACCURACY_BUDGET) -> Headline | None:
    points = variant_points(data)
    if not points:
        return None
    measured = [p for p in points if p.top1_delta is not None]
    if measured:
        allowed = [p for p in measured if p.top1_delta >= -budget]
        pool = allowed or measured
        reason = (f"fastest variant whose {points[0].metric} is within {budget * 100:.0f} point of the float reference"
                  if allowed else "no variant kept accuracy within budget: showing the most accurate")
        best = min(pool, key=lambda p: p.result.latency_ms.p50) if allowed else max(pool, key=lambda p: p.top1_delta)
    else:
        best = min(points, key=lambda p: p.result.latency_ms.p50)
        reason = "fastest variant (accuracy not measured: evaluate before shipping)"
    bases = [_fp32_base(points, runtime) for runtime in dict.fromkeys(p.result.backend for p in points)]
    baselines = [Baseline(base.backend, base.latency_ms.p50 / best.result.latency_ms.p50,
                          speedup_interval(base, best.result)) for base in bases if base and base is not best.result]
    return Headline(best.result, best.top1, best.top1_delta, reason, points[0].metric, baselines)


def _fp32_base(points: list[VariantPoint], runtime: str) -> BenchResult | None:
    """A runtime's first fp32 variant (in the order they were timed): what a user of that runtime starts from."""
    return next((p.result for p in points if p.result.backend == runtime and p.result.precision == "fp32"), None)
