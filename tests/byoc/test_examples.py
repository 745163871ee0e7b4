"""The BYOC examples run end to end and print the EIE profile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "byoc"


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args",
    [("small_cnn.py", ["--batch", "1", "--pes", "16"]), ("skl_classifier.py", ["--samples", "20"])],
)
def test_example_prints_the_profile(script: str, args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = done.stdout.splitlines()
    assert any(line.startswith("function / layer") for line in lines)
    assert any(line.startswith("  fc1 ") for line in lines)
    assert any(line.startswith("total ") for line in lines)
