"""``eiec sweep`` / ``eiec.runtime.sweep``: each point is ``eiec emulate`` of its program and
depth; the local and Ray engines give identical points; tables, JSON, CSV and plots."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from eiec.cli import main
from eiec.commands.argtypes import field_values
from eiec.emulator.ports import CLAMPED_FIX
from eiec.errors import EiecError, MachineError
from eiec.isa import format_program, save
from eiec.isa.program import Machine
from eiec.runtime.sweep import SweepPoint, SweepResult, _combinations, _speedups, emulate_task

from .handmade import handmade_mlp


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    made = handmade_mlp(pes=4, samples=2)
    folder = tmp_path_factory.mktemp("sweep")
    paths = {"model": folder / "m.onnx", "program": folder / "p.eie", "x": folder / "x.npy"}
    onnx.save(made.compressed, str(paths["model"]))
    save(made.program, paths["program"])
    np.save(paths["x"], made.x)
    return paths


def _emulated_cycles(program: Path, x: Path, depth: int, capsys: pytest.CaptureFixture) -> int:
    args = ["emulate", str(program), "-i", str(x), "--fifo-depth", str(depth), "--json"]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)["batch"]["cycles"]


@pytest.mark.parametrize("depth", [1, 2, 8])
def test_a_point_is_eiec_emulate_of_its_program(
    files: dict[str, Path], depth: int, capsys: pytest.CaptureFixture
) -> None:
    text = files["program"].read_text(encoding="utf-8")
    point = emulate_task(text, np.load(files["x"]), depth, None)
    assert point.cycles == _emulated_cycles(files["program"], files["x"], depth, capsys)
    assert (point.pes, point.fifo_depth, point.clock_mhz, point.error) == (4, depth, 800.0, None)
    assert [layer["layer"] for layer in point.layers] == ["fc1", "fc2"]
    assert sum(layer["cycles"] for layer in point.layers) < point.cycles  # + codebooks, writebacks


def test_a_point_reports_what_went_wrong() -> None:
    made = handmade_mlp(pes=4, samples=1)
    point = emulate_task(format_program(made.program), np.zeros((1, 3)), 8, None)
    assert point.cycles is None
    assert point.error == (
        "<string>: input 'input' has shape (1, 3), expected (1, 64) (reshape the array to the "
        "port's shape; a batch of B samples along axis 0 (size B instead of 1) is also accepted)"
    )


def test_speedup_is_over_the_smallest_pe_count_at_the_same_depth() -> None:
    points = [
        SweepPoint(pes=2, fifo_depth=1, clock_mhz=800.0, cycles=1000),
        SweepPoint(pes=2, fifo_depth=8, clock_mhz=800.0, cycles=800),
        SweepPoint(pes=8, fifo_depth=1, clock_mhz=800.0, cycles=500),
        SweepPoint(pes=8, fifo_depth=8, clock_mhz=800.0, cycles=200),
        SweepPoint(pes=16, fifo_depth=8, clock_mhz=800.0, error="does not fit"),
    ]
    _speedups(points, 2)
    assert [p.speedup for p in points] == [1.0, 1.0, 2.0, 4.0, None]


def _sweep(files: dict[str, Path], out: Path, engine: str) -> dict:
    args = ["sweep", str(files["model"]), "-i", str(files["x"]), "--pes", "4,1", "--fifo-depth"]
    args += ["1,8", "--sparsity", "0", "--engine", engine, "--workers", "2", "-q"]
    assert main([*args, "--json", str(out / f"{engine}.json"), "--csv", str(out / "p.csv")]) == 0
    return json.loads((out / f"{engine}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def local(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("local")
    return _sweep(files, out, "local"), out


@pytest.mark.slow
def test_local_sweep_points_are_eiec_compile_then_emulate(
    files: dict[str, Path], local: tuple[dict, Path], capsys: pytest.CaptureFixture
) -> None:
    report, out = local
    points = report["points"]
    assert [(p["pes"], p["fifo_depth"]) for p in points] == [(1, 1), (1, 8), (4, 1), (4, 8)]
    for pes in (1, 4):
        program = out / f"p{pes}.eie"
        compile_args = ["compile", str(files["model"]), "-o", str(program), "--pes", str(pes)]
        assert main([*compile_args, "--sparsity", "0", "-q"]) == 0
        for point in (p for p in points if p["pes"] == pes):
            depth = point["fifo_depth"]
            assert point["cycles"] == _emulated_cycles(program, files["x"], depth, capsys)
    assert [p["speedup"] for p in points][:2] == [1.0, 1.0]
    rows = list(csv.DictReader((out / "p.csv").open(encoding="utf-8")))
    assert [int(row["cycles"]) for row in rows] == [p["cycles"] for p in points]
    assert list(rows[0])[-2:] == ["w1 cycles", "w2 cycles"]  # layers named after weights


@pytest.mark.slow
def test_table_and_plots(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    args = ["sweep", str(files["model"]), "-i", str(files["x"]), "--pes", "1,2"]
    args += ["--fifo-depth", "2", "--sparsity", "0", "--workers", "1", "--plot", str(tmp_path)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "EIE design space (2 points, local" in text
    assert "w1 " in text and "speed-up" in text
    for name in ("speedup.png", "load_efficiency.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_ray_engine_gives_the_local_points(
    files: dict[str, Path], local: tuple[dict, Path], tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray")
    report = _sweep(files, tmp_path, "ray")
    assert not ray.is_initialized()  # the local Ray started for the sweep is shut down
    assert report["engine"] == "ray"
    assert report["points"] == local[0]["points"]


def test_a_plot_folder_that_is_a_file_is_refused_before_the_sweep(
    files: dict[str, Path], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eiec.runtime.sweep as sweep_module

    def no_sweep(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sweep ran")

    monkeypatch.setattr(sweep_module, "sweep", no_sweep)
    blocker = tmp_path / "plots"
    blocker.write_text("a file")
    args = ["sweep", str(files["model"]), "-i", str(files["x"]), "--pes", "1,2"]
    assert main([*args, "--plot", str(blocker)]) == 1
    assert capsys.readouterr().err == (
        f"eiec sweep: error: {blocker}: is not a folder "
        "(give the path of a folder; a missing one is made)\n"
    )
    assert blocker.read_text() == "a file"


def test_set_values_parse() -> None:
    assert field_values("spmat_sram=64K,128K, 1M") == ("spmat_sram", [65536, 131072, 1 << 20])
    assert field_values("clock-mhz=800,1.2e3,950.5") == ("clock_mhz", [800, 1200, 950.5])
    for bad, message in (
        ("spmat_sram", "expected FIELD=V,V,..."),
        ("spmat_sram=64K,x", "'x' in 'spmat_sram=64K,x' is not a positive number"),
        ("spmat_sram=0", "'0' in 'spmat_sram=0' is not a positive number"),
        ("ptr_bits=16,16", "a value is given twice"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            field_values(bad)


def test_settings_combine_in_order_and_are_checked() -> None:
    combos = _combinations({"spmat_sram": [65536, 131072], "clock_mhz": [800, 1000]}, Machine())
    assert combos == [
        (("spmat_sram", 65536), ("clock_mhz", 800)),
        (("spmat_sram", 65536), ("clock_mhz", 1000)),
        (("spmat_sram", 131072), ("clock_mhz", 800)),
        (("spmat_sram", 131072), ("clock_mhz", 1000)),
    ]
    assert _combinations({}, Machine()) == [()]
    with pytest.raises(EiecError, match="swept by its own option"):
        _combinations({"pes": [2]}, Machine())
    with pytest.raises(MachineError, match="unknown machine field 'spmat_srm'"):
        _combinations({"spmat_srm": [2]}, Machine())
    with pytest.raises(MachineError, match="ptr_bits"):
        _combinations({"ptr_bits": [12, 13]}, Machine())


def test_a_point_has_energy_power_and_area(files: dict[str, Path]) -> None:
    text = files["program"].read_text(encoding="utf-8")
    point = emulate_task(text, np.load(files["x"]), 8, None)
    small = emulate_task(text, np.load(files["x"]), 8, None, "28nm")
    samples = len(np.load(files["x"]))
    assert point.energy_per_inference_pj == pytest.approx(point.energy_pj / samples)
    assert point.power_mw == pytest.approx(point.energy_pj / point.time_us / 1e3)
    assert point.gops_per_w == pytest.approx(point.gops / (point.power_mw / 1e3))
    assert point.area_mm2 == pytest.approx(4 * 0.638024, rel=1e-5)  # 4 PEs of Table II's
    assert small.area_mm2 / point.area_mm2 == pytest.approx(0.39092)
    assert small.energy_pj / point.energy_pj == pytest.approx(0.66667)
    assert small.cycles == point.cycles


@pytest.mark.slow
def test_sweep_over_machine_fields(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    args = ["sweep", str(files["model"]), "-i", str(files["x"]), "--pes", "4", "--fifo-depth"]
    args += ["8", "--sparsity", "0", "--workers", "1", "--set", "spmat_sram=64,8K,16K"]
    args += ["--set", "act_sram=2K,4K", "--json", str(tmp_path / "s.json")]
    args += ["--csv", str(tmp_path / "s.csv"), "--plot", str(tmp_path / "plots")]
    assert main(args) == 0
    assert "spmat_sram" in capsys.readouterr().out
    points = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["points"]
    assert [p["settings"] for p in points] == [
        {"spmat_sram": s, "act_sram": a} for s in (64, 8192, 16384) for a in (2048, 4096)
    ]
    fits = points[2:]
    # 64 B of sparse matrix per PE: the layers stream from DRAM, and wait for it.
    streamed = points[:2]
    assert all(p["error"] is None and p["cycles"] > fits[0]["cycles"] for p in streamed)
    assert all(p["compute_cycles"] < p["cycles"] for p in streamed)
    assert len({p["cycles"] for p in fits}) == 1  # memory sizes do not change the cycles
    areas = [p["area_mm2"] for p in fits]
    # 8 KB more sparse-matrix SRAM per PE: 4 PEs x 8192 B x 3.5813 um^2/B, filler cells added.
    assert areas[2] - areas[0] == pytest.approx(4 * 8192 * 469412 / 131072 * 1.039021e-6)
    assert areas[1] > areas[0]
    assert fits[2]["energy_pj"] > fits[0]["energy_pj"]  # larger SRAMs cost more per access
    rows = list(csv.DictReader((tmp_path / "s.csv").open(encoding="utf-8")))
    assert list(rows[0])[:4] == ["pes", "fifo_depth", "spmat_sram", "act_sram"]
    assert float(rows[2]["area_mm2"]) == pytest.approx(areas[0])
    for name in ("power.png", "machine_fields.png"):
        assert (tmp_path / "plots" / name).read_bytes().startswith(b"\x89PNG")


def test_a_bandwidth_sweep_plots_a_roofline(tmp_path: Path) -> None:
    points = [
        SweepPoint(
            pes=64,
            fifo_depth=8,
            clock_mhz=800.0,
            settings={"dram_gbps": gbps},
            cycles=cycles,
            compute_cycles=8000,
            time_us=cycles / 800,
            speedup=1.0,
            load_efficiency=0.9,
            alu_utilization=0.9,
            energy_pj=1e6,
            energy_per_inference_pj=1e6,
            power_mw=500.0,
            gops=90.0,
            gops_per_w=180.0,
            area_mm2=40.8,
        )
        for gbps, cycles in ((1, 64000), (4, 16000), (16, 8100), (64, 8000))
    ]
    result = SweepResult(points, Machine(), "local", 1, 0.0)
    paths = result.plot(tmp_path)
    assert [p.name for p in paths] == [
        "speedup.png",
        "load_efficiency.png",
        "power.png",
        "machine_fields.png",
    ]
    assert (tmp_path / "machine_fields.png").read_bytes().startswith(b"\x89PNG")
    assert "dram_gbps" in result.to_csv().splitlines()[0]


def test_a_field_given_twice_is_refused_before_the_sweep(files: dict[str, Path], capsys) -> None:
    args = ["sweep", str(files["model"]), "-i", str(files["x"]), "--set", "ptr_bits=16,32"]
    assert main([*args, "--set", "ptr_bits=8"]) == 1
    assert capsys.readouterr().err == (
        "eiec sweep: error: --set: the machine field ptr_bits is given twice (give it once)\n"
    )
    assert main([*args, "--ptr-bits", "16"]) == 1
    assert "given both as --ptr-bits and in --set" in capsys.readouterr().err
    assert main([*args[:-2], "--set", "pes=2,4"]) == 1
    assert "swept by its own option (give --pes N,N,... instead)" in capsys.readouterr().err


def test_a_point_carries_emulates_saturation_warnings(files: dict[str, Path]) -> None:
    text = files["program"].read_text(encoding="utf-8")
    x = np.load(files["x"])
    assert emulate_task(text, x, 8, None).warnings == []
    x[0, :3] = 1e4  # beyond the input buffer's range: clamped
    point = emulate_task(text, x, 8, None)
    assert point.warnings[0] == {
        "what": "input 'input': 3 of 128 values are beyond its 16-bit buffer's range (+-2, the "
        "format of 14 fraction bits) and were clamped, so the outputs are those of other inputs",
        "fix": CLAMPED_FIX,
    }


def test_each_distinct_warning_is_given_once_with_the_points_that_gave_it() -> None:
    clamp = {"what": "input 'x': clamped", "fix": "calibrate"}
    inside = {"what": "words saturated", "fix": "calibrate"}
    points = [SweepPoint(pes=n, fifo_depth=8, clock_mhz=800.0) for n in (1, 2, 4)]
    for point in points:
        point.warnings = [clamp]
    points[2].warnings.append(inside)
    result = SweepResult(points, Machine(), "local", 1, 0.0)
    assert result.warnings() == [
        ("input 'x': clamped; at every point", "calibrate"),
        ("words saturated; at 1 of 3 points (4 PEs FIFO 8)", "calibrate"),
    ]


@pytest.mark.slow
def test_the_sweep_command_warns_of_saturation(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    x = np.load(files["x"])
    x[0, :3] = 1e4
    np.save(tmp_path / "x.npy", x)
    args = ["sweep", str(files["model"]), "-i", str(tmp_path / "x.npy"), "--pes", "1,2"]
    assert main([*args, "--fifo-depth", "2", "--sparsity", "0", "--workers", "1", "-q"]) == 0
    assert capsys.readouterr().err == (
        f"eiec sweep: warning: {files['model']}: input 'input': 3 of 128 values are beyond its "
        "16-bit buffer's range (+-16, the format of 11 fraction bits) and were clamped, so the "
        f"outputs are those of other inputs; at every point ({CLAMPED_FIX})\n"
    )
