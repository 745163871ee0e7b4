"""``eiec compile --train`` on scikit-learn's digits: Deep Compression's accuracy comes from
training (a dense MLP at 90% sparsity), deterministically."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.conftest import EMULATED, Compiled

pytestmark = pytest.mark.slow


def test_training_keeps_a_dense_model_within_one_point(compiled_digits: Compiled) -> None:
    """At 90% sparsity with --train the emulated program loses at most 1 point against the
    dense float model; without training it loses far more (> 10 points)."""
    dense = compiled_digits.dense_accuracy
    assert dense > 0.95
    assert compiled_digits.trained_accuracy >= dense - 0.01, (
        f"trained {compiled_digits.trained_accuracy:.2%} vs dense {dense:.2%} "
        f"on {EMULATED} test images"
    )
    assert compiled_digits.untrained_accuracy < dense - 0.10


def test_the_program_keeps_the_trained_sparsity(compiled_digits: Compiled) -> None:
    report = compiled_digits.trained.report
    assert [round(layer.weight_density, 3) for layer in report.layers] == [0.1, 0.1, 0.1]
    assert report.total.quantization_rmse == 0.0  # ShareWeights kept the trained codebook


def test_fine_tuning_lowers_the_training_loss_of_the_shared_model(
    compiled_digits: Compiled,
) -> None:
    training = compiled_digits.trained.training
    assert training.fine_tuned_train_loss < training.shared_train_loss


def test_report_has_every_stage_and_epoch(compiled_digits: Compiled) -> None:
    training = compiled_digits.trained.training
    data = training.to_json()
    assert [s["stage"] for s in data["stages"]] == [
        "dense",
        "pruned",
        "retrained",
        "shared",
        "fine-tuned",
        "emulated",
    ]
    assert [e["stage"] for e in data["epochs"]] == ["retrain"] * 30 + ["fine-tune"] * 15
    assert data["distill"] == 0.0  # an FC model trains on the labels alone by default
    pruned, retrained = training.stage("pruned"), training.stage("retrained")
    assert retrained.accuracy > pruned.accuracy + 0.2


def test_same_data_and_seed_give_the_same_program(digits) -> None:
    import eiec
    from eiec.isa import format_program

    def compile_once(seed: int) -> str:
        options = eiec.CompileOptions.of(
            pes=4,
            sparsity=0.8,
            train={"x": digits.train_x[:400], "y": digits.train_y[:400]},
            epochs=2,
            seed=seed,
        )
        return format_program(eiec.compile_model(digits.model, options).program)

    first = compile_once(1)
    assert compile_once(1) == first
    assert compile_once(2) != first
    assert np.isfinite(len(first))
