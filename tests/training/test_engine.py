"""The TVM engine's pieces: the centroid gradient is the per-cluster sum, the AGP schedule,
``--sparsity auto``, the data checks."""

from __future__ import annotations

import numpy as np
import pytest

from eiec.errors import InputError
from eiec.frontend.read import read_onnx
from eiec.training import sensitivity
from eiec.training.backbone import build_backbone, fixed_inputs, read_layers
from eiec.training.compress import (
    Trainer,
    TrainOptions,
    prune_masks,
    share_layer,
    shared_weights,
)
from eiec.training.data import TrainingData, load_training_data
from eiec.training.schedule import agp_sparsity, pruning_steps
from eiec.training.tvm_engine import TvmEngine
from tests.training.models import Digits


def test_agp_schedule_is_cubic_and_reaches_the_target() -> None:
    values = [agp_sparsity(0.0, 0.9, k, 4) for k in range(1, 5)]
    assert values == pytest.approx(
        [0.9 - 0.9 * 0.75**3, 0.9 - 0.9 * 0.5**3, 0.9 - 0.9 * 0.25**3, 0.9]
    )
    assert pruning_steps(epochs=4, steps_per_epoch=10) == [0, 2, 5, 7, 10, 12, 15, 17]
    assert pruning_steps(epochs=1, steps_per_epoch=2) == [0, 1]


@pytest.mark.slow
def test_importance_weighted_sharing_fits_the_important_weights_closer(digits: Digits) -> None:
    """Hessian-weighted k-means (TrainOptions.weighted_sharing, which Trainer.share applies
    to recurrent layers): each value's empirical Fisher (mean squared gradient over the
    training split) weighs it in the clustering, so the importance-weighted distortion is
    lower than with every value alike."""
    module = read_onnx(digits.model).module
    data = TrainingData(digits.train_x, digits.train_y)
    layers = read_layers(module)
    for layer in layers:
        layer.masks = prune_masks(layer, 0.8)
        layer.weights = layer.effective()
    trainer = Trainer(module, data, 0, TrainOptions(epochs=1))
    importance = trainer.importance(layers)
    distortion = {}
    for weighted in (False, True):
        total = 0.0
        for layer in layers:
            scores = importance[layer.name]
            assert [a.shape for a in scores] == [layer.weights[0].shape, layer.bias.shape]
            assert all((a >= 0).all() for a in scores) and scores[0].max() > 0
            shared = share_layer(layer, 3, scores if weighted else None)
            final = shared_weights(layer, shared)
            pairs = zip([*layer.weights, layer.bias], [*final.weights, final.bias], strict=True)
            for score, (value, kept) in zip(scores, pairs, strict=True):
                total += float((score * (value - kept) ** 2).sum())
        distortion[weighted] = total
    assert distortion[True] < distortion[False], distortion


@pytest.mark.slow
def test_centroid_gradient_is_the_sum_over_its_cluster(digits: Digits) -> None:
    """take(codebook, indices) in the training graph: d loss / d centroid equals the sum of
    d loss / d weight over the weights (and bias values) of its cluster."""
    module = read_onnx(digits.model).module
    layers = read_layers(module)
    for layer in layers:
        layer.masks = prune_masks(layer, 0.9)
        layer.weights = layer.effective()
    shared = {layer.name: share_layer(layer, 4) for layer in layers}
    engine = TvmEngine()
    x, y = digits.train_x[:32], digits.train_y[:32]
    codebook = engine.session(build_backbone(module, layers, 0, 32, shared), "cross_entropy", 1e-4)
    codebook.reset([shared[layer.name].centroids for layer in layers])
    codebook.set_fixed(fixed_inputs(codebook.backbone, layers, shared))
    weights = engine.session(build_backbone(module, layers, 0, 32), "cross_entropy", 1e-3)
    book = {n: np.concatenate([[0.0], s.centroids]).astype(np.float32) for n, s in shared.items()}
    params = []
    for layer in layers:
        share = shared[layer.name]
        params += [book[layer.name][share.indices[0]], book[layer.name][share.bias_indices]]
    weights.reset(params)
    weights.set_fixed([np.ones_like(layer.weights[0]) for layer in layers])
    centroid_grads = codebook.gradients([x], y)
    weight_grads = iter(weights.gradients([x], y))
    for layer, grad in zip(layers, centroid_grads, strict=True):
        share = shared[layer.name]
        dw, db = next(weight_grads), next(weight_grads)
        sums = np.bincount(share.indices[0].ravel(), dw.ravel(), minlength=16)
        sums += np.bincount(share.bias_indices.ravel(), db.ravel(), minlength=16)
        np.testing.assert_allclose(grad, sums[1:], rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_sensitivity_gives_the_tolerant_layer_a_lower_density(digits: Digits) -> None:
    """fc1 (64 -> 128) has far more redundant weights than fc3 (64 -> 10)."""
    module = read_onnx(digits.model).module
    trainer = Trainer(module, TrainingData(digits.train_x, digits.train_y), 0, TrainOptions())
    table = sensitivity.analyse(trainer, max_drop=0.5)
    assert table.chosen["fc1"] < table.chosen["fc3"], table.chosen
    assert set(table.rows) == {"fc1", "fc2", "fc3"}
    for name, rows in table.rows.items():
        kept = [d for d, r in rows if table.drop(r) <= 0.5]
        assert table.chosen[name] == (min(kept) if kept else 1.0)


def _npz(tmp_path, **arrays: np.ndarray) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def test_data_errors_say_what_and_how(tmp_path) -> None:
    x = np.zeros((10, 64), np.float32)
    with pytest.raises(InputError) as error:
        load_training_data(_npz(tmp_path, y=np.zeros(10, np.int64)), (64,), 0, 10)
    assert str(error.value) == (
        f"{tmp_path}/data.npz: no array 'x' (there is y) (write it with "
        "numpy.savez(path, x=samples, y=labels) (y is optional))"
    )
    with pytest.raises(InputError) as error:
        load_training_data(_npz(tmp_path, x=np.zeros((10, 63))), (64,), 0, 10)
    assert str(error.value) == (
        f"{tmp_path}/data.npz: x has shape [10, 63]; the model takes samples [N, 64] "
        "(at least 2) (stack the samples along the model input's batch axis)"
    )
    with pytest.raises(InputError) as error:
        load_training_data(_npz(tmp_path, x=x, y=np.full(10, 10)), (64,), 0, 10)
    assert str(error.value) == (
        f"{tmp_path}/data.npz: labels range over [10, 10]; the model has 10 classes"
    )
    with pytest.raises(InputError) as error:
        load_training_data(_npz(tmp_path, x=x, y=np.zeros(10)), (64,), 0, 10)
    assert str(error.value) == (
        f"{tmp_path}/data.npz: y has dtype float64; labels are integer class indices (store "
        "y as integers, or leave y out to train against the model's own outputs)"
    )


def test_split_is_seeded_and_disjoint() -> None:
    data = TrainingData(np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10))
    train, held = data.split(0.3, seed=5)
    again, _ = data.split(0.3, seed=5)
    assert len(held) == 3 and len(train) == 7
    assert set(train.y) | set(held.y) == set(range(10))
    np.testing.assert_array_equal(train.x, again.x)
