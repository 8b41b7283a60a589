"""The `rnopt` command: parses arguments, calls the library, renders tables. No logic of its own."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from rich.markup import escape

from rnopt import progress
from rnopt.errors import RnoptError
from rnopt.report.render import console, err_console, print_table
from rnopt.report.results import Report

if TYPE_CHECKING:  # the CLI imports the runtimes only when a command needs them
    from rnopt.backends import BackendOptions, ModelInput, Session


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit status 2), as every other rnopt error."""

    def error(self, message: str) -> NoReturn:
        err_console.print(f"error: {self.prog}: {message} (see {self.prog} --help)", markup=False, soft_wrap=True)
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _int_list(text: str) -> list[int]:
    return [_positive_int(part) for part in text.split(",") if part.strip()] or [_positive_int(text)]


PRECISIONS = ("fp32", "bf16", "fp16", "int8", "tf32")


def _precision_list(text: str) -> list[str]:
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in PRECISIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown precision {', '.join(unknown) or text!r}: choose from "
                                         f"{', '.join(PRECISIONS)}")
    return names


def _check_outputs(args: argparse.Namespace, *paths: str | Path | None) -> None:
    """Refuse to replace a file the user already has, unless --force."""
    for path in paths:
        if path is not None and Path(path).exists() and not args.force:
            raise RnoptError(f"{path} already exists: choose another path or pass --force to replace it")


def _write_report(args: argparse.Namespace, report: Report) -> None:
    if getattr(args, "json", None):
        from rnopt.fileio import write_json

        write_json(args.json, report.to_dict())
        if not args.quiet:
            console.print(f"wrote {args.json}")


def _show_warnings(warnings: list[str]) -> None:
    for w in dict.fromkeys(warnings):
        err_console.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)


# ---- commands ---------------------------------------------------------------------------------------------

def cmd_models(args: argparse.Namespace) -> None:
    from rnopt.models import MODELS, count_params_and_macs
    from rnopt.report.tables import Table

    _check_outputs(args, args.json)
    listing = []
    for name, spec in MODELS.items():
        params, macs = count_params_and_macs(spec)
        w = spec.weights
        listing.append({"name": name, "family": spec.family, "input_size": spec.preprocessing.crop,
                        "parameters": params, "multiply_adds": macs, "bundled_weights": w is not None,
                        "top1_cifar10_jpeg": w.jpeg_top1 if w else None})
    rows = [[m["name"], m["family"], f"{m['input_size']}x{m['input_size']}", f"{m['parameters'] / 1e6:.2f} M",
             f"{m['multiply_adds'] / 1e9:.3f} G", "bundled" if m["bundled_weights"] else "none",
             f"{m['top1_cifar10_jpeg']:.2%}" if m["top1_cifar10_jpeg"] else ""] for m in listing]
    if not args.quiet:
        print_table(Table("Models (a name without bundled weights takes --weights PATH)",
                          ["name", "family", "input", "parameters", "multiply-adds", "trained weights",
                           "top-1 (CIFAR-10 JPEG test set)"], rows))
    _write_report(args, Report("models", command=args.command_line, sections={"models": listing}))


def cmd_export(args: argparse.Namespace) -> None:
    from rnopt.export import export_model
    from rnopt.models import create_model
    from rnopt.report.tables import export_table

    _check_outputs(args, args.output, args.json)
    loaded = create_model(args.model, args.weights, args.num_classes, args.labels)
    _show_warnings(loaded.warnings)
    with progress.task(f"exporting {args.model}"):
        result = export_model(loaded, args.output, args.opset, args.static_batch, args.atol)
    if not args.quiet:
        print_table(export_table(result))
    _write_report(args, Report("export", command=args.command_line, warnings=loaded.warnings,
                               sections={"results": [result]}))


def cmd_optimize(args: argparse.Namespace) -> None:
    from rnopt.optimize import optimize_model
    from rnopt.report.tables import optimize_table

    _check_outputs(args, args.output, args.json)
    result = optimize_model(args.input, args.output, args.level)
    if not args.quiet:
        print_table(optimize_table(result))
    _write_report(args, Report("optimize", command=args.command_line, sections={"results": [result]}))


