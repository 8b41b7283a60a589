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
    _quantize_options,
    _recipe,
    _show_warnings,
    _write_report,
)
from rnopt.errors import RnoptError
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.options import flag_fields
    from rnopt.quantization import QUANTIZERS
    from rnopt.configs import QuantizeConfig
    from rnopt.report.tables import accuracy_aware_tables, drop_text, quantize_table
    from rnopt.spec import format_suffix

    config = QuantizeConfig(**_quantize_options(args), recipe=_recipe(args), control=_accuracy_control(args))
    toolkit = QUANTIZERS[config.toolkit]
    writes_ir = format_suffix(toolkit.format) == ".xml"  # an IR's weights lie beside it, in a .bin
    weights_file = Path(args.output).with_suffix(".bin") if writes_ir else None
    _check_outputs(args, args.output, args.json, weights_file)
    if not toolkit.takes_recipes and config.recipe != type(config.recipe)():
        recipe_takers = ", ".join(name for name, t in QUANTIZERS.items() if t.takes_recipes)
        flags = ", ".join(f.metadata["flag"] for f in flag_fields(type(config.recipe)))
        raise RnoptError(f"{flags} apply to the {recipe_takers} quantizer; {config.toolkit}'s chooses its own")
    with progress.task("calibrating", config.calib_size if config.control is None else None) as advance:
        record = api.quantize(args.input, args.output, config, advance, lambda note: advance(0, note),
                              force=args.force)
    result = record.quantizations[0]
    if result.reduce_range and config.recipe.reduce_range is None:
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
    g = p.add_argument_group("accuracy-aware int8 (layers go back to float until the bound holds on validation "
                             "images; exits 1, keeping the best model found, when it cannot)")
    _add_bound_options(g, "e.g. 0.5")
    p.set_defaults(func=run)
