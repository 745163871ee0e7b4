"""Progress bars print nothing to a pipe or file, and the wrapped items pass through whole."""

from __future__ import annotations

import subprocess
import sys


def test_a_progress_bar_leaves_nothing_in_a_pipe() -> None:
    script = (
        "from eiec.console import progress_bar, track\n"
        "print('a')\n"
        "with progress_bar() as bar:\n"
        "    bar.add_task('x', total=1)\n"
        "print(list(track(range(3), 'y', total=3)))\n"
        "print('b')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout == "a\n[0, 1, 2]\nb\n"
    assert result.stderr == ""
