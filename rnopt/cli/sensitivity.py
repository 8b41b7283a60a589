"""`rnopt sensitivity`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse

from rnopt import progress
from rnopt.cli.common import (
    _add_cluster_option,
    _check_outputs,
    _executor,
    _recipe,
    _show_warnings,
    _write_report,
    add_config_flags,
    config_values,
)
from rnopt.options import positive_int
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.configs import SensitivityConfig
    from rnopt.report.tables import sensitivity_table

    _check_outputs(args, args.json)
    config = SensitivityConfig(**config_values(args, SensitivityConfig, "sensitivity."), recipe=_recipe(args))
    with progress.task("sensitivity") as advance, _executor(args) as executor:
        record = api.sensitivity(args.float_model, args.int8_model, config, lambda note: advance(0, note),
                                 executor if args.cluster else None)
    _show_warnings(record.warnings)
    if not args.quiet:
        print_table(sensitivity_table(record.sensitivity[0], args.rows))
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from rnopt.quantization import QuantRecipe
    from rnopt.configs import SensitivityConfig

    p = sub.add_parser("sensitivity", parents=[common],
                       help="per-layer int8 sensitivity: SQNR of every quantized tensor, and the accuracy gained by "
                            "keeping the worst in float (ONNX Runtime QDQ)")
    p.add_argument("float_model", metavar="FLOAT.onnx")
    p.add_argument("int8_model", nargs="?", metavar="INT8.onnx",
                   help="an int8 model `rnopt quantize` made from FLOAT.onnx (default: quantize it here with the "
                        "recipe options below)")
    add_config_flags(p, SensitivityConfig, "sensitivity.")
    p.add_argument("--rows", type=positive_int, default=15, metavar="N", help="rows of the ranked table (default 15)")
    add_config_flags(p, QuantRecipe, "recipe.")
    _add_cluster_option(p)
    p.set_defaults(func=run)