def cmd_quantize(args: argparse.Namespace) -> None:
    from rnopt.quantize import quantize_onnx, quantize_openvino
    from rnopt.report.tables import quantize_table

    weights_file = Path(args.output).with_suffix(".bin") if args.backend == "openvino" else None
    _check_outputs(args, args.output, args.json, weights_file)
    if args.backend == "openvino" and args.method != "minmax":
        raise RnoptError("--method applies to the onnxruntime quantizer; NNCF chooses its own ranges")
    from rnopt.backends import open_model
    from rnopt.quantize.calibration import calibration_set

    _, images = calibration_set(open_model(args.input).meta, args.calib_data, args.calib_size)
    with progress.task("calibrating", len(images)) as advance:
        if args.backend == "openvino":
            result = quantize_openvino(args.input, args.output, args.calib_data, args.calib_size, advance)
        else:
            result = quantize_onnx(args.input, args.output, args.calib_data, args.calib_size, args.method, advance)
    if not args.quiet:
        print_table(quantize_table(result))
    _write_report(args, Report("quantize", command=args.command_line, sections={"results": [result]}))


def _open_all(args: argparse.Namespace) -> list:
    from rnopt.backends import open_model

    models = [open_model(m, args.weights, args.num_classes, args.labels) for m in args.models]
    for m in models:
        _show_warnings(getattr(getattr(m, "loaded", None), "warnings", []))
    return models


def _backend_options(args: argparse.Namespace, precision: str | None = None) -> BackendOptions:
    from rnopt.backends import BackendOptions

    return BackendOptions(device=args.device, threads=args.threads, precision=precision,
                          performance_hint=args.hint, ort_opt_level=args.ort_opt_level,
                          ort_provider=args.ort_provider, channels_last=args.channels_last, compile=args.compile,
                          cuda_graphs=args.cuda_graphs,
                          ort_spinning=args.ort_spin == "on", ort_inter_op=args.ort_inter_op)


class Pair(NamedTuple):
    """One model on one backend at one precision, loaded: a variant to time or evaluate."""

    label: str
    model: ModelInput
    session: Session
    options: BackendOptions


def _load_pairs(args: argparse.Namespace, default_backend: Callable[[object], str]) -> list[Pair]:
    """A Pair for every model x backend x precision that can run.

    With several backends or precisions, a combination that cannot run (a .onnx file on torch, fp16 on
    a CPU) is skipped with a warning; when nothing at all can run, the first reason is the error.
    """
    from rnopt.backends import get_backend, parse_backends

    models = _open_all(args)
    asked = parse_backends(args.backend) if args.backend else None
    precisions = args.precision or [None]
    pairs, skipped = [], []
    for arg, model in zip(args.models, models):
        combos = [(b, p) for b in asked or [get_backend(default_backend(model))] for p in precisions]
        for backend, precision in combos:
            options = _backend_options(args, precision)
            try:
                session = backend.load(model, options)
            except RnoptError as exc:
                if len(combos) == 1:
                    raise
                skipped.append(f"skipped {arg} on {backend.name}{f' {precision}' if precision else ''}: {exc}")
                continue
            tags = ([backend.name] if asked and len(asked) > 1 else []) + ([precision] if len(precisions) > 1 else [])
            pairs.append(Pair(f"{arg} [{' '.join(tags)}]" if tags else arg, model, session, options))
    if not pairs:
        raise RnoptError(skipped[0] if skipped else "nothing to run")
    _show_warnings(skipped)
    return pairs


SCENARIOS = {"single-stream": "batch 1, one query at a time; headline: p90 latency",
             "offline": "all images at once; headline: images/s (batch sweep, throughput hint)"}


def cmd_bench(args: argparse.Namespace) -> None:
    from rnopt.bench import BenchConfig, Variant, bench_variants, headline, summarize_warnings
    from rnopt.memory import probe_for
    from rnopt.report.tables import bench_table

    _check_outputs(args, args.json)
    if args.scenario == "single-stream":
        args.batch_size = [1]
    elif args.scenario == "offline":
        args.hint = "throughput"
        args.batch_size = args.batch_size if args.batch_size_given else [1, 8, 32]
    config = BenchConfig(args.batch_size, args.warmup, args.iterations, args.min_time, args.memory)
    pairs = _load_pairs(args, lambda m: "onnxruntime")
    variants = [Variant(p.label, p.session, p.model.input_size, p.model.size_bytes,
                        probe_for(p.model, p.session.backend, p.options)) for p in pairs]
    with progress.task("benchmarking") as advance:
        results = bench_variants(variants, config, on_round=lambda note: advance(1, note))
    warnings = summarize_warnings(results)
    if not args.quiet:
        print_table(bench_table(results))
        if args.scenario:
            for line in headline(results, args.scenario):
                console.print(line)
    _show_warnings(warnings)
    _write_report(args, Report("bench", command=args.command_line, warnings=warnings,
                               sections={"scenario": args.scenario, "config": config, "results": results}))


