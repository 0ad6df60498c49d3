"""Print a Rich table on stdout so that no cell is ever cut.

On a terminal a table fits the terminal (Rich wraps long cells). Piped or redirected,
Rich would assume 80 columns and cut or squeeze every wide table; there it is printed at
its full natural width instead, so `plait search ... > hits.txt` keeps whole paths and
names. Every table the `plait` commands print goes through `print_table`.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console

#: Width given to Rich when stdout is not a terminal: wider than any table it prints.
FULL_WIDTH = 100_000


def print_table(table: Any) -> None:
    """Print `table` (any Rich renderable) on stdout, never cut when not on a terminal."""
    width = None if sys.stdout.isatty() else FULL_WIDTH
    Console(width=width).print(table)
