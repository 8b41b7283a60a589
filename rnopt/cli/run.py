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
    _positive_int,
    _show_warnings,
    _write_report,
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
    if args.max_drop is None and args.val_data is not None:
        raise RnoptError("--val-data applies to accuracy-aware int8: add --max-drop P")
    control = AccuracyControl(args.max_drop, args.drop_type, data=args.val_data) if args.max_drop is not None else None
    opts = RunOptions(args.model, args.weights, args.num_classes, args.labels, Path(args.output), args.data,
                      args.calib_data, args.limit, bench, args.threads, backends, devices,
                      args.head or "logits", args.normalize, control, args.cluster)
    record = api.run(opts)
    out = Path(record.folder or args.output)
    if not args.quiet:
        print_table(run_summary_table(record.bench, record.evals, record.embeddings))
        console.print(f"report: {out / 'report.html'} (also report.md, report.json)")
    _show_warnings(record.warnings)
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rnopt.backends import runtime_names

    p = sub.add_parser("run", parents=[common], help="the whole pipeline, with a report")
    p.add_argument("--model", default="resnet20_cifar10")
    _add_model_options(p)
    p.add_argument("--output", default="reports", metavar="DIR", help="reports go to DIR/<model>-<time>/")
    p.add_argument("--data", help="accuracy data (default: cifar10 for CIFAR models)")
    p.add_argument("--calib-data", metavar="DIR")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="evaluate on a subset of N images")
    p.add_argument("--max-drop", type=float, metavar="P",
                   help="accuracy-aware int8: the int8 variants keep layers in float until the drop vs float is "
                        "at most P points on validation images (see rnopt quantize --max-drop)")
    p.add_argument("--drop-type", choices=["absolute", "relative"], default="absolute",
                   help="with --max-drop: points, or %% of the float model's score")
    p.add_argument("--val-data", metavar="DIR|cifar10-val",
                   help="with --max-drop: validation images (default: the bundled cifar10-val for CIFAR models)")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (default: all cores)")
    p.add_argument("--backend", metavar="NAME[,NAME...]",
                   help=f"runtimes to compare: {', '.join(runtime_names())} (default: those installed)")
    p.add_argument("--device", metavar="cpu|cuda|cpu,cuda",
                   help="where to run the variants (default: cpu, and cuda too when a runtime can use a GPU here)")
    # The whole-pipeline default times until every median is known to +-1 % (at most 30 s per batch size):
    # fast on a quiet machine, honest on a busy one (it names what did not converge).
    _add_bench_options(p, "1,8", target_ci=1.0, max_time=30.0)
    _add_cluster_option(p)
    p.set_defaults(func=run)
