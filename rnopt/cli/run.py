"""`rnopt run`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rnopt.cli.common import (
    _add_bench_options,
    _add_cluster_option,
    cluster_nodes,
    _bench_config,
    _check_outputs,
    _show_warnings,
    _write_report,
    add_config_flags,
    config_values,
)
from rnopt.errors import RnoptError
from rnopt.report.render import console, print_table

if TYPE_CHECKING:
    from rnopt.configs import RunOptions


def run_options(args: argparse.Namespace) -> "RunOptions":
    """The RunOptions a command line gives: the flags generated from RunOptions, BenchConfig and the bound's."""
    from rnopt.configs import RunOptions
    from rnopt.quantization import AccuracyControl

    bound = config_values(args, AccuracyControl, "bound.")
    if bound and "max_drop" not in bound:
        raise RnoptError(f"{'--val-data' if 'data' in bound else '--drop-type'} applies to accuracy-aware int8: add "
                         f"--max-drop P")
    return RunOptions(**config_values(args, RunOptions, "run."), bench=_bench_config(args),
                      accuracy=AccuracyControl(**bound) if bound else None, cluster=args.cluster,
                      nodes=cluster_nodes(args))


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import run_summary_table

    _check_outputs(args, args.json)
    opts = run_options(args)
    record = api.run(opts)
    out = Path(record.folder or opts.output)
    if not args.quiet:
        print_table(run_summary_table(record.bench, record.evals, record.embeddings))
        console.print(f"report: {out / 'report.html'} (also report.md, report.json)")
    _show_warnings(record.warnings)
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rnopt.bench import RUN_BENCH
    from rnopt.configs import RunOptions
    from rnopt.quantization import AccuracyControl

    p = sub.add_parser("run", parents=[common], help="the whole pipeline, with a report")
    add_config_flags(p, RunOptions, "run.")
    add_config_flags(p, AccuracyControl, "bound.", only=("max_drop", "drop_type", "data"),
                     notes={"max_drop": "accuracy-aware int8 for the int8 variants (see rnopt quantize --max-drop)"},
                     renamed={"data": "--val-data"})
    _add_bench_options(p, RUN_BENCH)
    _add_cluster_option(p, nodes=True)
    p.set_defaults(func=run)
