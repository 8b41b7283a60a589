"""The content of a report, once: headline, tables, plots, environment. Markdown and HTML lay it out."""
from __future__ import annotations

from dataclasses import dataclass

from rnopt.report import plots, tables
from rnopt.report.compare import comparison_rows_table
from rnopt.report.headline import recommend, variant_points
from rnopt.report.loading import ReportData
from rnopt.report.tables import Table
from rnopt.results import Candidate, SearchResult

JPEG_NOTE = ("Accuracy is measured on {dataset}: the bundled CIFAR-10 test set as lossy JPEG (q75) re-encodings, "
             "so absolute figures sit about 10 points under published lossless ones; float-vs-optimized deltas "
             "compare like with like.")


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str
    css: str = ""


@dataclass
class Bullets:
    items: list[str]
    css: str = ""


@dataclass
class Plot:
    name: str
    title: str
    svg: str


@dataclass
class Code:
    lines: list[str]


Block = Heading | Paragraph | Bullets | Plot | Code | Table


RETRIEVAL_NOTE = ("Embeddings can agree to a cosine very close to 1 while overlap@k is far lower: many neighbours "
                  "are near ties, and small differences reorder them. precision@k and mAP (same-class images "
                  "relevant) say whether the reordering changed what is found, or only which of several equally "
                  "good neighbours comes first.")


TUNING_NOTE = ("Decisions are tuned on validation images (never the test set); the test-set figures, where "
               "shown, are the untuned final ones.")


def headline_text(data: ReportData) -> str | None:
    if data.searches:
        return search_headline(data)
    h = recommend(data)
    if h is None:
        return None
    r = h.variant
    parts = [f"Recommended: {r.model} on {r.runtime}, median {r.latency_ms.p50:.3f} ms {tables.ci_cell(r)} "
             f"at batch {r.batch_size}".replace("  ", " ")]
    for base in h.baselines:
        parts.append(f"{tables.ratio_cell(base.speedup, base.interval)} as fast as {base.runtime} fp32")
    if h.top1 is not None:
        delta = f", {h.top1_delta * 100:+.2f} points vs the float reference" if h.top1_delta is not None else ""
        parts.append(f"{h.metric} {h.top1:.2%}{delta}")
    return "; ".join(parts) + f". ({h.reason}.)" + (TEST_SET_CHOICE if _read_on_test_set(data) else "")


# A choice read off the test set is a reading, not a tuned decision: say where the tuned one comes from.
TEST_SET_CHOICE = " Read on the test set: rnopt tune makes this choice on validation images."


def _read_on_test_set(data: ReportData) -> bool:
    return any(s.dataset == "cifar10" or s.dataset.startswith("cifar10[") for s in [*data.evals, *data.embeddings])


def search_headline(data: ReportData) -> str | None:
    """What `rnopt tune` chose, and why, in one sentence (its choice, made on validation images, is the
    recommendation: the test-set figures below are reported, not chosen on)."""
    search = data.searches[0]  # across models, where several were searched: it leads
    chosen = next((c for c in search.candidates if c.spec_id == search.chosen_id), None)
    if chosen is None or chosen.p50_ms is None:
        return None
    speed = (f"{chosen.throughput_ips:,.0f} images/s" if search.objective == "throughput"
             else f"median {chosen.p50_ms:.3f} ms")
    drop = tables.search_drop(chosen, search.measure)
    timed_ones = [c for c in search.candidates if c.p50_ms is not None and c.met]  # across models: all are timed
    pool = (f"{len(timed_ones)} candidate{'s' if len(timed_ones) != 1 else ''} within the bound, out of "
            f"{len(search.candidates)} tried")
    if search.objective == "throughput":
        tied = chosen.throughput_ips < max(c.throughput_ips or 0.0 for c in timed_ones)
    else:
        tied = chosen.p50_ms > min(c.p50_ms or 0.0 for c in timed_ones)
    rule = (f"The rule: among candidates within {search.speed_tolerance:g} % of the fastest (or within the timing "
            f"noise), the best validation score wins." if search.speed_tolerance else
            "The rule: among candidates the timing cannot tell from the fastest, the best validation score wins.")
    if search.speed_only:
        rule = "The rule, with accuracy not measured: the fastest median wins."
    why = (f"Of the {pool}: as fast as the fastest by that rule, and better on validation." if tied
           else f"The fastest of the {pool}.")
    why = f"{why} {rule}"
    if search.budget_ended_in:
        why += (f" The budget ({search.budget_minutes:g} minutes) ended during {search.budget_ended_in}: this is the "
                f"best found so far.")
    if search.speed_only:
        why += (" Speed only: accuracy was not measured; the bound is how closely each candidate's outputs follow "
                "the float model's.")
    front = front_sentence(search)
    return (f"Chosen by rnopt tune: {chosen.label}, {speed} at batch {chosen.batch_size or search.batch_size}; "
            f"{search.measure} {drop} on {search.data} (validation) against the bound {search.bound}. {why}"
            + (f" {front}" if front else ""))


