"""`rnopt run`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse
from pathlib import Path

from rnopt.cli.common import (
    _add_bench_options,
    _add_cluster_option,
    _add_model_options,
    _bench_config,
    _check_outputs,
    _model_options,
    _quantize_options,
    _positive_int,
    _show_warnings,
    _write_report,
    add_config_flags,
    config_values,
)
from rnopt.errors import RnoptError
from rnopt.plan import split_list
from rnopt.report.render import console, print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.pipeline import RunOptions
    from rnopt.quantization import AccuracyControl
    from rnopt.report.tables import run_summary_table

    _check_outputs(args, args.json)
    bench = _bench_config(args)
    backends = split_list(args.backend, "backend") if args.backend is not None else None
    devices = split_list(args.device, "device") if args.device is not None else None
    bound = config_values(args, AccuracyControl, "bound.")
    if "max_drop" not in bound and (args.val_data is not None or "drop_type" in bound):
        raise RnoptError(f"{'--val-data' if args.val_data is not None else '--drop-type'} applies to accuracy-aware "
                         f"int8: add --max-drop P")
    control = AccuracyControl(**bound, data=args.val_data) if "max_drop" in bound else None
    model = _model_options(args)
    opts = RunOptions(args.model, model.weights, model.num_classes, model.labels, Path(args.output), args.data,
                      _quantize_options(args).get("calib_data"), args.limit, bench, args.threads, backends, devices,
                      model.head or "logits", model.normalize, control, args.cluster)
    record = api.run(opts)
    out = Path(record.folder or args.output)
    if not args.quiet:
        print_table(run_summary_table(record.bench, record.evals, record.embeddings))
        console.print(f"report: {out / 'report.html'} (also report.md, report.json)")
    _show_warnings(record.warnings)
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rnopt.backends import runtime_names
    from rnopt.bench import RUN_BENCH
    from rnopt.quantization import AccuracyControl
    from rnopt.recipes import QuantizeConfig

    p = sub.add_parser("run", parents=[common], help="the whole pipeline, with a report")
    p.add_argument("--model", default="resnet20_cifar10")
    _add_model_options(p)
    p.add_argument("--output", default="reports", metavar="DIR", help="reports go to DIR/<model>-<time>/")
    p.add_argument("--data", help="accuracy data (default: cifar10 for CIFAR models)")
    add_config_flags(p, QuantizeConfig, "quantize.", only=("calib_data",))
    p.add_argument("--limit", type=_positive_int, metavar="N", help="evaluate on a subset of N images")
    add_config_flags(p, AccuracyControl, "bound.", only=("max_drop", "drop_type"),
                     notes={"max_drop": "accuracy-aware int8 for the int8 variants (see rnopt quantize --max-drop)"})
    p.add_argument("--val-data", metavar="DIR|cifar10-val",
                   help="with --max-drop: validation images (default: the bundled cifar10-val for CIFAR models)")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (default: all cores)")
    p.add_argument("--backend", metavar="NAME[,NAME...]",
                   help=f"runtimes to compare: {', '.join(runtime_names())} (default: those installed)")
    p.add_argument("--device", metavar="cpu|cuda|cpu,cuda",
                   help="where to run the variants (default: cpu, and cuda too when a runtime can use a GPU here)")
    _add_bench_options(p, RUN_BENCH)
    _add_cluster_option(p)
    p.set_defaults(func=run)
