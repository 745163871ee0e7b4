"""The terminal the CLI prints its tables to, and tables that never cut a value.

On a narrow terminal rich would shorten cells with an ellipsis; :func:`print_table` instead lets
text wrap and, when a table still does not fit, drops columns from the right and says which
(``--json`` has them all).
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

from rich.console import Console, Group
from rich.table import Table

#: Width of tables written to a pipe or file: wide enough that no column is cut.
PIPE_WIDTH = 160


def console() -> Console:
    """A rich Console on stdout: the terminal's width on a terminal, ``PIPE_WIDTH`` otherwise."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=max(PIPE_WIDTH, shutil.get_terminal_size().columns))


def fit_table(table: Table, width: int, terminal: Console) -> Table:
    """``table`` with no cell shortened at ``width``: text wraps at spaces, and while the table
    cannot fit even so, its rightmost columns go (a caption names them)."""
    dropped: list[str] = []
    options = terminal.options.update(width=width, max_width=width)
    while len(table.columns) > 1 and terminal.measure(table, options=options).minimum > width:
        column = table.columns.pop()
        dropped.append(str(column.header) or f"column {len(table.columns) + 1}")
    if dropped:
        note = f"not shown at {width} columns: {', '.join(reversed(dropped))} (see --json)"
        table.caption = f"{table.caption}; {note}" if table.caption else note
    return table


def print_table(renderable: Any, terminal: Console | None = None) -> None:
    """Print a table, a ``Group`` of tables or any renderable, each table fitted to the width."""
    terminal = terminal or console()
    width = terminal.width
    items = list(renderable.renderables) if isinstance(renderable, Group) else [renderable]
    for item in items:
        terminal.print(fit_table(item, width, terminal) if isinstance(item, Table) else item)
