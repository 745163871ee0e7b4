"""``eiec emulate --plot``: a PNG of the PE cycle breakdown; a clear error without matplotlib."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from eiec.cli import main
from eiec.isa import save
from eiec.isa.builder import fc_program

from .programs import big_machine

CODES = np.array([[1, 0, 2], [0, 3, 0], [2, 2, 2], [0, 0, 1]], dtype=np.uint8)
BOOK = np.array([0, 256, -128, 64], dtype=np.int16)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    save(fc_program([CODES], [BOOK], [8], [8, 8], machine=big_machine(2)), tmp_path / "p.eie")
    np.save(tmp_path / "x.npy", np.array([[1.0, 2.0, -0.5], [0.5, 0.0, 1.0]], dtype=np.float32))
    return tmp_path


def test_plot_writes_a_png(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    plot = files / "pes.png"
    args = ["emulate", str(files / "p.eie"), "-i", str(files / "x.npy"), "--plot", str(plot)]
    assert main([*args, "--json"]) == 0
    assert plot.read_bytes()[:8] == PNG_MAGIC
    assert not list(files.glob(".pes.png.*"))  # written atomically: no temporary left behind


def test_plot_without_matplotlib_says_how_to_install_it(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    plot = files / "pes.png"
    args = ["emulate", str(files / "p.eie"), "-i", str(files / "x.npy"), "--plot", str(plot)]
    assert main([*args, "--json"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"eiec emulate: error: {plot}: cannot plot: matplotlib is not installed "
        "(pip install 'eiec[plot]')"
    )
    assert not plot.exists()
