"""The `rnopt` command: parses arguments, calls the library, renders tables. No logic of its own."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from rnopt import progress
from rnopt.errors import RnoptError
from rnopt.report.render import console, err_console, print_table
from rnopt.report.results import Report


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
        err_console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)


# ---- commands ---------------------------------------------------------------------------------------------

def cmd_models(args: argparse.Namespace) -> None:
    from rnopt.models import MODELS, count_params_and_macs
    from rnopt.report.tables import Table

    rows = []
    for name, spec in MODELS.items():
        params, macs = count_params_and_macs(spec)
        w = spec.weights
        rows.append([name, spec.family, f"{spec.preprocessing.crop}x{spec.preprocessing.crop}",
                     f"{params / 1e6:.2f} M", f"{macs / 1e9:.3f} G",
                     "bundled" if w else "none", f"{w.jpeg_top1:.2%}" if w else ""])
    print_table(Table("Models (built-in; a name without bundled weights takes --weights PATH)", ["name", "family", "input", "parameters", "multiply-adds", "trained weights",
                                 "top-1 (CIFAR-10 JPEG test set)"], rows))


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
    from rnopt.quantize import quantize_onnx
    from rnopt.report.tables import quantize_table

    _check_outputs(args, args.output, args.json)
    with progress.task("calibrating", args.calib_size) as advance:
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


def cmd_bench(args: argparse.Namespace) -> None:
    from rnopt.backends import BackendOptions, OnnxModel, get_backend
    from rnopt.bench import BenchConfig, Variant, bench_variants, summarize_warnings
    from rnopt.report.tables import bench_table

    _check_outputs(args, args.json)
    config = BenchConfig(args.batch_size, args.warmup, args.iterations, args.min_time)
    backend = get_backend(args.backend)
    options = BackendOptions(args.device, args.threads)
    variants = []
    for arg, model in zip(args.models, _open_all(args)):
        session = backend.load(model, options)
        size = model.path.stat().st_size if isinstance(model, OnnxModel) else None
        input_size = model.meta.input_size if isinstance(model, OnnxModel) else model.loaded.spec.preprocessing.crop
        variants.append(Variant(arg, session, input_size, size))
    with progress.task("benchmarking") as advance:
        results = bench_variants(variants, config, on_round=lambda note: advance(1, note))
    warnings = summarize_warnings(results)
    if not args.quiet:
        print_table(bench_table(results))
    _show_warnings(warnings)
    _write_report(args, Report("bench", command=args.command_line, warnings=warnings,
                               sections={"config": config, "results": results}))


def cmd_eval(args: argparse.Namespace) -> None:
    from rnopt.backends import BackendOptions, OnnxModel, get_backend
    from rnopt.data import align_labels, load_dataset
    from rnopt.evaluate import evaluate
    from rnopt.report.tables import comparison_table, eval_table

    _check_outputs(args, args.json)
    models = _open_all(args)
    preprocessing = [m.meta.preprocessing if isinstance(m, OnnxModel) else m.loaded.spec.preprocessing
                     for m in models]
    if any(p != preprocessing[0] for p in preprocessing):
        raise RnoptError("these models expect different input preprocessing: evaluate them separately")
    classes = [m.meta.class_names if isinstance(m, OnnxModel) else m.loaded.class_names for m in models]
    dataset = align_labels(load_dataset(args.data), classes[0]).subset(args.limit)
    options = BackendOptions(threads=args.threads)
    sessions = [(arg, get_backend("onnxruntime" if isinstance(m, OnnxModel) else "torch").load(m, options))
                for arg, m in zip(args.models, models)]
    with progress.task(f"evaluating on {dataset.name}", len(dataset)) as advance:
        results, comparisons = evaluate(sessions, dataset, preprocessing[0], args.batch_size, advance)
    if not args.quiet:
        print_table(eval_table(results, dataset.name))
        if comparisons:
            print_table(comparison_table(comparisons))
    warnings = [w for m in models for w in getattr(getattr(m, "loaded", None), "warnings", [])]
    _write_report(args, Report("eval", command=args.command_line, warnings=warnings,
                               sections={"dataset": dataset.name, "results": results, "comparisons": comparisons}))


def cmd_run(args: argparse.Namespace) -> None:
    from rnopt.bench import BenchConfig
    from rnopt.pipeline import RunOptions, run_pipeline
    from rnopt.report.tables import run_summary_table

    _check_outputs(args, args.json)
    bench = BenchConfig(args.batch_size, args.warmup, args.iterations, args.min_time)
    opts = RunOptions(args.model, args.weights, args.num_classes, args.labels, Path(args.output), args.data,
                      args.calib_data, args.limit, bench, args.threads, args.command_line)
    report, out = run_pipeline(opts)
    if not args.quiet:
        print_table(run_summary_table(report.sections["bench"]["results"], report.sections.get("eval")))
        console.print(f"report: {out / 'report.md'}")
    _show_warnings(report.warnings)
    _write_report(args, report)


# ---- parser -----------------------------------------------------------------------------------------------

def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="PATH", help="checkpoint (.pt/.pth/.th/.safetensors) for a built-in name")
    p.add_argument("--num-classes", type=_positive_int, help="classes of the checkpoint (default: read from it)")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line")


def _add_bench_options(p: argparse.ArgumentParser, batch_default: str) -> None:
    p.add_argument("--batch-size", type=_int_list, default=_int_list(batch_default), metavar="N[,N...]",
                   help=f"batch sizes to time (default {batch_default})")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (default: all cores)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--iterations", type=_positive_int, default=50, help="timed runs, at least (default 50)")
    p.add_argument("--min-time", type=float, default=1.0, metavar="S", help="timed seconds, at least (default 1)")


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

    p = sub.add_parser("quantize", parents=[common], help="int8 static quantization (ONNX Runtime, QDQ)")
    p.add_argument("input", metavar="IN.onnx")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    p.add_argument("--calib-data", metavar="DIR|cifar10-calib", help="calibration images (default: bundled for CIFAR)")
    p.add_argument("--calib-size", type=_positive_int, default=500, metavar="N")
    p.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("bench", parents=[common], help="time models on a runtime")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".onnx files or built-in names")
    _add_model_options(p)
    p.add_argument("--backend", default="onnxruntime", help="runtime (default onnxruntime; `torch` for names)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    _add_bench_options(p, "1,8")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("eval", parents=[common], help="top-1/top-5 accuracy; the first model is the reference")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".onnx files (ONNX Runtime) or built-in names (PyTorch)")
    _add_model_options(p)
    p.add_argument("--data", default="cifar10", help="cifar10 (bundled JPEG test set) or an ImageFolder DIR")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="a fixed random subset of N images")
    p.add_argument("--batch-size", type=_positive_int, default=100)
    p.add_argument("--threads", type=_positive_int)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("run", parents=[common], help="the whole pipeline, with a report")
    p.add_argument("--model", default="resnet20_cifar10")
    _add_model_options(p)
    p.add_argument("--output", default="reports", metavar="DIR", help="reports go to DIR/<model>-<time>/")
    p.add_argument("--data", help="accuracy data (default: cifar10 for CIFAR models)")
    p.add_argument("--calib-data", metavar="DIR")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="evaluate on a subset of N images")
    _add_bench_options(p, "1,8")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = "rnopt " + shlex.join(argv)
    progress.set_enabled(not args.quiet)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except RnoptError as exc:
        err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
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
