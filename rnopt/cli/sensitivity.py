"""`rnopt sensitivity`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse

from rnopt import progress
from rnopt.cli.common import (
    _add_cluster_option,
    _add_recipe_options,
    _add_validation_options,
    _check_outputs,
    _executor,
    _positive_int,
    _quantize_options,
    _recipe,
    _show_warnings,
    _write_report,
    config_values,
)
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.quantization import AccuracyControl
    from rnopt.recipes import QuantizeConfig
    from rnopt.report.tables import sensitivity_table

    _check_outputs(args, args.json)
    with progress.task("sensitivity") as advance, _executor(args) as executor:
        validation = config_values(args, AccuracyControl, "bound.")
        calibration = QuantizeConfig(**_quantize_options(args))
        record = api.sensitivity(args.float_model, args.int8_model, validation.get("data"), validation.get("limit"),
                                 calibration.calib_data, calibration.calib_size,
                                 _recipe(args), validation.get("measure"), args.top, args.sqnr_images,
                                 lambda note: advance(0, note), executor if args.cluster else None)
    _show_warnings(record.warnings)
    if not args.quiet:
        print_table(sensitivity_table(record.sensitivity[0], args.rows))
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("sensitivity", parents=[common],
                       help="per-layer int8 sensitivity: SQNR of every quantized tensor, and the accuracy gained by "
                            "keeping the worst in float (ONNX Runtime QDQ)")
    p.add_argument("float_model", metavar="FLOAT.onnx")
    p.add_argument("int8_model", nargs="?", metavar="INT8.onnx",
                   help="an int8 model `rnopt quantize` made from FLOAT.onnx (default: quantize it here with the "
                        "recipe options below)")
    _add_validation_options(p)
    p.add_argument("--top", type=int, default=5, metavar="K",
                   help="ground truth for the K tensors with the lowest SQNR: the accuracy gained by keeping only "
                        "that one in float, on all validation images (default 5; 0: SQNR only)")
    p.add_argument("--sqnr-images", type=_positive_int, default=200, metavar="N",
                   help="validation images the SQNR pass runs on (default 200)")
    p.add_argument("--rows", type=_positive_int, default=15, metavar="N", help="rows of the ranked table (default 15)")
    _add_recipe_options(p)
    _add_cluster_option(p)
    p.set_defaults(func=run)
