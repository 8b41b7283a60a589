"""report.md: the headline and the tables of a run, for pasting into a review."""
from __future__ import annotations

from rnopt.report.render import markdown_table
from rnopt.report.results import Report
from rnopt.report import tables


def run_markdown(report: Report) -> str:
    s = report.sections
    model = s["model"]
    parts = [f"# rnopt run: {model['name']}", "",
             f"Weights: {model['weights']} (sha256 {str(model['weights_sha256'])[:12]}), "
             f"{model['num_classes']} classes, {model['input_size']}x{model['input_size']} input. "
             f"Created {model['created']}.", ""]
    bench = s["bench"]["results"]
    evals = s.get("eval")
    parts.append(markdown_table(tables.run_summary_table(bench, evals), 2))
    if evals:
        parts.append(f"Accuracy figures are on {evals['dataset']}"
                     + (" (the bundled CIFAR-10 test set as lossy JPEG re-encodings: absolute figures are for "
                        "this copy, about 10 points under the published lossless ones; float-vs-int8 deltas "
                        "compare like with like)." if evals["dataset"].startswith("cifar10") else ".") + "\n")
    if report.warnings:
        parts += ["## Warnings", ""] + [f"- {w}" for w in report.warnings] + [""]
    parts.append(markdown_table(tables.export_table(s["export"])))
    parts.append(markdown_table(tables.optimize_table(s["optimize"])))
    parts.append(markdown_table(tables.quantize_table(s["quantize"])))
    parts.append(markdown_table(tables.bench_table(bench)))
    if evals:
        parts.append(markdown_table(tables.eval_table(evals["results"], evals["dataset"])))
        parts.append(markdown_table(tables.comparison_table(evals["comparisons"])))
    parts.append(markdown_table(tables.environment_table(report.environment)))
    if report.command:
        parts += ["## Command", "", f"    {report.command}", ""]
    return "\n".join(parts)