def front_sentence(search: SearchResult) -> str | None:
    """A search over several models: what their one front shows, in a sentence. Whether the best float model's
    depth is worth its time at this bound: is the recommendation a variant of it, or of a model that stays
    within the bound of it and is faster?"""
    chosen = next((c for c in search.candidates if c.spec_id == search.chosen_id), None)
    others = [c for c in search.candidates if chosen and c.model != chosen.model and c.p50_ms is not None]
    if not search.models or chosen is None or chosen.p50_ms is None or not others:
        return None
    throughput = search.objective == "throughput"

    def speed(c: Candidate) -> float:
        return (c.throughput_ips or 0.0) if throughput else 1.0 / c.p50_ms

    def said(c: Candidate) -> str:
        where = f"{c.throughput_ips:,.0f} images/s" if throughput else f"{c.p50_ms:.3f} ms"
        return f"{c.label}, {where}, {search.measure} {_percent(c.score)}"

    rival = max(others, key=speed)
    depth_word = _depth_word(chosen, rival)
    if chosen.model == search.model:  # the best float model's own variant won
        if speed(rival) <= speed(chosen):
            return (f"{chosen.model} wins on both counts: no variant of the other models is faster ({rival.model}'s "
                    f"fastest: {said(rival)}){depth_word}.")
        return (f"{rival.model}'s fastest variant ({said(rival)}) is {speed(rival) / speed(chosen):.2f}x as fast as "
                f"the recommendation but {search.measure} {tables.search_drop(rival, search.measure)} against "
                f"{search.reference}, "
                f"beyond the bound ({search.bound}): {chosen.model} is worth its cost here{depth_word}.")
    return (f"{chosen.label} stays within the bound ({search.bound}) of {search.reference} and is "
            f"{speed(chosen) / speed(rival):.2f}x as fast as the fastest {rival.model} variant ({said(rival)}): "
            f"{rival.model} is not worth its cost here{depth_word}.")


def _percent(score: float | None) -> str:
    return "" if score is None else f"{score:.2%}"


def _depth_word(chosen: Candidate, rival: Candidate) -> str:
    """"; deeper is not better" where the depths say which way the trade went."""
    if not chosen.depth or not rival.depth or chosen.depth == rival.depth:
        return ""
    return (f" (depth {chosen.depth} over {rival.depth}: deeper is better at this bound)"
            if chosen.depth > rival.depth else
            f" (depth {chosen.depth} over {rival.depth}: deeper is not better at this bound)")


def build_document(data: ReportData, with_plots: bool = True) -> list[Block]:
    blocks: list[Block] = [Heading(data.title, 1)]
    headline = headline_text(data)
    if headline:
        blocks.append(Paragraph(headline, "headline"))
    if data.bench:
        blocks.append(tables.run_summary_table(data.bench, data.evals, data.embeddings))
    for section in [*data.evals, *data.embeddings]:
        if section.dataset.startswith("cifar10"):
            blocks.append(Paragraph(JPEG_NOTE.format(dataset=section.dataset)))
    if data.warnings:
        blocks += [Heading("Warnings"), Bullets(data.warnings, "warnings")]
    if with_plots:
        blocks += _plots(data)
    blocks += _tables(data)
    for times in data.step_times:
        total = sum(times.values())
        blocks += [Heading("Time per step"),
                   Bullets([f"{step}: {seconds:.1f} s" for step, seconds in times.items()] + [f"total: {total:.1f} s"],
                           "steps")]
    blocks.append(Heading("Environment"))
    for env in _distinct(data.environments):
        blocks.append(tables.environment_table(env))
    for selector, env in data.machines.items():
        blocks.append(tables.environment_table(env, f"Environment of the machine type {selector} (it timed)"))
    if data.commands:
        blocks += [Heading("Commands"), Code(data.commands)]
    return blocks


