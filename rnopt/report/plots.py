"""Plots as inline SVG (matplotlib, no display): latency distributions, accuracy vs latency, batch sweeps,
memory per variant."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from rnopt.report.headline import VariantPoint  # noqa: E402
from rnopt.results import BenchResult, EmbeddingSection, SearchResult, SensitivityResult, variant_key  # noqa: E402,E501

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})


def _plain_log_ticks(axis: matplotlib.axis.Axis) -> None:
    """Log scale with plain numbers (0.3, 1, 3) instead of 3x10^-1."""
    formatter = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(formatter)
    axis.set_minor_formatter(formatter)


def _label(r: BenchResult) -> str:
    return f"{r.model} ({r.runtime})"


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG is inlined in HTML


def latency_distribution(results: list[BenchResult], batch: int) -> str | None:
    rows = [r for r in results if r.batch_size == batch and r.samples_ms]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(rows)))
    ax.boxplot([r.samples_ms for r in rows], orientation="horizontal", showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(rows) + 1), [_label(r) for r in rows])
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"latency per call, ms (batch {batch}, log scale)")
    ax.invert_yaxis()
    return _svg(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten by another that is both faster (lower x) and at least as accurate (higher y)."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def accuracy_vs_latency(points: list[VariantPoint]) -> str | None:
    measured = [p for p in points if p.top1 is not None]
    if not measured:
        return None
    # Variants at (nearly) the same spot, e.g. fp32 and its fused twin, share one dot and one label.
    spots: dict[tuple[float, float], list[str]] = {}
    for p in measured:
        x, y = p.result.latency_ms.p50, p.top1 * 100
        near = next((k for k in spots if abs(k[0] / x - 1) < 0.05 and abs(k[1] - y) < 0.05), (x, y))
        spots.setdefault(near, []).append(_label(p.result))
    fig, ax = plt.subplots(figsize=(7, 4))
    xy = list(spots)
    ax.scatter([x for x, _ in xy], [y for _, y in xy], color="#1f77b4", zorder=3)
    for (x, y), labels in spots.items():
        ax.annotate("\n".join(labels), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    front = pareto_front(xy)
    ax.step([x for x, _ in front], [y for _, y in front], where="post", color="#d62728", label="Pareto front")
    ax.scatter([x for x, _ in front], [y for _, y in front], s=120, facecolors="none", edgecolors="#d62728", zorder=4)
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    low, high = min(y for _, y in xy), max(y for _, y in xy)
    ax.set_ylim(low - max(1.0, (high - low) * 0.2), high + max(1.0, (high - low) * 0.2))  # small deltas stay small
    left, right = min(x for x, _ in xy), max(x for x, _ in xy)
    ax.set_xlim(left / 1.3, right * 2.5)  # room for the labels on the right
    ax.set_xlabel(f"median latency, ms (batch {measured[0].result.batch_size}, log scale)")
    ax.set_ylabel(f"{measured[0].metric}, %")
    ax.legend(loc="upper right")
    return _svg(fig)


def models_front(search: SearchResult) -> str | None:
    """A search over several models: each model's finalists coloured by model (its depth in the legend), the
    front over all of them, the recommendation ringed. Throughput: images/s on x (higher is better)."""
    timed = [c for c in search.candidates if c.score is not None and c.p50_ms is not None]
    if not search.models or not timed:
        return None
    throughput = search.objective == "throughput"

    def x_of(c) -> float:  # noqa: ANN001
        return (c.throughput_ips or 0.0) if throughput else c.p50_ms

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, model in enumerate(search.models):
        mine = [c for c in timed if c.model == model]
        depth = next((c.depth for c in mine if c.depth), None)
        ax.scatter([x_of(c) for c in mine], [c.score * 100 for c in mine], color=f"C{i}", zorder=3,
                   label=f"{model}" + (f" (depth {depth})" if depth else ""))
        for c in mine:
            ax.annotate(c.label.split("/")[-1], (x_of(c), c.score * 100), textcoords="offset points",
                        xytext=(6, 4), fontsize=7)
    front = sorted((c for c in timed if c.on_front), key=x_of)
    ax.step([x_of(c) for c in front], [c.score * 100 for c in front], where="pre" if throughput else "post",
            color="#d62728", label="front over all models")
    chosen = [c for c in timed if c.spec_id == search.chosen_id]
    ax.scatter([x_of(c) for c in chosen], [c.score * 100 for c in chosen], s=160, facecolors="none",
               edgecolors="black", zorder=4, label="recommended")
    if search.floor is not None:
        ax.axhline(search.floor * 100, color="grey", linestyle="--", linewidth=1,
                   label=f"bound: {search.bound} vs {search.reference}")
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(f"images/s (batch {search.batch_size}, log scale)" if throughput
                  else f"median latency, ms (batch {search.batch_size}, log scale)")
    ax.set_ylabel(f"{search.measure} on {search.data} (validation), %")
    xs = [x_of(c) for c in timed]
    ax.set_xlim(min(xs) / 1.3, max(xs) * 1.8)  # room for the labels on the right
    ys = [c.score * 100 for c in timed] + ([search.floor * 100] if search.floor is not None else [])
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=7)  # below: never over a point
    return _svg(fig)


def retrieval_vs_latency(results: list[BenchResult], sections: list[EmbeddingSection]) -> str | None:
    """For embedding models: overlap@1/5/10 with the reference and mAP, against median latency."""
    retrieval = {variant_key(r): r for s in sections for r in s.results}
    if not results or not retrieval:
        return None
    batch = min(r.batch_size for r in results)
    points = [(r, retrieval[variant_key(r)]) for r in results if r.batch_size == batch and variant_key(r) in retrieval]
    if not points:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for k, marker in (("1", "o"), ("5", "s"), ("10", "^")):
        xy = [(b.latency_ms.p50, q.overlap_at.get(k, 1.0) * 100) for b, q in points]
        left.scatter([x for x, _ in xy], [y for _, y in xy], marker=marker, label=f"overlap@{k}")
    defined = [(b, q) for b, q in points if q.map is not None]  # an undefined mAP is no point at 0 %
    xy = [(b.latency_ms.p50, q.map * 100) for b, q in defined]
    right.scatter([x for x, _ in xy], [y for _, y in xy], color="#2ca02c")
    for b, q in defined:
        right.annotate(_label(b), (b.latency_ms.p50, q.map * 100), textcoords="offset points", xytext=(5, 3),
                       fontsize=7)
    for ax, ylabel in ((left, "neighbours kept, % (reference = 100)"), (right, "mAP, % (same class relevant)")):
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel(f"median latency, ms (batch {batch}, log scale)")
        ax.set_ylabel(ylabel)
    left.legend(loc="lower right")
    return _svg(fig)


def batch_sweep(results: list[BenchResult]) -> str | None:
    if len({r.batch_size for r in results}) < 2:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    series: dict[str, list[BenchResult]] = {}
    for r in results:
        series.setdefault(_label(r), []).append(r)
    for label, rows in series.items():
        rows.sort(key=lambda r: r.batch_size)
        sizes = [r.batch_size for r in rows]
        left.plot(sizes, [r.throughput_ips for r in rows], marker="o", label=label)
        line, = right.plot(sizes, [r.latency_ms.p50 for r in rows], marker="o", label=f"{label} p50")
        right.plot(sizes, [r.latency_ms.p90 for r in rows], marker="x", linestyle="--", color=line.get_color())
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
    left.set_ylabel("throughput, images/s")
    right.set_ylabel("latency, ms (solid p50, dashed p90)")
    right.set_yscale("log")
    _plain_log_ticks(right.yaxis)
    for ax in (left, right):
        _plain_log_ticks(ax.xaxis)
    left.legend(fontsize=7)
    return _svg(fig)


def memory_per_variant(results: list[BenchResult]) -> str | None:
    """Grouped bars: what each variant adds over its bare runtime, one bar per batch size."""
    measured = [r for r in results if r.memory_mb is not None]
    if not measured:
        return None
    labels = list(dict.fromkeys(_label(r) for r in measured))
    batches = sorted({r.batch_size for r in measured})
    height = 0.8 / len(batches)
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.25 * len(labels) * len(batches) + 0.2 * len(labels)))
    for j, batch in enumerate(batches):
        values = {_label(r): r.memory_mb for r in measured if r.batch_size == batch}
        rows = [i for i, label in enumerate(labels) if label in values]
        ax.barh([i + j * height for i in rows], [values[labels[i]] for i in rows], height, label=f"batch {batch}")
    ax.set_yticks([i + height * (len(batches) - 1) / 2 for i in range(len(labels))], labels)
    ax.invert_yaxis()
    ax.set_xlabel("memory added over the bare runtime, MB (each variant in a process of its own)")
    ax.legend(fontsize=7, loc="lower right")
    return _svg(fig)


def sensitivity_bars(result: SensitivityResult, worst: int = 3) -> str | None:
    """Quantized activations in network order: the noise each adds (bars), the `worst` in red, local SQNR as a
    line; ground-truth gains annotated where measured."""
    rows = [q for q in result.layers if q.kind == "activation" and q.noise_added is not None]
    if not rows:
        return None
    ranked = sorted(rows, key=lambda q: q.cheap_rank())[:worst]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.16 * len(rows) + 2), 3.2))
    x = range(len(rows))
    ax.bar(x, [q.noise_added for q in rows], color=["#d62728" if q in ranked else "#1f77b4" for q in rows])
    ax.set_ylabel("noise-to-signal added by this layer")
    ax.set_xticks(list(x), [q.tensor for q in rows], rotation=90, fontsize=6)
    for i, q in enumerate(rows):
        if q.score_change is not None:
            change = q.score_change if result.measure == "cosine" else q.score_change * 100  # points
            ax.annotate(f"{change:+.1f}", (i, q.noise_added), ha="center", va="bottom", fontsize=6)
    local = ax.twinx()
    local.plot(list(x), [q.sqnr_db for q in rows], color="#7f7f7f", linewidth=0.8, marker=".", markersize=3)
    local.set_ylabel("local SQNR, dB (grey)")
    local.grid(False)
    ax.set_xlabel(f"quantized activations in network order (worst {worst} in red; numbers: {result.measure} "
                  f"gained with only that group in float)")
    return _svg(fig)
