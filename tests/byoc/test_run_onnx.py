"""run_onnx: a whole ONNX model, host ops included, with its FC layers on EIE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from eiec.byoc import run_onnx
from eiec.errors import InputError
from eiec.runtime.reference import run_reference

from .models import mlp_onnx

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


@pytest.mark.slow
def test_skl_style_classifier_labels_match_the_cpu() -> None:
    model = onnx.load(DIGITS / "digits_skl_style.onnx")
    x = np.load(DIGITS / "test_x.npy")[:20]
    calibration = np.load(DIGITS / "calib_x.npy")[:, None, :]
    # The model is 90% sparse: sparsity 0.9 prunes nothing, 4-bit sharing changes the weights.
    result = run_onnx(model, x, pes=16, sparsity=0.9, calibration=calibration)
    cpu = run_reference(model, {"X": x})
    assert set(result.outputs) == {"label", "probabilities"}
    assert np.mean(result.outputs["label"] == cpu["label"]) >= 0.9
    total = result.profile.total()
    assert total["calls"] == 20 and total["cycles"] > 0


def test_inputs_are_checked() -> None:
    with pytest.raises(InputError, match=r"inputs do not match the model: missing \['x'\]"):
        run_onnx(mlp_onnx([4, 3], seed=1), {"y": np.zeros((1, 1, 4), np.float32)}, pes=4)
