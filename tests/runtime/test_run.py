"""eiec.run / the top-level API, and the demo on a few images."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eiec


def test_import_eiec_does_not_load_tvm() -> None:
    code = "import sys, eiec; eiec.__version__; print('tvm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_api_names() -> None:
    from eiec.runtime import run as run_module
    from eiec.runtime import verify as verify_module

    assert eiec.run is run_module.run
    assert eiec.verify is verify_module.verify
    assert eiec.emulate is run_module.emulate
    with pytest.raises(AttributeError):
        eiec.does_not_exist  # noqa: B018


def test_run_skl_style_classifier_end_to_end(
    digits_dir: Path, digits_x: np.ndarray, digits_y: np.ndarray
) -> None:
    x, y = digits_x[:20], digits_y[:20]
    options = eiec.CompileOptions.of(pes=16, calibration=np.load(digits_dir / "calib_x.npy"))
    report = eiec.run(digits_dir / "digits_skl_style.onnx", x, labels=y, options=options)
    assert report.passed, report.verify.summary()
    assert set(report.outputs) == {"label", "probabilities"}
    assert report.outputs["label"].shape == (20,)
    assert report.accuracy is not None and report.accuracy.emulator >= 0.85
    assert report.stats.samples == 20 and report.per_inference()["cycles"] > 0
    stats = report.stats
    assert stats.power_mw == pytest.approx(stats.energy_pj / stats.time_us / 1e3)
    assert stats.energy_per_inference_pj == pytest.approx(stats.energy_pj / 20)
    assert stats.chip_area_mm2 == pytest.approx(16 * 0.638024, rel=1e-5)  # 16 PEs, Table II
    assert f"{stats.power_mw:.1f} mW" in report.summary()
    # The label EIE + CPU tail gives is the arg-max of the emulated logits.
    logits = report.verify.emulator_outputs[next(iter(report.verify.emulator_outputs))]
    np.testing.assert_array_equal(report.outputs["label"], logits.argmax(axis=1))


def test_emulate_takes_a_path_or_a_program(tmp_path: Path, digits_dir: Path) -> None:
    from eiec.isa import save

    compiled = eiec.compile_model(digits_dir / "digits_mlp.onnx", eiec.CompileOptions.of(pes=4))
    save(compiled.program, tmp_path / "p.eie")
    x = np.load(digits_dir / "test_x.npy")[:3]
    by_path = eiec.emulate(tmp_path / "p.eie", x)
    by_object = eiec.emulate(compiled.program, x)
    (name,) = by_path.outputs
    assert by_path.outputs[name].shape == (3, 10)
    np.testing.assert_array_equal(by_path.outputs[name], by_object.outputs[name])


@pytest.mark.slow
def test_demo_smoke(digits_dir: Path, capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location("digits_demo", digits_dir / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main(["--limit", "12"]) == 0
    out = capsys.readouterr().out
    assert "EIE demo: digits MLP 64-128-64-10, 12 held-out images, 64 PEs" in out
    assert "verify    PASSED" in out
