"""SafeTakes: Gather imports as a bounds-safe take, and compiling says nothing on stderr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import relax

from eiec.compiler import CompileOptions, compile_model
from eiec.frontend.takes import SafeTakes

LSTM_LINEAR = Path(__file__).resolve().parents[2] / "examples/lstm/lstm_linear.onnx"


def _module(mode: str) -> tvm.IRModule:
    x = relax.Var("x", relax.TensorType((6, 1, 24), "float32"))
    i = relax.Var("i", relax.TensorType((), "int64"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x, i]):
        with bb.dataflow():
            row = bb.emit(relax.op.take(x, i, axis=0, mode=mode))
            step = bb.emit(relax.op.take(x, relax.const(np.int64(5)), axis=0, mode=mode))
            kept = bb.emit(relax.op.take(x, i, axis=0, mode="wrap"))
            out = bb.emit_output(relax.op.add(relax.op.add(row, step), kept))
        bb.emit_func_output(out)
    return bb.get()


def test_fast_takes_become_clip_and_other_modes_stay() -> None:
    tvm.ir.assert_structural_equal(SafeTakes()(_module("fast")), _module("clip"))


def test_compiling_a_gather_head_writes_nothing_to_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    compile_model(LSTM_LINEAR, CompileOptions.of(pes=8))
    assert capfd.readouterr().err == ""
