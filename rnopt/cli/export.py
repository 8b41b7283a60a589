"""`rnopt export`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse

from rnopt import progress
from rnopt.cli.common import _add_model_options, _check_outputs, _positive_int, _show_warnings, _write_report
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import export_table

    _check_outputs(args, args.output, args.json)
    with progress.task(f"exporting {args.model}"):
        record = api.export(args.model, args.output, args.weights, args.num_classes, args.labels, args.opset,
                            args.static_batch, args.rtol, args.atol, args.head or "logits", args.normalize,
                            force=args.force)
    _show_warnings(record.warnings)
    if not args.quiet:
        print_table(export_table(record.exports[0]))
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common], help="export to ONNX and check it against PyTorch")
    p.add_argument("model")
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's, 18+)")
    p.add_argument("--static-batch", type=_positive_int, metavar="N", help="fix the batch size (default: dynamic)")
    p.add_argument("--rtol", type=float, metavar="R",
                   help="max |diff| allowed, as a fraction of the largest |logit| (default 1e-4): fp32 rounding "
                        "never reaches it, a wrong graph does")
    p.add_argument("--atol", type=float, metavar="A", help="also bound the absolute max |diff| (default: none)")
    p.set_defaults(func=run)
