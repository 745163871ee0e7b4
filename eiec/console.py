"""The terminal the CLI prints its tables to, and tables that never cut a value.

On a narrow terminal rich would shorten cells with an ellipsis; :func:`print_table` instead lets
text wrap and, when a table still does not fit, drops columns from the right and says which
(``--json`` has them all).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console, Group
from rich.progress import Progress
from rich.table import Table

T = TypeVar("T")

#: Width of tables written to a pipe or file: wide enough that no column is cut.
PIPE_WIDTH = 160


def console() -> Console:
    """A rich Console on stdout: the terminal's width on a terminal, ``PIPE_WIDTH`` otherwise."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=max(PIPE_WIDTH, shutil.get_terminal_size().columns))


def progress_bar() -> Progress:
    """A transient progress bar on stdout; off when stdout is not a terminal (rich would leave
    a blank line in a pipe or file for every bar)."""
    return Progress(transient=True, disable=not sys.stdout.isatty())


def track(items: Iterable[T], description: str, total: int) -> Iterator[T]:
    """``items``, with a :func:`progress_bar` of ``total`` steps while they are consumed."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def fit_table(table: Table, width: int, terminal: Console) -> Table:
    """``table`` with no cell shortened at ``width``: text wraps at spaces, and while the table
    cannot fit even so, its rightmost columns go (a caption names them)."""
    dropped: list[str] = []
    while len(table.columns) > 1 and _least_width(table, terminal) > width:
        column = table.columns.pop()
        dropped.append(str(column.header) or f"column {len(table.columns) + 1}")
    if dropped:
        note = f"not shown at {width} columns: {', '.join(reversed(dropped))} (see --json)"
        table.caption = f"{table.caption}; {note}" if table.caption else note
    return table


def _least_width(table: Table, terminal: Console) -> int:
    """The narrowest ``table`` can be with every cell whole: a no-wrap column as wide as its
    widest cell, another as its longest word; plus padding and rules."""
    left, right = table.padding[3], table.padding[1]
    total = 0
    for column in table.columns:
        cells = [column.header, *column.cells] if table.show_header else list(column.cells)
        sizes = [terminal.measure(cell) for cell in cells]
        widest = max((m.maximum if column.no_wrap else m.minimum for m in sizes), default=0)
        total += widest + left + right
    if table.box is not None:
        total += len(table.columns) - 1 + (2 if table.show_edge else 0)
    return total


def print_table(renderable: Any, terminal: Console | None = None) -> None:
    """Print a table, a ``Group`` of tables or any renderable, each table fitted to the width."""
    terminal = terminal or console()
    width = terminal.width
    items = list(renderable.renderables) if isinstance(renderable, Group) else [renderable]
    for item in items:
        terminal.print(fit_table(item, width, terminal) if isinstance(item, Table) else item)
