"""`rnopt compare-runs`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse

from rnopt.cli.common import _check_outputs, _show_warnings, _write_report, add_config_flags, config_values
from rnopt.configs import CompareConfig
from rnopt.errors import RnoptError
from rnopt.report.render import console, print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.compare import comparison_rows_table

    _check_outputs(args, args.json)
    record = api.compare_runs(args.baseline, args.current, CompareConfig(**config_values(args, CompareConfig)))
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
    add_config_flags(p, CompareConfig)
    p.set_defaults(func=run)
