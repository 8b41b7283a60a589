"""`rnopt compare-runs`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse

from rnopt.cli.common import _check_outputs, _show_warnings, _write_report
from rnopt.errors import RnoptError
from rnopt.report.render import console, print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.compare import comparison_rows_table

    _check_outputs(args, args.json)
    record = api.compare_runs(args.baseline, args.current, args.latency_tolerance / 100,
                              args.accuracy_tolerance / 100, args.memory_tolerance / 100, args.allow_missing)
    outcome = record.comparison
    assert outcome is not None
    if not args.quiet:
        print_table(comparison_rows_table(outcome))
    _show_warnings(record.warnings)
    _write_report(args, record)
    if outcome.regressions:
        raise RnoptError(f"{len(outcome.regressions)} regression(s): " + "; ".join(outcome.regressions[:3]))
    if not args.quiet:
        console.print("no regression beyond tolerance and noise")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("compare-runs", parents=[common], help="what got slower or less accurate (a CI gate)")
    p.add_argument("baseline", metavar="BASELINE.json")
    p.add_argument("current", metavar="CURRENT.json")
    p.add_argument("--latency-tolerance", type=float, default=10.0, metavar="PCT",
                   help="median latency may grow this much (default 10 %%)")
    p.add_argument("--accuracy-tolerance", type=float, default=0.5, metavar="POINTS",
                   help="top-1 may drop this many points (default 0.5)")
    p.add_argument("--memory-tolerance", type=float, default=10.0, metavar="PCT",
                   help="memory per variant may grow this much, and 2 MB (default 10 %%)")
    p.add_argument("--allow-missing", action="store_true",
                   help="a variant of the baseline missing from the current run is not a failure")
    p.set_defaults(func=run)
