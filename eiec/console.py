"""The terminal the CLI prints its tables to."""

from __future__ import annotations

import shutil
import sys

from rich.console import Console

#: Width of tables written to a pipe or file: wide enough that no column is cut.
PIPE_WIDTH = 160


def console() -> Console:
    """A rich Console on stdout: the terminal's width on a terminal, ``PIPE_WIDTH`` otherwise."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=max(PIPE_WIDTH, shutil.get_terminal_size().columns))
