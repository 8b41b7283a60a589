"""`rnopt optimize`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse

from rnopt.cli.common import _check_outputs, _show_warnings, _write_report, add_config_flags, config_values
from rnopt.configs import OptimizeConfig
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import optimize_table

    _check_outputs(args, args.output, args.json)
    record = api.optimize(args.input, args.output, OptimizeConfig(**config_values(args, OptimizeConfig)),
                          force=args.force)
    _show_warnings(record.warnings)
    if not args.quiet:
        print_table(optimize_table(record.optimizations[0]))
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("optimize", parents=[common], help="fuse operators with ONNX Runtime's graph optimizer")
    p.add_argument("input", metavar="IN.onnx")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    add_config_flags(p, OptimizeConfig)
    p.set_defaults(func=run)