def _plots(data: ReportData) -> list[Block]:
    out: list[Block] = []
    for batch in sorted({r.batch_size for r in data.bench}):
        svg = plots.latency_distribution(data.bench, batch)
        if svg:
            out.append(Plot(f"latency-b{batch}", f"Latency distribution, batch {batch}", svg))
    svg = plots.models_front(data.searches[0]) if data.searches else None
    if svg:
        out.append(Plot("models-front", "Every model's finalists on one front (validation score vs speed)", svg))
    svg = plots.accuracy_vs_latency(variant_points(data))
    if svg:
        out.append(Plot("pareto", "Accuracy vs latency (Pareto front in red)", svg))
    svg = plots.retrieval_vs_latency(data.bench, data.embeddings)
    if svg:
        out.append(Plot("retrieval", "Retrieval: overlap@k and mAP vs latency", svg))
    svg = plots.batch_sweep(data.bench)
    if svg:
        out.append(Plot("batch-sweep", "Throughput and latency vs batch size", svg))
    svg = plots.memory_per_variant(data.bench)
    if svg:
        out.append(Plot("memory", "Memory per variant", svg))
    for i, result in enumerate(data.sensitivity):
        svg = plots.sensitivity_bars(result)
        if svg:
            out.append(Plot(f"sensitivity-{i}", f"Int8 sensitivity of {result.int8_model}", svg))
    return ([Heading("Plots")] + out) if out else []


def _tables(data: ReportData) -> list[Block]:
    out: list[Block] = []
    for search in data.searches:  # a tune record's own content comes first
        out += [Heading("Search (rnopt tune)"), tables.search_table(search), Paragraph(TUNING_NOTE)]
    if data.bench:
        out += [Heading("Latency and throughput"), tables.bench_table(data.bench)]
    if any(r.machine for r in data.bench):
        out += [Heading("Machine types side by side"), tables.machines_table(data.bench)]
    for section in data.evals:
        out += [Heading("Accuracy"), tables.eval_table(section.results, section.dataset)]
        if section.comparisons:
            out.append(tables.comparison_table(section.comparisons))
    for embedding in data.embeddings:
        out += [Heading("Embedding fidelity"), tables.embedding_table(embedding), Paragraph(RETRIEVAL_NOTE)]
    if data.exports:
        out += [Heading("Export check")] + [tables.export_table(e) for e in data.exports]
    if data.optimizations:
        out += [Heading("Operator fusion")] + [tables.optimize_table(o) for o in data.optimizations]
    if data.quantizations:
        out += [Heading("Quantization settings")] + [tables.quantize_table(q) for q in data.quantizations]
    for q in data.quantizations:
        if q.accuracy_aware:
            out += [Heading("Accuracy-aware int8"), Paragraph(TUNING_NOTE)]
            out += tables.accuracy_aware_tables(q.accuracy_aware)
    for result in data.sensitivity:
        out += [Heading("Int8 sensitivity per layer"), tables.sensitivity_table(result, 25), Paragraph(TUNING_NOTE)]
    for summary in data.embedded:
        out += [Heading("Embedded"), tables.embed_table(summary, summary.output)]
    for comparison in data.comparisons:
        out += [Heading("Run comparison"), comparison_rows_table(comparison)]
        if comparison.regressions:
            out += [Paragraph("Regressions beyond tolerance and noise:"), Bullets(comparison.regressions, "warnings")]
    if data.catalog:
        out += [Heading("Models"), tables.models_table(data.catalog)]
    if data.runtimes:
        environment = data.environments[0] if data.environments else None
        out += [Heading("Runtimes"), tables.runtimes_table(data.runtimes, environment)]
    return out


def _distinct(items: list) -> list:
    seen, out = set(), []
    for item in items:
        key = repr(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