def cmd_eval(args: argparse.Namespace) -> None:
    from rnopt.backends import ModelFile
    from rnopt.data import align_labels, load_dataset
    from rnopt.evaluate import evaluate
    from rnopt.report.tables import comparison_table, eval_table

    _check_outputs(args, args.json)
    pairs = _load_pairs(args, lambda m: "onnxruntime" if isinstance(m, ModelFile) else "torch")
    preprocessing = [p.model.preprocessing for p in pairs]
    if any(p != preprocessing[0] for p in preprocessing):
        raise RnoptError("these models expect different input preprocessing: evaluate them separately")
    dataset = align_labels(load_dataset(args.data), pairs[0].model.class_names).subset(args.limit)
    sessions = [(p.label, p.session) for p in pairs]
    with progress.task(f"evaluating on {dataset.name}", len(dataset)) as advance:
        results, comparisons = evaluate(sessions, dataset, preprocessing[0], args.batch_size, advance)
    if not args.quiet:
        print_table(eval_table(results, dataset.name))
        if comparisons:
            print_table(comparison_table(comparisons))
    warnings = [w for p in pairs for w in getattr(getattr(p.model, "loaded", None), "warnings", [])]
    _write_report(args, Report("eval", command=args.command_line, warnings=list(dict.fromkeys(warnings)),
                               sections={"dataset": dataset.name, "results": results, "comparisons": comparisons}))


def cmd_report(args: argparse.Namespace) -> None:
    from rnopt.fileio import write_json, write_text
    from rnopt.report.html import to_html
    from rnopt.report.loading import load_results
    from rnopt.report.markdown import to_markdown

    _check_outputs(args, args.output, args.json)
    data = load_results(args.results)
    fmt = args.format or {".md": "md", ".json": "json"}.get(Path(args.output).suffix, "html")
    merged = Report("report", command=args.command_line, warnings=data.warnings, sections=_merged_sections(data))
    if fmt == "json":
        write_json(args.output, merged.to_dict())
    else:
        write_text(args.output, to_html(data) if fmt == "html" else to_markdown(data))
    _write_report(args, merged)
    if not args.quiet:
        console.print(f"wrote {args.output} ({fmt}) from {len(args.results)} file(s)")


def _merged_sections(data) -> dict:  # data: ReportData
    return {"sources": data.sources, "commands": data.commands, "bench": {"results": data.bench},
            "evals": data.evals, "exports": data.exports, "optimizations": data.optimizations,
            "quantizations": data.quantizations, "models": data.models}


def cmd_compare_runs(args: argparse.Namespace) -> None:
    from rnopt.report.compare import compare_runs, comparison_rows_table
    from rnopt.report.loading import load_results

    _check_outputs(args, args.json)
    baseline, current = load_results([args.baseline]), load_results([args.current])
    outcome = compare_runs(baseline, current, args.latency_tolerance / 100, args.accuracy_tolerance / 100,
                           args.memory_tolerance / 100)
    if not args.quiet:
        print_table(comparison_rows_table(outcome))
    _show_warnings(outcome.environment_differences)
    _write_report(args, Report("compare", command=args.command_line, warnings=outcome.environment_differences,
                               sections={"rows": outcome.rows, "regressions": outcome.regressions}))
    if outcome.regressions:
        raise RnoptError(f"{len(outcome.regressions)} regression(s): " + "; ".join(outcome.regressions[:3]))
    if not args.quiet:
        console.print("no regression beyond tolerance and noise")


def cmd_backends(args: argparse.Namespace) -> None:
    from rnopt.backends import describe_backends
    from rnopt.environment import snapshot
    from rnopt.report.tables import Table

    _check_outputs(args, args.json)
    env = snapshot()
    listing = describe_backends()
    rows = [[b["name"], ", ".join(b["devices"]) or "not usable", ", ".join(b["precisions"]), b["version"] or "",
             b["notes"]] for b in listing]
    if not args.quiet:
        print_table(Table("Backends on this machine", ["backend", "devices", "precisions", "version", "notes"],
                          rows, f"CPU: {env.cpu_model}; ISA: {', '.join(env.isa) or 'none detected'}"))
    _write_report(args, Report("backends", command=args.command_line, sections={"backends": listing}))


