"""`rnopt bench`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse
import dataclasses

from rnopt import progress
from rnopt.bench import CUDA_SWEEP_LIMIT
from rnopt.cli.common import (
    _add_backend_options,
    _add_bench_options,
    _add_cluster_option,
    _add_model_options,
    _batch_sizes_given,
    _bench_config,
    _check_outputs,
    _executor,
    _plan,
    _require_some,
    _show_warnings,
    _write_report,
)
from rnopt.errors import RnoptError
from rnopt.report.render import console, print_table

SCENARIOS = {"single-stream": "batch 1, one query at a time; headline: p90 latency",
             "offline": "all images at once; headline: images/s (batch sizes 1,8,32, throughput hint; on CUDA a "
                        "batch sweep)"}


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.bench import headline
    from rnopt.report.tables import bench_table

    _check_outputs(args, args.json)
    given_batches = _batch_sizes_given(args)
    config = _bench_config(args)
    sweep = config.sweep_limit
    if args.scenario == "single-stream":
        if given_batches and config.batch_sizes != [1]:
            raise RnoptError("--scenario single-stream times batch 1 only: leave out --batch-size (or drop --scenario)")
        config = dataclasses.replace(config, batch_sizes=[1])
    elif args.scenario == "offline":
        args.objective_implied = "throughput"  # each runtime's throughput options (OpenVINO's hint), unless given
        if args.device == "cuda" and not given_batches and sweep is None:
            sweep = CUDA_SWEEP_LIMIT  # a GPU's peak needs batches far beyond 32: find it
        if not given_batches:
            config = dataclasses.replace(config, batch_sizes=[1, 8, 32])
    if sweep is not None:
        if len(config.batch_sizes) > 1 and given_batches:
            raise RnoptError("--sweep doubles from one batch size: give at most one --batch-size (the start)")
        config = dataclasses.replace(config, batch_sizes=config.batch_sizes[:1] if given_batches else [1],
                                     sweep_limit=sweep)
    specs = _plan(args)
    with progress.task("benchmarking") as advance:
        with _executor(args) as executor:
            record = api.bench(specs, config, executor, lambda note: advance(1, note), args.scenario)
    _require_some(record, "benchmark")
    if not args.quiet:
        print_table(bench_table(record.bench))
        if args.scenario:
            for line in headline(record.bench, args.scenario):
                console.print(line)
    _show_warnings(record.warnings)
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", parents=[common], help="time models on one or more runtimes")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".onnx/.xml files or built-in names")
    _add_model_options(p)
    _add_backend_options(p, "the first registered runtime that loads the model; names are exported on the fly")
    p.add_argument("--scenario", choices=list(SCENARIOS), help="; ".join(f"{k}: {v}" for k, v in SCENARIOS.items()))
    p.add_argument("--executor", choices=["inprocess", "subprocess"], default="inprocess",
                   help="inprocess: all variants in this process, timed in interleaved rounds (default, the fair "
                        "comparison); subprocess: each variant in a fresh process of its own (needed to compare "
                        "--threads values, which are process-wide in PyTorch)")
    from rnopt.bench import BenchConfig

    _add_bench_options(p, BenchConfig(memory=True), sweep=True)
    _add_cluster_option(p, nodes=True)
    p.set_defaults(func=run)
