"""`rnopt compare-runs`: match two sets of results and judge each change against tolerance and noise.

A latency change counts only when it exceeds both the tolerance and what the noise alone could
explain: the 95 % interval of the difference of the two medians, from each median's own interval
(order statistics, rnopt/stats.py), so a noisy machine does not fail a CI gate on its own noise.
Version-1 results carry no interval: for them the noise is three standard errors of the difference
(standard error of a median ~ 1.25 * stdev / sqrt(n), from the cv and the iteration count). Accuracy is deterministic on fixed data: only the tolerance applies. So, nearly, is
memory measured per variant (four repeats of each ResNet-20 variant here stayed within 1.3 MB): a change
counts when it exceeds the tolerance and MEMORY_FLOOR_MB.
"""
from __future__ import annotations

import math

from rnopt.errors import RnoptError
from rnopt.report.loading import ReportData
from rnopt.results import BenchResult, EvalResult, MetricChange, RetrievalResult, RunComparison
from rnopt.report.tables import Table

NOISE_SIGMAS = 3.0
MEMORY_FLOOR_MB = 2.0


def _key(r: BenchResult, by_id: bool = False) -> tuple:
    """What joins a result across runs: its stable spec id and batch size (schema 3 on both sides), else its
    label, runtime, device, precision and batch size (older files, whose ids depended on paths)."""
    if by_id:
        return (r.spec_id, r.batch_size, r.machine)
    return (r.model, r.backend, r.device, r.precision, r.batch_size)


def _relative_se(r: BenchResult) -> float:
    return 1.2533 * r.cv / math.sqrt(max(r.iterations, 1))


def latency_noise(base: BenchResult, cur: BenchResult) -> float:
    """The relative change of the median that noise alone could explain."""
    if base.p50_ci is not None and cur.p50_ci is not None:
        return math.hypot(base.p50_ci, cur.p50_ci)
    return NOISE_SIGMAS * math.hypot(_relative_se(base), _relative_se(cur))


def latency_verdict(base: BenchResult, cur: BenchResult, tolerance: float) -> MetricChange:
    change = cur.latency_ms.p50 / base.latency_ms.p50 - 1
    noise = latency_noise(base, cur)
    if abs(change) <= tolerance:
        verdict = "same"
    elif abs(change) <= noise:
        verdict = "within noise"
    else:
        verdict = "slower" if change > 0 else "faster"
    return MetricChange(_label(cur), "p50 latency ms", base.latency_ms.p50, cur.latency_ms.p50, change, noise, verdict)


def memory_verdict(base: BenchResult, cur: BenchResult, tolerance: float) -> MetricChange | None:
    if base.memory_mb is None or cur.memory_mb is None:
        return None
    change = cur.memory_mb / base.memory_mb - 1 if base.memory_mb > 0 else 0.0
    if abs(change) <= tolerance or abs(cur.memory_mb - base.memory_mb) <= MEMORY_FLOOR_MB:
        verdict = "same"
    else:
        verdict = "more memory" if change > 0 else "less memory"
    return MetricChange(_label(cur), "memory MB", base.memory_mb, cur.memory_mb, change, None, verdict)


def _label(r: BenchResult) -> str:
    return f"{r.model} | {r.backend} {r.device} {r.precision} | batch {r.batch_size}"


def compare_runs(baseline: ReportData, current: ReportData, latency_tolerance: float = 0.10,
                 accuracy_tolerance: float = 0.005, memory_tolerance: float = 0.10,
                 allow_missing: bool = False) -> RunComparison:
    """Every change, and the regressions among them. A gate that cannot compare fails: no result in the
    current run, no variant in common, a non-finite figure, or (unless `allow_missing`) a variant missing."""
    for name, value in (("latency", latency_tolerance), ("accuracy", accuracy_tolerance),
                        ("memory", memory_tolerance)):
        if not (math.isfinite(value) and value >= 0):
            raise RnoptError(f"--{name}-tolerance must be a finite number of zero or more, got {value * 100:g}")
    outcome = RunComparison(environment_differences=environment_differences(baseline, current))
    by_id = baseline.stable_ids and baseline.id_scheme == current.id_scheme and \
        all(r.spec_id for r in baseline.bench + current.bench)
    base, cur = _by_key(baseline.bench, "baseline", by_id), _by_key(current.bench, "current", by_id)
    _refuse_what_cannot_be_compared(baseline, current, base, cur, outcome)
    for key in list(base) + [k for k in cur if k not in base]:
        if key in base and key in cur:
            row = latency_verdict(base[key], cur[key], latency_tolerance)
        else:
            present = cur.get(key) or base[key]
            row = MetricChange(_label(present), "p50 latency ms", base[key].latency_ms.p50 if key in base else None,
                         cur[key].latency_ms.p50 if key in cur else None, None, None,
                         "new" if key in cur else "missing")
        outcome.rows.append(row)
        if row.verdict == "missing" and not allow_missing:
            outcome.regressions.append(f"{row.key} is missing from the current run (--allow-missing accepts that)")
        if row.verdict == "slower":
            outcome.regressions.append(f"{row.key} is {row.change:.1%} slower")
        memory = memory_verdict(base[key], cur[key], memory_tolerance) if key in base and key in cur else None
        if memory:
            outcome.rows.append(memory)
            if memory.verdict == "more memory":
                outcome.regressions.append(f"{memory.key} needs {memory.change:.1%} more memory")
    _compare_accuracy(baseline, current, accuracy_tolerance, outcome, by_id)
    _compare_retrieval(baseline, current, accuracy_tolerance, outcome, by_id)
    return outcome


