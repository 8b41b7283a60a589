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
    _accuracy_control,
    _bench_config,
    _check_outputs,
    _model_options,
    _positive_int,
    _quantize_options,
    _show_warnings,
    _write_report,
    add_config_flags,
)
from rnopt.plan import split_list
from rnopt.report.render import console, print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.document import search_headline
    from rnopt.report.loading import from_payload
    from rnopt.report.tables import run_summary_table, search_table
    from rnopt.search import OBJECTIVES, TuneOptions

    _check_outputs(args, args.json)
    bench = _bench_config(args, batch_sizes=[OBJECTIVES[args.objective]])
    model = _model_options(args)
    opts = TuneOptions(
        args.model, model.weights, model.num_classes, model.labels, model.head or "logits", model.normalize,
        Path(args.output), _accuracy_control(args, default_max_drop=1.0), args.objective, bench, sweep=args.sweep,
        recipes=split_list(args.recipe, "recipe") if args.recipe is not None else None,
        accuracy_aware=args.accuracy_aware, calib_data=_quantize_options(args).get("calib_data"),
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
    from rnopt.bench import TUNE_BENCH
    from rnopt.recipes import QuantizeConfig

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
    add_config_flags(p, QuantizeConfig, "quantize.", only=("calib_data",))
    p.add_argument("--backend", metavar="NAME[,NAME...]",
                   help=f"runtimes to search: {', '.join(runtime_names())} (default: those installed)")
    p.add_argument("--device", metavar="cpu|cuda|cpu,cuda",
                   help="where candidates run (default: cpu, and cuda too when a runtime can use a GPU here)")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (default: all cores)")
    _add_bench_options(p, TUNE_BENCH)
    _add_cluster_option(p)
    p.set_defaults(func=run)
