"""Knowledge distillation with labels (``TrainOptions.distill``): the soft targets and the
engine's ``soft_cross_entropy`` loss."""

from __future__ import annotations

import numpy as np
import pytest

from eiec.frontend.read import read_onnx
from eiec.training.backbone import build_backbone, fixed_inputs, read_layers
from eiec.training.compress import RECURRENT_DISTILL, Trainer, TrainOptions, soft_targets
from eiec.training.data import TrainingData
from eiec.training.tvm_engine import TvmEngine
from tests.training.models import Digits


def test_soft_targets_mix_the_label_and_the_tempered_teacher() -> None:
    teacher = np.array([[2.0, 0.0, -2.0], [0.0, 4.0, 0.0]], np.float32)
    labels = np.array([0, 2])
    q = soft_targets(labels, teacher, 0.25, 2.0)
    assert q.dtype == np.float32 and q.shape == (2, 3)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-6)
    tempered = np.exp(teacher / 2.0) / np.exp(teacher / 2.0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(q, 0.75 * np.eye(3)[labels] + 0.25 * tempered, rtol=1e-6)
    np.testing.assert_array_equal(soft_targets(labels, teacher, 0.0, 2.0), np.eye(3)[labels])


def test_distill_defaults_on_for_recurrent_models_only() -> None:
    assert TrainOptions().distill_weight(recurrent=True) == RECURRENT_DISTILL > 0
    assert TrainOptions().distill_weight(recurrent=False) == 0.0
    assert TrainOptions(distill=0.0).distill_weight(recurrent=True) == 0.0
    assert TrainOptions(distill=0.3).distill_weight(recurrent=False) == 0.3


@pytest.mark.slow
def test_soft_cross_entropy_is_cross_entropy_against_a_distribution(digits: Digits) -> None:
    """Against one-hot targets the loss and every gradient equal the integer-label
    cross-entropy's; against a distribution q the loss is -sum(q * log_softmax(z)) / B."""
    module = read_onnx(digits.model).module
    layers = read_layers(module)
    engine = TvmEngine()
    backbone = build_backbone(module, layers, 0, 16)
    x, y = digits.train_x[:16], digits.train_y[:16]
    params = [p for layer in layers for p in (*layer.weights, layer.bias)]
    sessions = {}
    for loss in ("cross_entropy", "soft_cross_entropy"):
        session = engine.session(backbone, loss, 1e-3)
        session.reset(params)
        session.set_fixed(fixed_inputs(backbone, layers))
        sessions[loss] = session
    onehot = np.eye(10, dtype=np.float32)[y]
    hard = sessions["cross_entropy"].gradients([x], y)
    soft = sessions["soft_cross_entropy"].gradients([x], onehot)
    for a, b in zip(hard, soft, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    q = np.random.default_rng(0).dirichlet(np.ones(10), 16).astype(np.float32)
    z = sessions["soft_cross_entropy"].predict([x]).astype(np.float64)
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    expected = -(q * log_p).sum() / 16
    assert sessions["soft_cross_entropy"].step([x], q) == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_distill_trains_against_the_dense_models_soft_outputs(digits: Digits) -> None:
    """With ``distill`` the trainer's targets are the dense model's tempered outputs mixed
    with the labels; without, the labels."""
    module = read_onnx(digits.model).module
    data = TrainingData(digits.train_x, digits.train_y)
    plain = Trainer(module, data, 0, TrainOptions(epochs=1))
    assert plain.soft_targets is None and plain.report.distill == 0.0
    index = np.arange(8)
    np.testing.assert_array_equal(plain._targets(index), plain.train_data.y[index])
    trainer = Trainer(module, data, 0, TrainOptions(epochs=1, distill=0.5, temperature=2.0))
    part = trainer.train_data
    from onnx.reference import ReferenceEvaluator

    teacher = ReferenceEvaluator(digits.model).run(None, {"input": part.x})[0]
    expected = soft_targets(part.y, teacher, 0.5, 2.0)
    np.testing.assert_allclose(trainer._targets(index), expected[index], atol=1e-5)
    assert (trainer.soft_targets.argmax(axis=1) == part.y).all()
    assert trainer.report.distill == 0.5