def cmd_run(args: argparse.Namespace) -> None:
    from rnopt.bench import BenchConfig
    from rnopt.pipeline import RunOptions, run_pipeline
    from rnopt.report.tables import run_summary_table

    _check_outputs(args, args.json)
    bench = BenchConfig(args.batch_size, args.warmup, args.iterations, args.min_time, args.memory)
    backends = [n.strip() for n in args.backend.split(",") if n.strip()] if args.backend else None
    devices = [n.strip() for n in args.device.split(",") if n.strip()] if args.device else None
    opts = RunOptions(args.model, args.weights, args.num_classes, args.labels, Path(args.output), args.data,
                      args.calib_data, args.limit, bench, args.threads, args.command_line, backends, devices)
    report, out = run_pipeline(opts)
    if not args.quiet:
        from rnopt.report.loading import EvalSection

        evals = [EvalSection(**report.sections["eval"])] if "eval" in report.sections else []
        print_table(run_summary_table(report.sections["bench"]["results"], evals))
        console.print(f"report: {out / 'report.html'} (also report.md, report.json)")
    _show_warnings(report.warnings)
    _write_report(args, report)


# ---- parser -----------------------------------------------------------------------------------------------

def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="PATH", help="checkpoint (.pt/.pth/.th/.safetensors) for a built-in name")
    p.add_argument("--num-classes", type=_positive_int, help="classes of the checkpoint (default: read from it)")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line")


def _add_backend_options(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--backend", metavar="NAME[,NAME...]", help=f"onnxruntime, openvino, torch (default: {default})")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--precision", type=_precision_list, metavar="P[,P...]",
                   help=f"{', '.join(PRECISIONS)}; a comma list compares them side by side. OpenVINO: inference "
                        "precision hint; torch: autocast dtype, or tf32 convolutions on CUDA (default: the model's own)")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (default: all cores)")
    p.add_argument("--hint", choices=["latency", "throughput"], default="latency", help="OpenVINO performance hint")
    p.add_argument("--ort-opt-level", choices=["disable", "basic", "extended", "all"], default="all")
    p.add_argument("--ort-provider", choices=["cpu", "cuda", "tensorrt"], help="ONNX Runtime execution provider")
    p.add_argument("--ort-spin", choices=["on", "off"], default="on",
                   help="ONNX Runtime worker threads spin between calls (default on: faster, busier CPU)")
    p.add_argument("--ort-inter-op", type=_positive_int, metavar="N",
                   help="ONNX Runtime inter-op threads: run independent branches in parallel (default: sequential)")
    p.add_argument("--channels-last", action="store_true", help="torch: channels_last memory format")
    p.add_argument("--compile", action="store_true",
                   help="torch: torch.compile (inductor); on CUDA add --cuda-graphs, or kernel launches dominate")
    p.add_argument("--cuda-graphs", action="store_true", help="torch on CUDA: replay a captured CUDA graph")


