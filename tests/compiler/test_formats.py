"""Formats without calibration: the statistical bound (FIXED_POINT.md) fits deep dense models."""

from __future__ import annotations

import numpy as np
import pytest

from eiec.codegen.context import RANGE_SAFETY, spread_bound
from eiec.compiler import CompileOptions, compile_model
from eiec.runtime.verify import MAX_RELATIVE_TOLERANCE, verify

from .models import mlp


def test_spread_bound_of_a_row_is_its_bias_plus_the_safety_times_its_l2_norm() -> None:
    weights = np.array([[0.3, 0.4, 0.1], [0.0, 0.5, 0.2]])  # |W| with the bias column last
    bound, rms = spread_bound(weights, np.array([2.0, 1.0]), has_bias=True)
    spread = np.array([np.hypot(0.6, 0.4), 0.5])
    np.testing.assert_allclose(bound, [0.1, 0.2] + RANGE_SAFETY * spread)
    np.testing.assert_allclose(rms, np.hypot([0.1, 0.2], spread))


@pytest.mark.slow
def test_dense_pytorch_mlp_784_300_100_10_emulates_within_one_percent_without_calibration() -> None:
    # nn.Linear's default init, no pruning, no calibration, inputs like MNIST's (in [0, 1]).
    model = mlp([784, 300, 100, 10], init="torch", seed=0)
    result = compile_model(model, CompileOptions(sparsity=0.0))
    assert [result.formats[f"fc{i}.out"].source for i in range(3)] == ["spread"] * 3
    x = np.random.default_rng(1).uniform(0, 1, (8, 784)).astype(np.float32)
    report = verify(result.compressed_model, result.program, x)
    assert report.passed, report.summary()
    assert report.saturations == 0
    assert report.relative_tolerance <= MAX_RELATIVE_TOLERANCE
    # The goal itself: the emulator's output within 1% of the output range of the CPU's.
    assert report.max_abs_error_vs_compressed <= 0.01 * report.output_range
