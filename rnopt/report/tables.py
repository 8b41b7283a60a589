"""Tables built once from result dataclasses; the terminal and Markdown renderers only lay them out."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rnopt.environment import Environment
from rnopt.stats import MedianCI, ratio_interval
from rnopt.results import (
    AccuracyAwareResult,
    BenchResult,
    Candidate,
    EmbedSummary,
    EmbeddingSection,
    ModelEntry,
    RuntimeEntry,
    Comparison,
    EvalResult,
    EvalSection,
    ExportCheck,
    ExportResult,
    OptimizeResult,
    QuantizeResult,
    SearchResult,
    SensitivityResult,
    candidate_key,
    variant_key,
)


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def _mb(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:.2f} MB"


# Columns shown only when some result has the figure: memory measured per variant in a process of its
# own (rnopt/memory.py), and GPU memory where a GPU ran.
_OPTIONAL_BENCH_COLUMNS: list[tuple[str, Callable[[BenchResult], float | None]]] = [
    ("memory MB", lambda r: r.memory_mb),
    ("GPU memory MB", lambda r: r.memory_gpu_mb),
    ("peak GPU MB", lambda r: r.peak_gpu_mb),
]


def bench_table(results: list[BenchResult]) -> Table:
    optional = [(h, get) for h, get in _OPTIONAL_BENCH_COLUMNS if any(get(r) is not None for r in results)]
    rows = [[r.model, r.backend + (f" ({r.settings})" if r.settings else ""), r.device, r.precision,
             str(r.batch_size) + (f" x{r.streams}" if r.streams > 1 else ""), str(r.threads), str(r.iterations),
             f"{r.latency_ms.mean:.3f}", f"{r.latency_ms.p50:.3f}", ci_cell(r), f"{r.latency_ms.p90:.3f}",
             f"{r.latency_ms.p99:.3f}", f"{r.latency_ms.min:.3f}", f"{r.latency_ms.max:.3f}",
             f"{r.cv:.1%}" + (" !" if r.warnings else ""),
             f"{r.outlier_share:.1%}" if r.outlier_share is not None else "", f"{r.throughput_ips:,.0f}",
             f"{r.peak_rss_mb:,.0f}" if r.peak_rss_mb else ""]
            + [_mb_cell(get(r)) for _, get in optional] for r in results]
    headers = ["model", "backend", "device", "precision", "batch", "threads", "iters", "mean ms", "p50 ms",
               "p50 95% CI", "p90 ms", "p99 ms", "min ms", "max ms", "cv", "calls >3x p50", "images/s",
               "peak RSS MB"]
    note = ("p50 95% CI: the median's confidence interval, as ± its half-width (order statistics); "
            "! = see warnings; peak RSS: the benchmarking process, all variants together")
    if any(header == "memory MB" for header, _ in optional):
        note += "; memory: what the variant adds over its bare runtime, in a process of its own"
    return Table("Latency", headers + [h for h, _ in optional], rows, note)


def median_interval(r: BenchResult) -> MedianCI | None:
    return MedianCI(r.latency_ms.p50, *r.p50_ci_ms) if r.p50_ci_ms else None


def speedup_interval(reference: BenchResult, candidate: BenchResult) -> tuple[float, float] | None:
    """How much faster `candidate` is than `reference` (ratio of medians), as an interval."""
    ref, cand = median_interval(reference), median_interval(candidate)
    return ratio_interval(ref, cand) if ref and cand else None


def ci_cell(r: BenchResult) -> str:
    """"±0.4%": the median's 95 % interval (empty for version-1 results, which have none)."""
    return f"±{r.p50_ci:.1%}" if r.p50_ci is not None else ""


def ratio_cell(ratio: float, interval: tuple[float, float] | None) -> str:
    return f"{ratio:.2f}x" + (f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else "")


