"""Which variant to ship: the fastest one whose accuracy stays within budget of the float reference."""
from __future__ import annotations

from dataclasses import dataclass

from rnopt.report.loading import ReportData
from rnopt.report.tables import speedup_interval
from rnopt.results import BenchResult, candidate_key, reference_key, variant_key

ACCURACY_BUDGET = 0.01  # top-1 may drop this much (1 point) for a variant to be recommended


@dataclass
class Headline:
    variant: BenchResult
    speedup_vs_torch: float | None
    speedup_vs_ort_fp32: float | None
    top1: float | None
    top1_delta: float | None
    reason: str
    metric: str = "top-1"  # the accuracy measure: top-1 for classifiers, mAP for embedding models
    torch_interval: tuple[float, float] | None = None  # the speed-ups' intervals, from the medians' 95 % intervals
    ort_interval: tuple[float, float] | None = None


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
    torch_base, ort_base = _fp32_base(points, "torch"), _fp32_base(points, "onnxruntime")
    return Headline(best.result, _ratio(torch_base, best.result), _ratio(ort_base, best.result), best.top1,
                    best.top1_delta, reason, points[0].metric, torch_base and speedup_interval(torch_base, best.result),
                    ort_base and speedup_interval(ort_base, best.result))


def _fp32_base(points: list[VariantPoint], backend: str) -> BenchResult | None:
    return next((p.result for p in points if p.result.backend == backend and p.result.precision == "fp32"), None)


def _ratio(base: BenchResult | None, best: BenchResult) -> float | None:
    return base.latency_ms.p50 / best.latency_ms.p50 if base else None