def _add_bench_options(p: argparse.ArgumentParser, batch_default: str) -> None:
    p.add_argument("--batch-size", type=_int_list, metavar="N[,N...]",
                   help=f"batch sizes to time (default {batch_default})")
    p.set_defaults(batch_size_default=_int_list(batch_default))
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--iterations", type=_positive_int, default=50, help="timed runs, at least (default 50)")
    p.add_argument("--min-time", type=float, default=1.0, metavar="S", help="timed seconds, at least (default 1)")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                   help="measure each variant's memory in a process of its own, a few seconds each (default on)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnopt", description="Export, fuse, quantize, benchmark and evaluate PyTorch ResNets.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    common.add_argument("--quiet", action="store_true", help="no tables or progress bars")
    common.add_argument("--force", action="store_true", help="replace output files that already exist")

    sub.add_parser("models", parents=[common], help="list built-in models").set_defaults(func=cmd_models)

    p = sub.add_parser("export", parents=[common], help="export to ONNX and check it against PyTorch")
    p.add_argument("model")
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's, 18+)")
    p.add_argument("--static-batch", type=_positive_int, metavar="N", help="fix the batch size (default: dynamic)")
    p.add_argument("--atol", type=float, default=1e-4, help="max abs difference allowed (default 1e-4)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("optimize", parents=[common], help="fuse operators with ONNX Runtime's graph optimizer")
    p.add_argument("input", metavar="IN.onnx")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    p.add_argument("--level", choices=["basic", "extended"], default="extended")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("quantize", parents=[common], help="int8 static quantization (ONNX Runtime QDQ, or NNCF)")
    p.add_argument("input", metavar="IN.onnx")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    p.add_argument("--calib-data", metavar="DIR|cifar10-calib", help="calibration images (default: bundled for CIFAR)")
    p.add_argument("--calib-size", type=_positive_int, default=500, metavar="N")
    p.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax")
    p.add_argument("--backend", choices=["onnxruntime", "openvino"], default="onnxruntime",
                   help="onnxruntime: QDQ .onnx; openvino: NNCF, writes OpenVINO IR (.xml + .bin)")
    p.set_defaults(func=cmd_quantize)

    sub.add_parser("backends", parents=[common], help="runtimes usable here, with devices").set_defaults(
        func=cmd_backends)

    p = sub.add_parser("bench", parents=[common], help="time models on one or more runtimes")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".onnx/.xml files or built-in names")
    _add_model_options(p)
    _add_backend_options(p, "onnxruntime (names are exported on the fly)")
    p.add_argument("--scenario", choices=list(SCENARIOS), help="; ".join(f"{k}: {v}" for k, v in SCENARIOS.items()))
    _add_bench_options(p, "1,8")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("eval", parents=[common], help="top-1/top-5 accuracy; the first model is the reference")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".onnx/.xml files or built-in names")
    _add_model_options(p)
    _add_backend_options(p, "onnxruntime for files, torch for names")
    p.add_argument("--data", default="cifar10", help="cifar10 (bundled JPEG test set) or an ImageFolder DIR")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="a fixed random subset of N images")
    p.add_argument("--batch-size", type=_positive_int, default=100)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("report", parents=[common], help="merge bench/eval/run JSON files into one report")
    p.add_argument("results", nargs="+", metavar="RESULT.json")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="report.html, report.md or report.json")
    p.add_argument("--format", choices=["html", "md", "json"], help="default: from the output's extension")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare-runs", parents=[common], help="what got slower or less accurate (a CI gate)")
    p.add_argument("baseline", metavar="BASELINE.json")
    p.add_argument("current", metavar="CURRENT.json")
    p.add_argument("--latency-tolerance", type=float, default=10.0, metavar="PCT",
                   help="median latency may grow this much (default 10 %%)")
    p.add_argument("--accuracy-tolerance", type=float, default=0.5, metavar="POINTS",
                   help="top-1 may drop this many points (default 0.5)")
    p.add_argument("--memory-tolerance", type=float, default=10.0, metavar="PCT",
                   help="memory per variant may grow this much, and 2 MB (default 10 %%)")
    p.set_defaults(func=cmd_compare_runs)

    p = sub.add_parser("run", parents=[common], help="the whole pipeline, with a report")
    p.add_argument("--model", default="resnet20_cifar10")
    _add_model_options(p)
    p.add_argument("--output", default="reports", metavar="DIR", help="reports go to DIR/<model>-<time>/")
    p.add_argument("--data", help="accuracy data (default: cifar10 for CIFAR models)")
    p.add_argument("--calib-data", metavar="DIR")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="evaluate on a subset of N images")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (default: all cores)")
    p.add_argument("--backend", metavar="NAME[,NAME...]",
                   help="runtimes to compare: torch, onnxruntime, openvino (default: those installed)")
    p.add_argument("--device", metavar="cpu|cuda|cpu,cuda",
                   help="where to run the variants (default: cpu, and cuda too when a runtime can use a GPU here)")
    _add_bench_options(p, "1,8")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = "rnopt " + shlex.join(argv)
    if hasattr(args, "batch_size_default"):
        args.batch_size_given = args.batch_size is not None
        args.batch_size = args.batch_size or args.batch_size_default
    progress.set_enabled(not args.quiet)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except RnoptError as exc:
        err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
        return 1
    except OSError as exc:  # the system refused (disk full, permissions...): say what, on one line
        where = f" ({exc.filename})" if exc.filename else ""
        err_console.print(f"error: {exc.strerror or exc}{where}", markup=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err_console.print("error: interrupted", markup=False)
        return 130
    except Exception as exc:  # a bug, not bad input: one line by default, the traceback on request
        if os.environ.get("RNOPT_DEBUG"):
            raise
        err_console.print(f"error: internal error {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                          f" (set RNOPT_DEBUG=1 for the traceback)", markup=False, soft_wrap=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
