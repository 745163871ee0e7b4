"""Session fixtures: one dense digits MLP, trained and compiled once, shared by the tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tests.training.models import Digits, dense_digits

#: Samples of the digits test split the emulator runs (of 450; enough for a 1-point margin).
EMULATED = 300


@pytest.fixture(scope="session")
def digits() -> Digits:
    """A dense 64-128-64-10 MLP (scikit-learn) and the digits split."""
    return dense_digits((128, 64))


def emulated_accuracy(program: object, digits: Digits) -> float:
    """Top-1 accuracy of ``program`` on the emulator over the first EMULATED test images."""
    import eiec

    x, y = digits.test_x[:EMULATED], digits.test_y[:EMULATED]
    outputs = eiec.emulate(program, x).outputs
    logits = next(iter(outputs.values()))
    return float(np.mean(logits.argmax(axis=1) == y))


@dataclass(frozen=True)
class Compiled:
    """The dense model's test accuracy and the programs compiled with and without training."""

    dense_accuracy: float
    trained: object
    trained_accuracy: float
    untrained_accuracy: float


@pytest.fixture(scope="session")
def compiled_digits(digits: Digits) -> Compiled:
    """The dense digits MLP compiled at 90% sparsity with and without ``--train``."""
    from onnx.reference import ReferenceEvaluator

    import eiec

    x, y = digits.test_x[:EMULATED], digits.test_y[:EMULATED]
    dense = ReferenceEvaluator(digits.model).run(None, {"input": x})[0]
    options = eiec.CompileOptions.of(pes=16, sparsity=0.9, calibration=digits.train_x[:64])
    untrained = eiec.compile_model(digits.model, options)
    trained_options = eiec.CompileOptions.of(
        pes=16,
        sparsity=0.9,
        calibration=digits.train_x[:64],
        train={"x": digits.train_x, "y": digits.train_y},
        epochs=30,
    )
    trained = eiec.compile_model(digits.model, trained_options)
    return Compiled(
        float(np.mean(dense.argmax(axis=1) == y)),
        trained,
        emulated_accuracy(trained.program, digits),
        emulated_accuracy(untrained.program, digits),
    )
