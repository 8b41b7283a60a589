"""`rnopt export`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse

from rnopt import progress
from rnopt.cli.common import (
    _add_model_options,
    _check_outputs,
    _model_options,
    _show_warnings,
    _write_report,
    add_config_flags,
    config_values,
)
from rnopt.configs import ExportConfig
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import export_table

    _check_outputs(args, args.output, args.json)
    with progress.task(f"exporting {args.model}"):
        record = api.export(args.model, args.output, _model_options(args),
                            ExportConfig(**config_values(args, ExportConfig, "export.")), force=args.force)
    _show_warnings(record.warnings)
    if not args.quiet:
        print_table(export_table(record.exports[0]))
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common], help="export to ONNX and check it against PyTorch")
    p.add_argument("model")
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    add_config_flags(p, ExportConfig, "export.")
    p.set_defaults(func=run)
