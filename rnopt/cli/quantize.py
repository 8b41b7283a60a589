"""`rnopt quantize`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse
from pathlib import Path

from rnopt import progress
from rnopt.cli.common import (
    _accuracy_control,
    _add_bound_options,
    _add_recipe_options,
    _check_outputs,
    _positive_int,
    _recipe,
    _show_warnings,
    _write_report,
)
from rnopt.errors import RnoptError
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.quantization import QUANTIZERS
    from rnopt.report.tables import accuracy_aware_tables, drop_text, quantize_table
    from rnopt.spec import format_suffix

    toolkit = QUANTIZERS[args.backend]
    writes_ir = format_suffix(toolkit.format) == ".xml"  # an IR's weights lie beside it, in a .bin
    weights_file = Path(args.output).with_suffix(".bin") if writes_ir else None
    _check_outputs(args, args.output, args.json, weights_file)
    recipe = _recipe(args)
    if not toolkit.takes_recipes and recipe != type(recipe)():
        recipe_takers = ", ".join(name for name, t in QUANTIZERS.items() if t.takes_recipes)
        raise RnoptError("--method, --percentile, --per-tensor, --symmetric-activations, --weight-type, "
                         f"--activation-type, --reduce-range, --exclude and --range apply to the {recipe_takers} "
                         f"quantizer; {args.backend}'s chooses its own")
    control = _accuracy_control(args)
    with progress.task("calibrating", args.calib_size if control is None else None) as advance:
        record = api.quantize(args.input, args.output, args.backend, args.calib_data, args.calib_size, recipe,
                              advance, control, lambda note: advance(0, note), force=args.force)
    result = record.quantizations[0]
    if result.reduce_range and args.reduce_range is None:
        record.warnings.append("reduce-range is on (7-bit weights): this CPU has no VNNI/AMX, where full 8-bit "
                               "weights can saturate; --no-reduce-range turns it off")
    _show_warnings(record.warnings)
    if not args.quiet:
        print_table(quantize_table(result))
        for table in accuracy_aware_tables(result.accuracy_aware) if result.accuracy_aware else []:
            print_table(table)
    _write_report(args, record)
    aware = result.accuracy_aware
    if aware is not None and not aware.met:
        raise RnoptError(f"the bound ({aware.bound}) was not met on {aware.data}: the best model found "
                         f"({len(aware.kept_float)} of {aware.layers_quantized} layers in float, drop "
                         f"{drop_text(aware.final_drop, aware.measure)}) is in {args.output}")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("quantize", parents=[common], help="int8 static quantization (ONNX Runtime QDQ, or NNCF)")
    p.add_argument("input", metavar="IN.onnx")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    _add_recipe_options(p)
    from rnopt.quantization import QUANTIZERS

    p.add_argument("--backend", choices=list(QUANTIZERS), default=next(iter(QUANTIZERS)),
                   help="the quantizer: " + "; ".join(f"{name} writes {toolkit.format}" for name, toolkit in
                                                      QUANTIZERS.items()) + f" (default {next(iter(QUANTIZERS))})")
    g = p.add_argument_group("accuracy-aware int8 (layers go back to float until the bound holds on validation "
                             "images; exits 1, keeping the best model found, when it cannot)")
    _add_bound_options(g, "e.g. 0.5")
    g.add_argument("--max-steps", type=_positive_int, metavar="N", help="stop after N revert steps (default: none)")
    p.set_defaults(func=run)
