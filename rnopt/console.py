"""The terminal: rich consoles for standard output and standard error, shared by the progress bars and the
renderers (neither imports the other)."""
from __future__ import annotations

import sys

from rich.console import Console

# Piped output (CI logs, `| less`) gets a wide fixed width so tables do not fold into unreadable columns.
_WIDTH = None if sys.stdout.isatty() else 200
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