def _mb_cell(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def eval_table(results: list[EvalResult], dataset: str) -> Table:
    rows = [[r.model, r.backend, r.precision, f"{r.top1:.2%}", f"{r.top5:.2%}", f"{r.n:,}"] for r in results]
    return Table(f"Accuracy on {dataset}", ["model", "backend", "precision", "top-1", "top-5", "images"], rows)


def comparison_table(comparisons: list[Comparison]) -> Table:
    rows = [[c.candidate, c.reference, f"{c.top1_delta * 100:+.2f}", f"{c.agreement:.2%}",
             f"{c.mean_abs_logit_diff:.4f}", f"{c.max_abs_logit_diff:.4f}", _relative(c.max_rel_logit_diff)]
            for c in comparisons]
    return Table("Candidate vs reference", ["candidate", "reference", "top-1 delta (points)", "top-1 agreement",
                                            "mean |logit diff|", "max |logit diff|", "max |diff| / max |logit|"],
                 rows)


def _relative(value: float | None) -> str:
    return "" if value is None else f"{value:.2e}"


def export_table(result: ExportResult) -> Table:
    def ok(c: ExportCheck) -> bool:
        rel_ok = result.rtol is None or c.max_rel_diff is None or c.max_rel_diff <= result.rtol
        return rel_ok and (result.atol is None or c.max_abs_diff <= result.atol)

    rows = [[str(c.batch_size), f"{c.max_abs_diff:.3g}", _relative(c.max_rel_diff), f"{c.top1_agreement:.0%}",
             "ok" if ok(c) else "FAIL"] for c in result.checks]
    bounds = ", ".join(f"{name} {value:g}" for name, value in (("rtol", result.rtol), ("atol", result.atol))
                       if value is not None)
    note = (f"{result.output}: opset {result.opset}, {'dynamic' if result.dynamic_batch else 'static'} batch, "
            f"{_mb(result.size_bytes)}, {bounds}")
    return Table(f"Export check: {result.model} (ONNX Runtime vs PyTorch, random inputs)",
                 ["batch", "max abs diff", "max |diff| / max |logit|", "top-1 agreement", "status"], rows, note)


def optimize_table(result: OptimizeResult) -> Table:
    ops = sorted(set(result.ops_before) | set(result.ops_after))
    rows = [[op, str(result.ops_before.get(op, 0)), str(result.ops_after.get(op, 0))] for op in ops]
    rows.append(["total", str(sum(result.ops_before.values())), str(sum(result.ops_after.values()))])
    note = (f"level {result.level}; re-check vs input: max abs diff {result.max_abs_diff:.3g}, "
            f"top-1 agreement {result.top1_agreement:.0%}")
    return Table(f"Operators: {result.input} -> {result.output}", ["op", "before", "after"], rows, note)


def quantize_table(result: QuantizeResult) -> Table:
    rows = [["format", f"{result.format}, per-channel weights" if result.per_channel else result.format],
            ["types", f"activations {result.activation_type}, weights {result.weight_type}"],
            ["calibration", f"{result.method} on {result.calib_size} images of {result.calib_data}"],
            ["size", f"{_mb(result.size_before_bytes)} -> {_mb(result.size_after_bytes)}"],
            ["time", f"{result.quantize_time_s:.1f} s"]]
    return Table(f"Quantized {result.input} -> {result.output}", ["setting", "value"], rows)


def score_text(value: float | None, measure: str) -> str:
    """A score (a fraction in every record) as people read it: top-1 and mAP in points ("91.32"), a cosine as is."""
    if value is None:
        return ""
    return f"{value:.4f}" if measure == "cosine" else f"{value * 100:.2f}"


def drop_text(value: float, measure: str, unit: str = "") -> str:
    """A drop (a fraction: of the score, or of float's score when relative) in the same reading as `score_text`."""
    return f"{value:+.4f}" if measure == "cosine" else f"{value * 100:+.2f}{unit}"


_score, _drop = score_text, drop_text


def accuracy_aware_tables(aware: AccuracyAwareResult) -> list[Table]:
    """The outcome (validation and test figures), every revert step, and the latency cost of the reverts."""
    m = aware.measure
    rows = [["bound", f"{aware.bound} on {aware.data} ({aware.images} images): "
                      + ("met" if aware.met else "NOT met")],
            [f"{m} on validation", f"float {_score(aware.float_score, m)}, full int8 {_score(aware.int8_score, m)}, "
                                   f"written {_score(aware.final_score, m)} (drop {_drop(aware.final_drop, m)})"],
            ["kept in float", f"{len(aware.kept_float)} of {aware.layers_quantized} layers"
                              + (f": {', '.join(aware.kept_float)}" if aware.kept_float else "")],
            ["where they run", aware.runs_float_as]]
    if aware.test_data:
        rows.append([f"{m} on {aware.test_data} (test, untuned)",
                     f"float {_score(aware.test_float_score, m)}, full int8 {_score(aware.test_int8_score, m)}, "
                     f"written {_score(aware.test_score, m)} (drop "
                     f"{_drop((aware.test_float_score or 0) - (aware.test_score or 0), m, ' points')})"])
    tables = [Table(f"Accuracy-aware int8 ({aware.toolkit})", ["", ""], rows)]
    if aware.steps:
        tables.append(Table("Revert steps (greedy, most sensitive first)", ["step", "reverted", "nodes", m, "drop", ""],
                            [[str(s.step), s.target, ", ".join(s.nodes), _score(s.score, m), _drop(s.drop, m),
                              "kept" if s.kept else "undone (no better)"] for s in aware.steps]))
    if aware.layer_costs:
        tables.append(Table("Latency cost of the float layers (batch 1, vs full int8)",
                            ["model", "p50 ms", "full int8 p50 ms", "cost"],
                            [[c.label, f"{c.p50_ms:.3f} ±{c.p50_ci:.1%}", f"{c.int8_p50_ms:.3f}", f"{c.cost:+.1%}"]
                             for c in aware.layer_costs]))
    return tables


def search_drop(candidate: Candidate, measure: str) -> str:
    """"drop +0.12" (or "gain 0.10" where the candidate scored better than float) on validation."""
    if candidate.drop is None:
        return ""
    if candidate.drop < 0:
        return f"gain {_drop(-candidate.drop, measure).lstrip('+')}"
    return f"drop {_drop(candidate.drop, measure)}"


def search_table(search: SearchResult) -> Table:
    """Every candidate `rnopt tune` considered: validation score and drop, speed where timed, verdict."""
    m = search.measure
    speed_header = "images/s" if search.objective == "throughput" else "p50 ms"

    def speed_cell(c: Candidate) -> str:
        if c.p50_ms is None:
            return ""
        ci = f" ±{(c.p50_ci_ms[1] - c.p50_ci_ms[0]) / 2 / c.p50_ms:.1%}" if c.p50_ci_ms else ""
        swept = f" (batch {c.batch_size})" if c.batch_size and c.batch_size != search.batch_size else ""
        return f"{c.throughput_ips:,.0f}{ci}{swept}" if search.objective == "throughput" else f"{c.p50_ms:.3f}{ci}"

    def slowness(c: Candidate) -> float:  # the table lists the fastest first
        if search.objective == "throughput":
            return -(c.throughput_ips or 0.0)
        return c.p50_ms or 0.0

    ordered = sorted(search.candidates, key=lambda c: (c.verdict != "chosen", c.p50_ms is None, slowness(c)))
    rows = [[c.label, _score(c.score, m), "" if c.drop is None else _drop(c.drop, m), speed_cell(c), c.verdict]
            for c in ordered]
    caption = (f"{search.bound} vs {search.reference} ({_score(search.reference_score, m)}), on {search.data} "
               f"({search.images} validation images); candidates within it timed at batch {search.batch_size}, "
               f"interleaved (a swept one at its best batch); the fastest by {search.objective} wins, and among "
               f"those whose 95 % intervals overlap it, the best validation score. {search.search_time_s:.0f} s in all.")
    if search.models:
        caption = (f"Across {', '.join(search.models)}: each model's finalists (its variants within its own bound "
                   f"that no faster variant of it beats on validation), timed together, interleaved, at batch "
                   f"{search.batch_size}, and judged by one bound: {search.bound} vs {search.reference} "
                   f"({_score(search.reference_score, m)}), the best float model, on {search.data}. The fastest "
                   f"within it wins (ties: the best validation score). {search.search_time_s:.0f} s in all.")
        return Table(f"Across models: {len(search.candidates)} finalists, objective {search.objective}",
                     ["candidate", f"{m} (validation)", "drop", speed_header, "front", "verdict"],
                     [row[:4] + ["yes" if c.on_front else ""] + row[4:] for row, c in zip(rows, ordered)], caption)
    return Table(f"Search: {len(search.candidates)} candidates, objective {search.objective}",
                 ["candidate", f"{m} (validation)", "drop", speed_header, "verdict"], rows, caption)


def sensitivity_table(result: SensitivityResult, rows: int = 15) -> Table:
    """The worst quantized tensors first: ground truth where measured, then local SQNR."""
    m = result.measure
    body = [[q.tensor, q.kind, q.module, f"{q.sqnr_db:.1f}",
             "" if q.sqnr_accumulated_db is None else f"{q.sqnr_accumulated_db:.1f}",
             "" if q.noise_added is None else f"{q.noise_added:.3g}",
             "" if q.score_change is None else drop_text(q.score_change, m), ", ".join(q.nodes)]
            for q in result.ranked()[:rows]]
    caption = (f"{m} on {result.data}: float {_score(result.float_score, m)}, int8 {_score(result.int8_score, m)}. "
               f"SQNR on {result.images} images (dB, higher is better; local: this quantizer's own error, "
               f"accumulated: all error from the input; noise added: the accumulated noise-to-signal ratio here "
               f"minus its inputs'); {m} gain with only that tensor in float on "
               f"{result.ground_truth_images} images.")
    return Table(f"Int8 sensitivity: {len(result.layers)} quantized tensors, worst first",
                 ["tensor", "kind", "module", "SQNR local", "SQNR accumulated", "noise added", f"{m} if float",
                  "nodes (revert group)"],
                 body, caption)


def run_summary_table(bench: list[BenchResult], evals: list[EvalSection],
                      embeddings: list[EmbeddingSection] | None = None) -> Table:
    """One row per variant: median latency at the smallest batch, best throughput, accuracy and its delta
    (top-1 for classifiers; mAP, overlap@10 and cosine for embedding models)."""
    headers, quality = _quality_cells(evals, embeddings or [])
    smallest = min(r.batch_size for r in bench)
    largest = max(r.batch_size for r in bench)
    by_variant: dict[tuple[str, str], dict[int, BenchResult]] = {}
    for r in bench:
        by_variant.setdefault((variant_key(r), r.model), {})[r.batch_size] = r
    reference = next(iter(by_variant.values())).get(smallest)
    with_memory = any(r.memory_mb is not None for r in bench)
    # A CUDA variant's host figure counts the CUDA libraries; what it holds on the GPU is the figure to compare.
    with_gpu_memory = any(r.memory_gpu_mb is not None for r in bench)
    # Variants timed at different batch sizes (a GPU's batch sweep): each one's best images/s, with its batch.
    swept = len({tuple(sorted(per_batch)) for per_batch in by_variant.values()}) > 1
    rows = []
    for (key, model), per_batch in by_variant.items():
        first, last = per_batch.get(smallest), per_batch.get(largest)
        best = max(per_batch.values(), key=lambda r: r.throughput_ips)
        throughput = f"{best.throughput_ips:,.0f} (batch {best.batch_size})" if swept else \
            (f"{last.throughput_ips:,.0f}" if last else "")
        rows.append([model, (first or last or best).runtime,
                     f"{first.latency_ms.p50:.3f} {ci_cell(first)}".strip() if first else "",
                     ratio_cell(reference.latency_ms.p50 / first.latency_ms.p50, speedup_interval(reference, first))
                     if first and reference else "", throughput] + quality(key)
                    + ([_mb_cell(first.memory_mb if first else None)] if with_memory else [])
                    + ([_mb_cell(first.memory_gpu_mb if first else None)] if with_gpu_memory else []))
    throughput_header = "best images/s" if swept else f"images/s (batch {largest})"
    headers = ["variant", "runtime", f"p50 ms (batch {smallest})", "speed-up", throughput_header] + \
        headers + ([f"memory MB (batch {smallest})"] if with_memory else []) + \
        ([f"GPU memory MB (batch {smallest})"] if with_gpu_memory else [])
    note = (f"speed-up: ratio of medians at batch {smallest} against the first row, with its interval from the two "
            f"medians' 95 % intervals")
    if with_memory:
        note += "; memory: what the variant adds over its bare runtime, measured in a process of its own"
    if with_gpu_memory:
        note += "; GPU memory: the peak that process allocated on the GPU"
    return Table("Summary", headers, rows, note)


def _quality_cells(evals: list[EvalSection], embeddings: list[EmbeddingSection]
                   ) -> tuple[list[str], Callable[[str], list[str]]]:
    """The accuracy columns of the summary, and the cells of one variant (by its key)."""
    if embeddings:
        retrieval = {variant_key(r): r for e in embeddings for r in e.results}
        base = next((r.map for r in retrieval.values() if r.reference is None), None)

        def embedding_cells(key: str) -> list[str]:
            r = retrieval.get(key)
            if r is None:
                return ["", "", "", ""]
            delta = f"{(r.map - base) * 100:+.2f}" if r.reference is not None and base is not None and r.map is not None else ""
            return [f"{r.map:.2%}" if r.map is not None else "undefined", delta,
                    f"{r.overlap_at['10']:.2%}" if r.overlap_at else "",
                    f"{r.cosine_mean:.5f}" if r.cosine_mean is not None else ""]

        return ["mAP", "mAP delta (points)", "overlap@10", "cosine (mean)"], embedding_cells
    accuracy = {variant_key(r): r for e in evals for r in e.results}
    deltas = {candidate_key(c): c for e in evals for c in e.comparisons}

    def top1_cells(key: str) -> list[str]:
        acc, delta = accuracy.get(key), deltas.get(key)
        return [f"{acc.top1:.2%}" if acc else "", f"{delta.top1_delta * 100:+.2f}" if delta else "",
                f"{delta.agreement:.2%}" if delta else ""]

    return ["top-1", "top-1 delta (points)", "agreement"], top1_cells


def embedding_table(section: EmbeddingSection) -> Table:
    """Retrieval quality per variant, and its fidelity to the reference's embeddings."""
    rows = []
    for r in section.results:
        overlap = [f"{r.overlap_at[k]:.2%}" if r.overlap_at else "" for k in ("1", "5", "10")]
        cosine = [f"{x:.5f}" if x is not None else "" for x in (r.cosine_mean, r.cosine_p1, r.cosine_min)]
        rows.append([r.model, f"{r.backend} {r.precision}", str(r.dim)] + cosine + overlap +
                    [f"{r.precision_at[k]:.2%}" if k in r.precision_at else "" for k in ("1", "10")] +
                    [f"{r.map:.2%}" if r.map is not None else "undefined"])
    reference = next((r.model for r in section.results if r.reference is None), "")
    return Table(f"Embedding fidelity on {section.dataset} (reference: {reference})",
                 ["variant", "runtime", "dim", "cosine mean", "cosine p1", "cosine min", "overlap@1", "overlap@5",
                  "overlap@10", "precision@1", "precision@10", "mAP"], rows,
                 "cosine: each image's embedding vs the reference's; overlap@k: share of the reference's k nearest "
                 "neighbours the variant also returns; precision@k and mAP: same-class images count as relevant")


def environment_table(env: Environment, title: str = "Environment") -> Table:
    rows = [["CPU", env.cpu_model], ["ISA", ", ".join(env.isa) or "none detected"],
            ["logical cores", str(env.logical_cores)], ["OS", env.os], ["python", env.python]]
    rows += [[name, version or "not installed"] for name, version in env.versions.items()]
    if env.gpu:
        rows.append(["GPU", env.gpu])
    return Table(title, ["", ""], rows)


def machines_table(bench: list[BenchResult]) -> Table:
    """A cluster's machine types (--nodes) side by side: per variant, each type's median latency at the smallest
    batch and images/s at the largest, with the ratio to the first type."""
    machines = list(dict.fromkeys(r.machine for r in bench if r.machine))
    smallest, largest = min(r.batch_size for r in bench), max(r.batch_size for r in bench)
    at = {(r.spec_id, r.machine, r.batch_size): r for r in bench}
    labels = {r.spec_id: r.model.removesuffix(f" on {r.machine}") for r in bench if r.machine}
    rows = []
    for spec_id, label in labels.items():
        row = [label]
        first = at.get((spec_id, machines[0], smallest))
        for machine in machines:
            small, large = at.get((spec_id, machine, smallest)), at.get((spec_id, machine, largest))
            row.append(f"{small.latency_ms.p50:.3f} {ci_cell(small)}".strip() if small else "")
            row.append(ratio_cell(first.latency_ms.p50 / small.latency_ms.p50, speedup_interval(first, small))
                       if small and first and machine != machines[0] else "")
            row.append(f"{large.throughput_ips:,.0f}" if large else "")
        rows.append(row)
    headers = ["variant"] + [h for m in machines for h in (f"{m}: p50 ms (batch {smallest})", f"{m}: speed-up",
                                                         f"{m}: images/s (batch {largest})")]
    return Table("Machine types", headers, rows, f"speed-up: against {machines[0]}, ratio of medians with its "
                                                 "interval from the two medians' 95 % intervals")


def models_table(catalog: list[ModelEntry]) -> Table:
    rows = [[m.name, m.family, f"{m.input_size}x{m.input_size}", f"{m.parameters / 1e6:.2f} M",
             f"{m.multiply_adds / 1e9:.3f} G", "bundled" if m.bundled_weights else "none",
             f"{m.top1_cifar10_jpeg:.2%}" if m.top1_cifar10_jpeg else ""] for m in catalog]
    return Table("Models (a name without bundled weights takes --weights PATH)",
                 ["name", "family", "input", "parameters", "multiply-adds", "trained weights",
                  "top-1 (CIFAR-10 JPEG test set)"], rows)


def runtimes_table(runtimes: list[RuntimeEntry], env: Environment | None) -> Table:
    rows = [[r.name, ", ".join(r.devices) or "not usable", ", ".join(r.precisions), r.version or "", r.notes]
            for r in runtimes]
    return Table("Backends on this machine", ["backend", "devices", "precisions", "version", "notes"], rows,
                 f"CPU: {env.cpu_model}; ISA: {', '.join(env.isa) or 'none detected'}" if env else "")


def embed_table(summary: EmbedSummary, data: str) -> Table:
    def rate(value: float | None) -> str:
        return "" if value is None else f"{value:,.0f}"

    rows = [["images", f"{summary.images:,}"], ["dimensions", str(summary.dim)],
            ["runtime", f"{summary.backend} {summary.precision}"], ["images/s (model)", rate(summary.images_per_s)],
            ["images/s (with decoding)", rate(summary.images_per_s_with_decoding)],
            ["skipped", str(len(summary.skipped))]]
    return Table(f"Embedded {data} -> {summary.output}", ["", ""], rows)
