"""Activations where exporters put them: ReLU, Sigmoid and Tanh after any layer run on the PEs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from eiec.codegen.tables import relu_table
from eiec.compiler import CompileOptions, compile_model
from eiec.emulator.arith import FixedArith
from eiec.isa.program import EwLut
from eiec.runtime.verify import verify

from .models import mlp, relu_before_head

LSTM_LINEAR = Path(__file__).resolve().parents[2] / "examples" / "lstm" / "lstm_linear.onnx"


@pytest.mark.parametrize("frac", [-16, 0, 7, 14, 15, 30])
def test_the_relu_table_is_exact_for_every_input_word(frac: int) -> None:
    words = np.arange(-(2**15), 2**15, dtype=np.int64)
    got, saturations = FixedArith(acc_bits=48).lut(words, frac, relu_table(frac), frac)
    np.testing.assert_array_equal(got, np.maximum(words, 0))
    assert saturations == 0


@pytest.mark.slow
def test_lstm_last_step_relu_linear_runs_on_the_pes_and_verifies() -> None:
    model = relu_before_head(onnx.load(LSTM_LINEAR))
    result = compile_model(model, CompileOptions.of(pes=4, sparsity=0.5))
    luts = [ins for ins in result.program.text if isinstance(ins, EwLut)]
    assert result.program.tables[luts[-1].table].fn == "relu"
    port = result.program.inputs[0]
    x = np.random.default_rng(2).uniform(-1, 1, port.shape).astype(np.float32)
    report = verify(model, result.program, x)
    assert report.passed, report.summary()
    assert report.reference == "decoded"


@pytest.mark.parametrize("activation", ["Sigmoid", "Tanh"])
def test_sigmoid_and_tanh_between_fc_layers_run_on_the_pes(activation: str) -> None:
    model = mlp([16, 12, 8, 5], seed=0)
    for node in model.graph.node:
        if node.op_type == "Relu":
            node.op_type = activation
    result = compile_model(model, CompileOptions.of(pes=4, sparsity=0.5))
    fns = [result.program.tables[i.table].fn for i in result.program.text if isinstance(i, EwLut)]
    assert fns == [activation.lower()] * 2
    x = np.random.default_rng(0).uniform(-1, 1, (6, 16)).astype(np.float32)
    report = verify(model, result.program, x)
    assert report.passed, report.summary()
    assert report.relative_tolerance < 0.02
