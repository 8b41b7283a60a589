"""`rnopt report`: its options and what it runs (through the API)."""
from __future__ import annotations

import argparse
from pathlib import Path

from rnopt.cli.common import _check_outputs, _write_report
from rnopt.report.render import console


def run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.fileio import write_json, write_text

    _check_outputs(args, args.output, args.json)
    merged = api.merge_results(args.results)
    fmt = args.format or {".md": "md", ".json": "json"}.get(Path(args.output).suffix, "html")
    if fmt == "json":
        write_json(args.output, merged.to_dict())
    else:
        write_text(args.output, merged.to_html() if fmt == "html" else merged.to_markdown())
    _write_report(args, merged)
    if not args.quiet:
        console.print(f"wrote {args.output} ({fmt}) from {len(args.results)} file(s)")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", parents=[common], help="merge bench/eval/run JSON files into one report")
    p.add_argument("results", nargs="+", metavar="RESULT.json")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="report.html, report.md or report.json")
    p.add_argument("--format", choices=["html", "md", "json"], help="default: from the output's extension")
    p.set_defaults(func=run)
