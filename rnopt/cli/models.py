"""`rnopt models`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse

from rnopt.cli.common import _check_outputs, _write_report
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import models_table

    _check_outputs(args, args.json)
    record = api.describe_models()
    if not args.quiet:
        print_table(models_table(record.catalog))
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sub.add_parser("models", parents=[common], help="list built-in models").set_defaults(func=run)
