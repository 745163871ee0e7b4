"""``eiec verify`` and ``eiec run``: exit codes, reports, JSON keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from eiec.cli import main
from eiec.isa import save
from tests.compiler.models import mlp

from .handmade import handmade_mlp

LSTM = Path(__file__).resolve().parents[2] / "examples" / "lstm"

VERIFY_KEYS = {
    "max_abs_error_vs_compressed",
    "max_rel_error_vs_compressed",
    "tolerance",
    "max_abs_error_vs_original",
    "top1_agreement_vs_original",
    "passed",
}


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    made = handmade_mlp()
    paths = {
        "model": tmp_path / "m.onnx",
        "program": tmp_path / "p.eie",
        "bad": tmp_path / "bad.eie",
        "x": tmp_path / "x.npy",
    }
    onnx.save(made.compressed, str(paths["model"]))
    save(made.program, paths["program"])
    np.save(paths["x"], made.x)
    values = made.program.layers["fc2"].codebook.values
    values[[3, 12]] = values[[12, 3]]
    save(made.program, paths["bad"])
    return paths


def test_verify_passes_with_exit_0(files: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    code = main(["verify", str(files["model"]), str(files["program"]), "--input", str(files["x"])])
    assert code == 0
    assert capsys.readouterr().out.startswith("verify PASSED: 6 sample(s), outputs logits")


def test_verify_json_keys(files: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    args = ["verify", str(files["model"]), str(files["program"]), "-i", str(files["x"])]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= VERIFY_KEYS
    assert report["passed"] is True
    assert report["top1_agreement_vs_original"] is None


def test_verify_corrupted_program_exits_1_naming_the_layer(
    files: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    code = main(["verify", str(files["model"]), str(files["bad"]), "--input", str(files["x"])])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.startswith("verify FAILED")
    assert "first diverges from the CPU in layer 'fc2'" in out
    problem = next(line for line in out.splitlines() if line.startswith("  problem: "))
    first = problem.removeprefix("  problem: ")
    assert err.startswith(f"eiec verify: error: verification failed: {first}")
    assert err.count("\n") == 1
    code = main(["verify", str(files["model"]), str(files["bad"]), "-i", str(files["x"]), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["passed"] is False and report["diverging_layer"] == "fc2"


def test_verify_missing_input_file_is_a_user_error(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "none.npy"
    code = main(["verify", str(files["model"]), str(files["program"]), "-i", str(missing)])
    assert code == 1
    assert capsys.readouterr().err == (
        f"eiec verify: error: {missing}: no such file (give a .npy file written by numpy.save)\n"
    )


@pytest.mark.slow
def test_run_json_has_verify_compile_and_emulator_keys(
    digits_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    x = np.load(digits_dir / "test_x.npy")[:8]
    y = np.load(digits_dir / "test_y.npy")[:8]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    model = str(digits_dir / "digits_skl_style.onnx")
    args = ["run", model, "-i", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")]
    code = main([*args, "--pes", "8", "--calibration", str(digits_dir / "calib_x.npy"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(report) >= VERIFY_KEYS | {"compile", "emulator", "accuracy", "cpu_tail"}
    assert report["path"] == "eie" and report["verify_scope"] == "model"
    assert report["samples"] == 8
    assert report["cpu_tail"] == ["Softmax", "ArgMax", "ArrayFeatureExtractor", "Reshape"]
    assert report["compile"]["pes"] == 8
    assert {"layers", "total"} <= set(report["compile"])
    assert report["emulator"]["samples"] == 8 and report["emulator"]["cycles"] > 0
    assert report["top1_agreement_vs_original"] is not None
    assert set(report["accuracy"]) == {"original", "compressed", "emulator"}


@pytest.mark.slow
def test_run_lstm_with_three_outputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # nn.LSTM(8, 16) exported with outputs y, h, c: EIE runs every node.
    x = np.random.default_rng(8).uniform(-1, 1, (5, 1, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = main(["run", str(LSTM / "lstm.onnx"), "-i", str(tmp_path / "x.npy"), "--pes", "16",
                 "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["problems"]
    assert report["path"] == "eie" and report["cpu_tail"] == []
    assert report["outputs"] == ["y", "h", "c"] and report["samples"] == 1
    assert report["max_abs_error_vs_compressed"] <= report["tolerance"]
    assert report["max_abs_error_vs_original"] is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "shape"),
    [("lstm", (5, 1, 8)), ("lstm_linear", (6, 1, 8)), ("lstm_bidir_legacy", (4, 1, 6))],
)
def test_verify_pytorch_lstm_exports(
    name: str, shape: tuple[int, ...], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """compile --export-onnx, then verify against the compressed and the original model (the
    legacy export keeps its Shape/Expand initial-state nodes in the compressed model)."""
    model, program, compressed = LSTM / f"{name}.onnx", tmp_path / "p.eie", tmp_path / "c.onnx"
    x = np.random.default_rng(9).uniform(-1, 1, shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = main(["compile", str(model), "-o", str(program), "--pes", "16", "--export-onnx",
                 str(compressed), "-q"])  # fmt: skip
    assert code == 0
    code = main(["verify", str(compressed), str(program), "-i", str(tmp_path / "x.npy"),
                 "--original", str(model), "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["problems"]
    assert report["max_abs_error_vs_compressed"] <= report["tolerance"]
    assert report["max_abs_error_vs_original"] is not None


def test_compile_and_run_read_the_same_compile_options(tmp_path: Path) -> None:
    from eiec.cli import build_parser
    from eiec.commands.options import options_from_args

    np.save(tmp_path / "c.npy", np.ones((2, 4), np.float32))
    flags = ["--pes", "8", "--sparsity", "fc0=0.5,*=0.7", "--bits", "3", "--fifo-depth", "4",
             "--calibration", str(tmp_path / "c.npy"), "--act-sram", "4096"]  # fmt: skip
    parser = build_parser()
    compile_args = parser.parse_args(["compile", "m.onnx", "-o", "p.eie", *flags])
    run_args = parser.parse_args(["run", "m.onnx", "-i", "x.npy", *flags])
    built = [options_from_args(args) for args in (compile_args, run_args)]
    assert built[0].calibration is not None and built[1].calibration is not None
    np.testing.assert_array_equal(built[0].calibration, built[1].calibration)
    for options in built:
        options.calibration = None
    assert built[0] == built[1]
    machine = built[0].machine
    assert (machine.pes, built[0].sparsity, built[0].default_sparsity) == (8, {"fc0": 0.5}, 0.7)
    assert (built[0].bits, machine.fifo_depth, machine.act_sram) == (3, 4, 4096)


def test_run_calibrates_on_its_own_inputs_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Inputs up to 40 saturate the input format of the default --input-range 8.
    onnx.save(mlp([16, 12, 5], seed=0), str(tmp_path / "m.onnx"))
    x = np.random.default_rng(0).uniform(-40, 40, (6, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = ["run", str(tmp_path / "m.onnx"), "-i", str(tmp_path / "x.npy"), "--pes", "4",
            "--sparsity", "0.5", "--json"]  # fmt: skip
    ranged = main([*args, "--input-range", "8"])
    report = json.loads(capsys.readouterr().out)
    assert ranged == 1 and report["calibration"] == "input-range"
    assert report["saturations"] > 0
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["calibration"] == "inputs" and report["saturations"] == 0
    assert report["relative_tolerance"] <= 0.02
    assert main(args[:-1]) == 0
    assert "formats: calibrated on this run's own inputs (no --calibration or --input-range " \
        "given)" in capsys.readouterr().out  # fmt: skip
