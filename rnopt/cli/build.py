"""`rnopt build`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse
from pathlib import Path

from rnopt.cli.common import _check_outputs, _show_warnings, _write_report
from rnopt.report.render import console


def run(args: argparse.Namespace) -> None:
    from rnopt import api

    spec = api.load_spec(args.spec, args.id)
    out = Path(args.output)
    model = out / f"model{spec.artifact.file_suffix}"
    _check_outputs(args, args.json, *([model, out / "spec.json"] if out.is_dir() else []))
    record = api.build(spec, args.output, force=args.force)
    _show_warnings(record.warnings)
    if not args.quiet:
        files = sorted(p.name for p in Path(args.output).iterdir() if p.name.startswith(("model.", "spec.json")))
        console.print(f"built {spec.artifact.name} (artifact {spec.artifact.id}) into {args.output}: "
                      f"{', '.join(files)}")
    _write_report(args, record)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("build", parents=[common],
                       help="build a spec's model file by its recipe (e.g. what tune chose) into a folder")
    p.add_argument("spec", metavar="SPEC.json", help="a spec file, or a report.json (default: tune's choice)")
    p.add_argument("--id", metavar="SPEC_ID", help="which spec of the report (its id)")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.set_defaults(func=run)
