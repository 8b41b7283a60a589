"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network), printable."""
from __future__ import annotations

from html import escape

from rnopt.report.document import Bullets, Code, Heading, Paragraph, Plot, build_document
from rnopt.report.loading import ReportData, from_record
from rnopt.report.tables import Table
from rnopt.results import RENDERERS

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1b1f24; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1rem; }
.headline { font-size: 1.1rem; background: #eef6ee; border-left: 4px solid #2da44e; padding: .6rem .9rem; }
.warnings li { color: #9a6700; }
table { border-collapse: collapse; margin: .5rem 0 1.2rem; font-size: 12.5px; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f6f8fa; }
caption { caption-side: bottom; text-align: left; color: #57606a; font-size: 12px; padding-top: 3px; }
figure.plot { margin: 1rem 0 1.5rem; } figure.plot svg { max-width: 100%; height: auto; }
figcaption { font-weight: 600; margin-bottom: .3rem; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
@media print { body { max-width: none; margin: 0; } figure.plot, table { break-inside: avoid; } }
"""


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    caption = f"<caption>{escape(table.note)}</caption>" if table.note else ""
    return f"<h3>{escape(table.title)}</h3>\n<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _block(block: object) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        css = f' class="{block.css}"' if block.css else ""
        return f"<p{css}>{escape(block.text)}</p>"
    if isinstance(block, Bullets):
        css = f' class="{block.css}"' if block.css else ""
        return f"<ul{css}>" + "".join(f"<li>{escape(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Code):
        return "<pre>" + escape("\n".join(block.lines)) + "</pre>"
    if isinstance(block, Plot):
        # matplotlib writes well-formed SVG and escapes the text it draws.
        return f'<figure class="plot" data-plot="{escape(block.name)}"><figcaption>{escape(block.title)}</figcaption>{block.svg}</figure>'
    if isinstance(block, Table):
        return _table(block)
    raise TypeError(f"unknown block {type(block).__name__}")


def to_html(data: ReportData) -> str:
    body = "\n".join(_block(b) for b in build_document(data))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(data.title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


RENDERERS["html"] = lambda record: to_html(from_record(record))  # Record.to_html()
