"""``eiec emulate``: outputs, statistics, batches, errors (full messages), no TVM import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eiec.cli import main
from eiec.isa import save
from eiec.isa.builder import fc_program

from .programs import big_machine

CODES = np.array([[1, 0, 2], [0, 3, 0], [2, 2, 2], [0, 0, 1]], dtype=np.uint8)
BOOK = np.array([0, 256, -128, 64], dtype=np.int16)  # 1.0, -0.5, 0.25 at frac 8
X = np.array([[1.0, 2.0, -0.5]], dtype=np.float32)
# W = [[1, 0, -0.5], [0, 0.25, 0], [-0.5, -0.5, -0.5], [0, 0, 1]]; W @ x = [1.25, 0.5, -1.25,
# -0.5]; ReLU -> [1.25, 0.5, 0, 0].
Y = [[1.25, 0.5, 0.0, 0.0]]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    save(fc_program([CODES], [BOOK], [8], [8, 8], machine=big_machine(2)), tmp_path / "p.eie")
    np.save(tmp_path / "x.npy", X)
    return tmp_path


def test_outputs_and_json(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = files / "y.npy"
    code = main(
        ["emulate", str(files / "p.eie"), "-i", str(files / "x.npy"), "-o", str(out), "--json"]
    )
    assert code == 0
    assert np.load(out).tolist() == Y
    stats = json.loads(capsys.readouterr().out)
    for key in (
        "cycles",
        "time_us",
        "useful_macs",
        "padding_entries",
        "alu_utilization",
        "energy_pj",
        "energy_breakdown_pj",
        "saturations",
        "layers",
        "pes",
    ):
        assert key in stats
    # 4 codebook entries + MAC (K = 3; PE 0 rows 0, 2: w = [2, 1, 2]; PE 1 rows 1, 3:
    # w = [1 (pointer only), 1, 1]; depth 8 -> busiest PE 5) fill 1 + 1 + 1, window 5, drain 3
    # + writeback ceil(4 / 2) = 2.
    assert stats["cycles"] == 4 + 11 + 2
    assert stats["useful_macs"] == 7
    assert len(stats["pes"]) == 2
    assert stats["layers"][0]["layer"] == "fc0"


def test_table_trace_and_overrides(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "emulate",
            str(files / "p.eie"),
            "-i",
            f"x={files / 'x.npy'}",
            "--trace",
            "--fifo-depth",
            "1",
            "--clock-mhz",
            "400",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    # Depth 1: b = 1, 3, 5 (item 1 waits for both PEs to take item 0 at 2, item 2 for PE 0 to
    # take item 1 at 4); takes t = [2, 2], [4, 4], [6, 6]; PE 0's last entry slot 6 + 1 + 2 - 1
    # = 8: window 3..8 = 6 cycles, MAC 3 + 6 + 3 = 12 (depth 8: 11); 18 cycles at 400 MHz.
    assert "    2  [        4,        16)        12  sparse-column-mac fc0" in text
    assert "0.045 us" in text
    assert "1 / 400.0 MHz" in text


def test_batch_along_the_batch_axis(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(files / "xb.npy", np.concatenate([X, 2 * X, np.zeros_like(X)]))
    out = files / "yb.npy"
    assert (
        main(
            ["emulate", str(files / "p.eie"), "-i", str(files / "xb.npy"), "-o", str(out), "--json"]
        )
        == 0
    )
    assert np.load(out).tolist() == [Y[0], [2 * v for v in Y[0]], [0.0] * 4]
    report = json.loads(capsys.readouterr().out)
    assert report["batch"]["samples"] == 3
    # 4 + 11 + 2 cycles (the MAC: fill 3, window 5, drain 3); the zero sample has no
    # broadcast: 4 + 0 + 2 cycles.
    assert [run["cycles"] for run in report["runs"]] == [17, 17, 6]
    assert report["batch"]["cycles"] == 40


def _error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["emulate", *args]) == 1
    return capsys.readouterr().err.strip()


def test_input_errors(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prog = str(files / "p.eie")
    missing = str(files / "nope.npy")
    assert _error([prog, "-i", missing], capsys) == (
        f"eiec emulate: error: {missing}: no such file (give a .npy file written by numpy.save)"
    )
    (files / "t.txt").write_text("1 2 3")
    assert _error([prog, "-i", str(files / "t.txt")], capsys) == (
        f"eiec emulate: error: {files / 't.txt'}: not a .npy file (no NUMPY header) "
        "(give a .npy file written by numpy.save)"
    )
    np.save(files / "bad.npy", np.zeros((1, 5)))
    assert _error([prog, "-i", str(files / "bad.npy")], capsys) == (
        f"eiec emulate: error: {files / 'bad.npy'}: input 'x' has shape (1, 5), expected "
        "(1, 3) (reshape the array to the port's shape; a batch of B samples along axis 0 "
        "(size B instead of 1) is also accepted)"
    )
    np.save(files / "nan.npy", np.array([[1.0, np.inf, np.nan]]))
    assert _error([prog, "-i", str(files / "nan.npy")], capsys) == (
        f"eiec emulate: error: {files / 'nan.npy'}: input 'x' has inf at index (0, 1); inputs "
        "must be finite (2 value(s) are NaN or Inf) (replace NaN/Inf before emulating)"
    )
    np.save(files / "str.npy", np.array([["a", "b", "c"]]))
    assert _error([prog, "-i", str(files / "str.npy")], capsys) == (
        f"eiec emulate: error: {files / 'str.npy'}: input 'x' has dtype <U1, not a real "
        "number type (give a float32 (or other float/int) array)"
    )
    assert _error([prog], capsys) == (
        f"eiec emulate: error: {prog}: missing input 'x' (give --input NAME=X.npy for every "
        "input (x [1, 3]))"
    )
    assert _error([prog, "-i", f"z={files / 'x.npy'}"], capsys) == (
        f"eiec emulate: error: --input z={files / 'x.npy'}: the program has no input 'z' "
        "(its inputs are: x)"
    )


def test_missing_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error([str(tmp_path / "none.eie"), "-i", "x.npy"], capsys)
    assert err.startswith(f"eiec emulate: error: {tmp_path / 'none.eie'}: cannot read")


def test_emulate_does_not_import_tvm(files: Path) -> None:
    code = (
        "import sys; from eiec.cli import main; "
        f"rc = main(['emulate', {str(files / 'p.eie')!r}, '-i', {str(files / 'x.npy')!r}, "
        "'--json']); "
        "assert rc == 0; "
        "assert not [m for m in sys.modules if m == 'tvm' or m.startswith('tvm.')], 'tvm'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_emulate_reports_power_and_area_at_a_process(files: Path, capsys) -> None:
    base = ["emulate", str(files / "p.eie"), "-i", str(files / "x.npy"), "--json"]
    reports = {}
    for process in ("45nm", "28nm"):
        assert main([*base, "--process", process]) == 0
        reports[process] = json.loads(capsys.readouterr().out)
    at45, at28 = reports["45nm"], reports["28nm"]
    assert at45["process"] == "45nm" and at28["process"] == "28nm"
    assert at45["power_mw"] == pytest.approx(at45["energy_pj"] / at45["time_us"] / 1e3)
    assert at45["gops"] == pytest.approx(2 * 7 / at45["time_us"] / 1e3)  # 7 useful MACs
    assert at45["gops_per_w"] == pytest.approx(at45["gops"] / at45["power_mw"] * 1e3)
    assert sum(at45["energy_components_pj"].values()) == pytest.approx(at45["energy_pj"])
    assert list(at45["energy_components_pj"])[:4] == [
        "memory",
        "clock",
        "register",
        "combinational",
    ]
    assert at28["energy_pj"] / at45["energy_pj"] == pytest.approx(0.66667)
    assert at28["chip_area_mm2"] / at45["chip_area_mm2"] == pytest.approx(0.39092)
    assert at28["cycles"] == at45["cycles"]
    assert main([*base[:-1]]) == 0
    text = capsys.readouterr().out
    assert "average power" in text and "GOP/s" in text and "mm^2" in text
