"""A run's report files: report.json (the record), and report.md and report.html rendered from what that JSON
says; for `rnopt tune`, the deploy folder too (rnopt.report.deploy). `rnopt run` and `rnopt tune` compute a Record; their caller (the API) writes these."""
from __future__ import annotations

from pathlib import Path

from rnopt.fileio import write_json, write_text
from rnopt.report.deploy import write_deploy
from rnopt.report.html import to_html
from rnopt.report.loading import from_payload
from rnopt.report.markdown import to_markdown
from rnopt.results import Record


def write_reports(record: Record, out: Path) -> None:
    if record.kind == "tune":
        write_deploy(record, out)  # first: a warning it gives is part of the record
    payload = record.to_dict()
    write_json(out / "report.json", payload)
    data = from_payload(payload, str(out / "report.json"))  # the renderers read what the JSON says
    write_text(out / "report.md", to_markdown(data))
    write_text(out / "report.html", to_html(data))
