"""`rnopt tune`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse
from pathlib import Path

from rnopt.bench import CUDA_SWEEP_LIMIT, DEFAULT_SPEED_TOLERANCE
from rnopt.cli.common import (
    _add_bench_options,
    _add_bound_options,
    _add_cluster_option,
    _add_model_options,
    _bench_config,
    _check_outputs,
    _positive_int,
    _show_warnings,
    _write_report,
)
from rnopt.plan import split_list
from rnopt.report.render import console, print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.quantization import AccuracyControl
    from rnopt.report.document import search_headline
    from rnopt.report.loading import from_payload
    from rnopt.report.tables import run_summary_table, search_table
    from rnopt.search import OBJECTIVES, TuneOptions

    _check_outputs(args, args.json)
    if not args.batch_size_given:
        args.batch_size = [OBJECTIVES[args.objective]]
    bench = _bench_config(args)
    max_drop = 1.0 if args.max_drop is None and args.min_cosine is None else args.max_drop
    control = AccuracyControl(max_drop, args.drop_type, args.min_cosine, args.measure, args.data, args.test_data,
                              args.limit, args.max_steps)
    opts = TuneOptions(
        args.model, args.weights, args.num_classes, args.labels, args.head or "logits", args.normalize,
        Path(args.output), control, args.objective, bench, sweep=args.sweep,
        recipes=split_list(args.recipe, "recipe") if args.recipe is not None else None,
        accuracy_aware=args.accuracy_aware, calib_data=args.calib_data,
        backends=split_list(args.backend, "backend") if args.backend is not None else None,
        devices=split_list(args.device, "device") if args.device is not None else None, threads=args.threads,
        speed_tolerance=args.speed_tolerance, speed_only=args.speed_only,
        cluster=args.cluster)
    record = api.tune(opts)
    out = Path(record.folder or args.output)
    if not args.quiet:
        print_table(search_table(record.searches[0]))
        print_table(run_summary_table(record.bench, record.evals, record.embeddings))
        console.print(search_headline(from_payload(record.to_dict(), "tune")) or "", markup=False)
        console.print(f"report: {out / 'report.html'} (also report.md, report.json, and every candidate's file)")
    _show_warnings(record.warnings)
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rnopt.backends import runtime_names

    p = sub.add_parser("tune", parents=[common],
                       help="search: the fastest variant whose accuracy on validation images stays within a bound")
    p.add_argument("--model", default="resnet20_cifar10")
    _add_model_options(p)
    p.add_argument("--output", default="reports", metavar="DIR",
                   help="the report and every candidate's model file go to DIR/<model>-tune-<time>/")
    p.add_argument("--objective", choices=["latency", "throughput"], default="latency",
                   help="latency: lowest median at batch 1; throughput: most images/s at batch 32 (--batch-size "
                        "changes the batch)")
    p.add_argument("--speed-only", action="store_true",
                   help="do not measure accuracy: bound each candidate by the mean cosine of its outputs to the float "
                        "model's (--min-cosine, default 0.99) on --data images (labels not needed); chosen by itself "
                        "for random weights or a model with no labelled images that fit it")
    p.add_argument("--speed-tolerance", type=float, default=DEFAULT_SPEED_TOLERANCE, metavar="P",
                   help="candidates within P %% of the fastest count as fast as it; the best validation score "
                        "among them wins (default %(default)g)")
    p.add_argument("--sweep", type=_positive_int, metavar="MAX",
                   help="with --objective throughput: double each candidate's batch from --batch-size up to MAX "
                        "while images/s improves by 3 %%, and judge each at its best (default: CUDA candidates up "
                        f"to {CUDA_SWEEP_LIMIT}, CPU ones at the one batch size)")
    _add_bound_options(p, "default 1")
    p.add_argument("--recipe", metavar="NAME[,NAME...]",
                   help="int8 recipes to try: minmax, entropy, percentile, per-tensor (default: all)")
    p.add_argument("--accuracy-aware", action=argparse.BooleanOptionalAction, default=True,
                   help="when every int8 candidate is over the bound, also try int8 with the most sensitive layers "
                        "back in float until the bound holds (ONNX Runtime from the first --recipe, and NNCF; "
                        "default on)")
    p.add_argument("--max-steps", type=_positive_int, metavar="N",
                   help="accuracy-aware int8: at most N revert steps per toolkit")
    p.add_argument("--calib-data", metavar="DIR|cifar10-calib", help="calibration images (default: bundled for CIFAR)")
    p.add_argument("--backend", metavar="NAME[,NAME...]",
                   help=f"runtimes to search: {', '.join(runtime_names())} (default: those installed)")
    p.add_argument("--device", metavar="cpu|cuda|cpu,cuda",
                   help="where candidates run (default: cpu, and cuda too when a runtime can use a GPU here)")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (default: all cores)")
    _add_bench_options(p, "1", target_ci=1.0, max_time=30.0, memory=False)  # memory is not what it chooses on
    _add_cluster_option(p)
    p.set_defaults(func=run)
