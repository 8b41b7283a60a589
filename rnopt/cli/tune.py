"""`rnopt tune`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rnopt.cli.common import (
    _accuracy_control,
    _add_bench_options,
    _add_bound_options,
    _add_cluster_option,
    _bench_config,
    _check_outputs,
    _show_warnings,
    _write_report,
    add_config_flags,
    config_values,
)
from rnopt.report.render import console, print_table

if TYPE_CHECKING:
    from rnopt.configs import TuneOptions


def tune_options(args: argparse.Namespace) -> "TuneOptions":
    """The TuneOptions a command line gives: the flags generated from TuneOptions, BenchConfig and the bound's (a
    1-point drop unless one is given)."""
    from rnopt.configs import OBJECTIVES, TuneOptions

    given = config_values(args, TuneOptions, "tune.")
    bench = _bench_config(args, batch_sizes=[OBJECTIVES[given.get("objective", TuneOptions.objective)]])
    return TuneOptions(**given, control=_accuracy_control(args, default_max_drop=1.0), bench=bench,
                       cluster=args.cluster)


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.document import search_headline
    from rnopt.report.loading import from_payload
    from rnopt.report.tables import run_summary_table, search_table

    _check_outputs(args, args.json)
    opts = tune_options(args)
    record = api.tune(opts)
    out = Path(record.folder or opts.output)
    if not args.quiet:
        print_table(search_table(record.searches[0]))
        print_table(run_summary_table(record.bench, record.evals, record.embeddings))
        console.print(search_headline(from_payload(record.to_dict(), "tune")) or "", markup=False)
        console.print(f"report: {out / 'report.html'} (also report.md, report.json, and every candidate's file)")
    _show_warnings(record.warnings)
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rnopt.bench import TUNE_BENCH
    from rnopt.configs import TuneOptions

    p = sub.add_parser("tune", parents=[common],
                       help="search: the fastest variant whose accuracy on validation images stays within a bound")
    add_config_flags(p, TuneOptions, "tune.")
    _add_bound_options(p, "default 1")
    _add_bench_options(p, TUNE_BENCH)
    _add_cluster_option(p)
    p.set_defaults(func=run)
