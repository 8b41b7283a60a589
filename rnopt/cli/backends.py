"""`rnopt backends`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse

from rnopt.cli.common import _check_outputs, _write_report
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import runtimes_table

    _check_outputs(args, args.json)
    record = api.describe_runtimes()
    if not args.quiet:
        print_table(runtimes_table(record.runtimes, record.environment))
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sub.add_parser("backends", parents=[common], help="runtimes usable here, with devices").set_defaults(
        func=run)
