"""`rnopt embed`: its options and what it runs (through the API)."""
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
    _show_warnings,
    _write_report,
    add_config_flags,
    config_values,
)
from rnopt.errors import RnoptError
from rnopt.configs import EmbedConfig
from rnopt.report.render import print_table


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import embed_table

    _check_outputs(args, args.output, args.json)
    args.models = [args.model]
    specs = _plan(args, prefer_pytorch=True)
    if len(specs) > 1:
        raise RnoptError("rnopt embed runs one variant: give one --backend and one --precision")
    [spec] = specs
    with progress.task(f"embedding {args.data}", None) as advance:
        with _executor(args) as executor:
            record = api.embed(spec, args.data, args.output, EmbedConfig(**config_values(args, EmbedConfig)), advance,
                               force=args.force,
                               executor=executor)
    summary = record.embedded
    assert summary is not None
    if not args.quiet:
        print_table(embed_table(summary, args.data))
    _show_warnings(record.warnings + [f"skipped {line}" for line in summary.skipped[:20]])
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("embed", parents=[common], help="embed a folder of images with an embedding model (.npz)")
    p.add_argument("model", metavar="MODEL", help="an embedding model file (export --head features), or a built-in "
                                                 "name with --head features")
    p.add_argument("data", metavar="DIR", help="a folder of images (flat or one sub-folder per class), or cifar10")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    _add_model_options(p)
    _add_backend_options(p, "the first registered runtime that loads the model")
    add_config_flags(p, EmbedConfig)
    _add_cluster_option(p)
    p.set_defaults(func=run)
