"""`rnopt eval`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse

from rnopt import progress
from rnopt.cli.common import (
    _add_backend_options,
    _add_cluster_option,
    _add_model_options,
    _check_outputs,
    _executor,
    _plan,
    _require_some,
    _show_warnings,
    _write_report,
    add_config_flags,
    config_values,
)
from rnopt.configs import EvalConfig
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import comparison_table, embedding_table, eval_table

    _check_outputs(args, args.json)
    specs = _plan(args, prefer_pytorch=True)
    with progress.task("evaluating", None) as advance:
        with _executor(args) as executor:
            record = api.evaluate(specs, EvalConfig(**config_values(args, EvalConfig)), advance, executor)
    _require_some(record, "evaluate")
    if not args.quiet and record.embeddings:
        print_table(embedding_table(record.embeddings[0]))
    elif not args.quiet:
        section = record.evals[0]
        print_table(eval_table(section.results, section.dataset))
        if section.comparisons:
            print_table(comparison_table(section.comparisons))
    _show_warnings(record.warnings)
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", parents=[common], help="top-1/top-5 accuracy; the first model is the reference")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".onnx/.xml files or built-in names")
    _add_model_options(p)
    _add_backend_options(p, "the first registered runtime that loads the model")
    add_config_flags(p, EvalConfig)
    _add_cluster_option(p)
    p.set_defaults(func=run)
