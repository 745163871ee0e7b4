"""The BYOC partitioner trains too: ``partition_for_eie(mod, train={"x": samples})``."""

from __future__ import annotations

import numpy as np
import pytest

from eiec.byoc import run_onnx
from eiec.errors import BackendError
from tests.training.models import Digits

pytestmark = pytest.mark.slow


def test_offloaded_functions_train_on_their_inputs(digits: Digits) -> None:
    """Each offloaded function is trained against its own outputs (distillation) on the
    inputs the training samples give it: at 90% sparsity the offloaded classifier stays
    within 4 points of the dense model (distillation matches logits, not labels; compiled
    without training, the same model loses about 60: test_compile_train)."""
    x, y = digits.test_x[:100], digits.test_y[:100]
    samples = digits.train_x[:, None, :]  # one run of main (input [1, 64]) per sample
    trained = run_onnx(digits.model, x, train={"x": samples}, epochs=60, pes=4, sparsity=0.9)
    logits = next(iter(trained.outputs.values()))
    accuracy = float(np.mean(logits.argmax(axis=1) == y))
    dense = digits.dense_accuracy(x, y)
    assert accuracy >= dense - 0.04, (accuracy, dense)


def test_train_takes_no_labels(digits: Digits) -> None:
    with pytest.raises(BackendError) as error:
        run_onnx(digits.model, digits.test_x[:2], train={"x": digits.train_x, "y": digits.train_y})
    assert str(error.value) == (
        "eiec.byoc.partition_for_eie: BYOC trains each offloaded function against its own "
        "outputs: labels are not used (pass train={'x': x} without y)"
    )
