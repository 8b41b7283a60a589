"""Markdown (report.md): the headline and tables of a report, for pasting into a pull request."""
from __future__ import annotations

from rnopt.report.document import Bullets, Code, Heading, Paragraph, Plot, build_document
from rnopt.report.loading import ReportData, from_record
from rnopt.report.render import markdown_table, markdown_text, printable
from rnopt.report.tables import Table
from rnopt.results import RENDERERS


def to_markdown(data: ReportData) -> str:
    parts = []
    for block in build_document(data, with_plots=False):
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {markdown_text(block.text)}\n")
        elif isinstance(block, Paragraph):
            text = markdown_text(block.text)
            parts.append(f"**{text}**\n" if block.css == "headline" else f"{text}\n")
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {markdown_text(item)}" for item in block.items) + "\n")
        elif isinstance(block, Code):
            parts.append("\n".join(f"    {printable(line)}" for line in block.lines) + "\n")
        elif isinstance(block, Table):
            parts.append(markdown_table(block))
        elif isinstance(block, Plot):
            continue  # plots live in the HTML report
    return "\n".join(parts)


RENDERERS["markdown"] = lambda record: to_markdown(from_record(record))  # Record.to_markdown()
