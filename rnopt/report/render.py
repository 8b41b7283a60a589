"""Laying out `Table`s for the terminal (rich) and for Markdown."""
from __future__ import annotations

import html
import re
import unicodedata

from rich.table import Table as RichTable
from rich.text import Text

from rnopt.console import console, err_console
from rnopt.report.tables import Table

__all__ = ["console", "err_console", "markdown_table", "markdown_text", "print_table", "printable"]


def printable(text: str) -> str:
    """Control characters (terminal escape sequences in a file or model name) shown as \\xNN, not obeyed."""
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" and c not in "\n" else c for c in text)


def print_table(table: Table) -> None:
    rich_table = RichTable(title=Text(printable(table.title)), title_justify="left",
                           caption=Text(printable(table.note)) if table.note else None, caption_justify="left")
    for i, header in enumerate(table.headers):
        rich_table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
    for row in table.rows:
        rich_table.add_row(*(Text(printable(cell)) for cell in row))  # Text: "[openvino]" in a label is not markup
    console.print(rich_table)


_MARKDOWN_ACTIVE = str.maketrans({c: "\\" + c for c in "\\`*[]"})


def markdown_text(text: str) -> str:
    """Text from inputs, safe in Markdown: HTML in it (a <script> in a model name) stays text, and so does Markdown
    (a link, `javascript:` or not, emphasis, code; a line break followed by a heading or a quote)."""
    flat = " ".join(printable(text).splitlines())
    escaped = html.escape(flat, quote=False).translate(_MARKDOWN_ACTIVE)
    if escaped[:1] in ("#", "+", "-"):  # not a heading or a list item
        return "\\" + escaped
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", escaped)  # not a numbered list item


def _md_cell(text: str) -> str:
    return markdown_text(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table, level: int = 3) -> str:
    lines = [f"{'#' * level} {markdown_text(table.title)}", "",
             "| " + " | ".join(_md_cell(h) for h in table.headers) + " |",
             "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(table.headers))) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", _md_cell(table.note)]
    return "\n".join(lines) + "\n"
