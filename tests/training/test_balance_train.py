"""ESE with retraining: ``--balance --train`` prunes every PE's rows of a layer to the same
density at each step of the gradual pruning schedule, for FC and LSTM layers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import eiec
from eiec.compiler import CompileResult
from eiec.isa import format_program
from eiec.passes.prune_weights import per_pe_counts, row_owners
from eiec.training.backbone import LayerWeights
from eiec.training.compress import prune_masks
from tests.compiler.models import gemm_model
from tests.training.seq_models import lstm_classifier, sequence_data

PES = 4


def _skew_lstm(model: onnx.ModelProto) -> onnx.ModelProto:
    """The LSTM's gate rows of units on PE 0 (unit mod 4 == 0) three times larger: magnitude
    pruning keeps more of them."""
    graph = model.graph
    for index, init in enumerate(graph.initializer):
        if init.name in ("l0_W", "l0_R"):
            array = numpy_helper.to_array(init).copy()
            hidden = array.shape[1] // 4
            array[:, (np.arange(4 * hidden) % hidden) % PES == 0] *= 3
            graph.initializer[index].CopyFrom(numpy_helper.from_array(array, init.name))
    return model


def test_balanced_masks_give_every_pe_the_same_count_for_any_gate_count() -> None:
    rng = np.random.default_rng(0)
    hidden = 8  # 6 inputs + 8 recurrent = 14 columns
    w = rng.normal(size=(1, 4 * hidden, 6)).astype(np.float32)
    r = rng.normal(size=(1, 4 * hidden, hidden)).astype(np.float32)
    w[:, (np.arange(4 * hidden) % hidden) % PES == 0] *= 5  # PE 0's units: a plain cut keeps them
    layer = LayerWeights("lstm0", "lstm", [w, r], None)
    masks = prune_masks(layer, 0.75, PES)
    kept = np.concatenate(masks, axis=2)
    counts = per_pe_counts(kept, row_owners(kept, PES, layer.hidden), PES)
    assert counts.tolist() == [28] * PES  # 8 rows x 14 columns per PE, a quarter kept
    plain = np.concatenate(prune_masks(layer, 0.75), axis=2)
    assert per_pe_counts(plain, row_owners(plain, PES, layer.hidden), PES).max() > 28
    # a layer of three gate blocks (a GRU's) interleaves its units the same way
    assert row_owners(np.zeros((2, 3 * 8, 5)), PES, 8).tolist() == [0, 1, 2, 3] * 12


def test_lstm_trains_balanced_and_stays_deterministic() -> None:
    model = _skew_lstm(lstm_classifier("gather_last", seq=4, inputs=3, hidden=8, scale=0.4))
    x, y = sequence_data(48, seq=4, inputs=3)

    def compile_once(balance: bool) -> CompileResult:
        options = eiec.CompileOptions.of(
            pes=PES,
            sparsity=0.75,
            train={"x": x, "y": y},
            epochs=2,
            balance=balance,
            calibration=x,
        )
        return eiec.compile_model(model, options)

    result = compile_once(True)
    report = result.training
    lstm = next(b for b in report.balance if b.layer == "lstm0")
    before, after = lstm.ratios()
    assert before > 1.3  # magnitude pruning of the skewed weights loads PE 0
    assert after == 1.0 and lstm.max_after == lstm.mean_after
    assert report.densities["lstm0"] <= 0.25 + 1e-9
    pruning = next(s for s in result.report.pruning if s.layer == "lstm0")
    assert pruning.pe_max_after == pruning.pe_mean_after  # the program's weights, balanced
    assert np.isfinite(report.stage("emulated").loss)
    assert format_program(compile_once(True).program) == format_program(result.program)
    unbalanced = compile_once(False)
    assert unbalanced.training.balance == []
    assert format_program(unbalanced.program) != format_program(result.program)


def test_fc_trains_balanced() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(16, 12)).astype(np.float32)
    w[:, 0::PES] *= 3  # output rows on PE 0
    model = gemm_model(w, None)
    x = rng.normal(size=(64, 16)).astype(np.float32)
    options = eiec.CompileOptions.of(
        pes=PES, sparsity=0.5, train={"x": x}, epochs=2, balance=True, calibration=x
    )
    result = eiec.compile_model(model, options)
    (fc,) = result.training.balance
    assert fc.ratios()[0] > 1.3 and fc.ratios()[1] == 1.0
    assert result.training.densities[fc.layer] == pytest.approx(0.5)