def _by_key(results: list[BenchResult], side: str, by_id: bool) -> dict[tuple, BenchResult]:
    """Results by what joins them; two results that would join as one are refused, never one silently dropped."""
    keyed: dict[tuple, BenchResult] = {}
    for r in results:
        if _key(r, by_id) in keyed:
            raise RnoptError(f"the {side} holds two results for {_label(r)} (two variants with the same label, e.g. "
                             f"two files of the same name in different folders): compare runs whose variants have "
                             f"distinct labels")
        keyed[_key(r, by_id)] = r
    return keyed


def _comparable(data: ReportData) -> bool:
    return bool(data.bench or data.evals or data.embeddings)


def _refuse_what_cannot_be_compared(baseline: ReportData, current: ReportData, base: dict, cur: dict,
                                    outcome: RunComparison) -> None:
    if not _comparable(baseline):
        outcome.regressions.append("the baseline holds no timing or accuracy results (an export or quantize file?): "
                                   "nothing to compare")
    elif not _comparable(current):
        outcome.regressions.append("the current run has no results at all")
    elif base and cur and not set(base) & set(cur):
        outcome.regressions.append("the two runs share no variant (model, backend, device, precision, batch): "
                                   "nothing was compared")
    for r in current.bench:
        figures = (r.latency_ms.p50, r.latency_ms.mean, r.throughput_ips)
        if not all(math.isfinite(x) and x > 0 for x in figures):
            outcome.regressions.append(f"{_label(r)} has a non-finite or non-positive latency or throughput")


def _variant(result: EvalResult | RetrievalResult, by_id: bool) -> str:
    return result.spec_id if by_id and result.spec_id else result.model


def _compare_accuracy(baseline: ReportData, current: ReportData, tolerance: float, outcome: RunComparison,
                      by_id: bool = False) -> None:
    base = {(e.dataset, _variant(r, by_id)): r.top1 for e in baseline.evals for r in e.results}
    for section in current.evals:
        for r in section.results:
            before = base.get((section.dataset, _variant(r, by_id)))
            if before is None:
                continue
            if not math.isfinite(r.top1):
                outcome.regressions.append(f"{r.model} | {section.dataset} has a non-finite top-1")
                continue
            change = r.top1 - before
            verdict = "same" if abs(change) <= tolerance else ("less accurate" if change < 0 else "more accurate")
            row = MetricChange(f"{r.model} | {section.dataset}", "top-1", before, r.top1, change, None, verdict)
            outcome.rows.append(row)
            if verdict == "less accurate":
                outcome.regressions.append(f"{row.key} lost {-change * 100:.2f} points of top-1")


def _compare_retrieval(baseline: ReportData, current: ReportData, tolerance: float, outcome: RunComparison,
                       by_id: bool = False) -> None:
    """Embedding models: mAP on the same images, with the accuracy tolerance (in points, as top-1)."""
    base = {(e.dataset, _variant(r, by_id)): r.map for e in baseline.embeddings for r in e.results}
    for section in current.embeddings:
        for r in section.results:
            before = base.get((section.dataset, _variant(r, by_id)))
            if before is None or r.map is None:
                continue
            change = r.map - before
            verdict = "same" if abs(change) <= tolerance else ("less accurate" if change < 0 else "more accurate")
            row = MetricChange(f"{r.model} | {section.dataset}", "mAP", before, r.map, change, None, verdict)
            outcome.rows.append(row)
            if verdict == "less accurate":
                outcome.regressions.append(f"{row.key} lost {-change * 100:.2f} points of mAP")


def environment_differences(baseline: ReportData, current: ReportData) -> list[str]:
    if not baseline.environments or not current.environments:
        return []
    a, b = baseline.environments[0], current.environments[0]
    diffs = [f"{name}: {x} -> {y}" for name, x, y in (
        ("CPU", a.cpu_model, b.cpu_model), ("ISA", ",".join(a.isa), ",".join(b.isa)),
        ("logical cores", a.logical_cores, b.logical_cores)) if x != y]
    diffs += [f"{pkg}: {a.versions.get(pkg)} -> {b.versions.get(pkg)}"
              for pkg in sorted(set(a.versions) | set(b.versions)) if a.versions.get(pkg) != b.versions.get(pkg)]
    return [f"environments differ ({d}): the comparison may reflect the machine, not the change" for d in diffs]


def comparison_rows_table(outcome: RunComparison) -> Table:
    def fmt(row: MetricChange, value: float | None) -> str:
        if value is None:
            return ""
        return {"p50 latency ms": f"{value:.3f}", "memory MB": f"{value:,.1f}"}.get(row.metric, f"{value:.2%}")

    rows = []
    for row in outcome.rows:
        if row.change is None:
            change = ""
        elif row.metric in ("p50 latency ms", "memory MB"):
            change = f"{row.change:+.1%}"
        else:
            change = f"{row.change * 100:+.2f} points"
        noise = f"±{row.noise:.1%}" if row.noise is not None else ""
        rows.append([row.key, row.metric, fmt(row, row.baseline), fmt(row, row.current), change, noise, row.verdict])
    return Table("Baseline vs current", ["result", "metric", "baseline", "current", "change", "noise (3 s.e.)",
                                         "verdict"], rows)
