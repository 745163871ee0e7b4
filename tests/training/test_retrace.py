"""eiec.training.retrace: a batch-1 function re-emitted at batch B, takes with 1-D indices."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from eiec.relax_layers.exprs import bindings
from eiec.training.retrace import NotBatchable, batch_axis, retrace


def _function(body: str) -> relax.Function:
    """f(x [3, 1, 4]) with one op on x (the batch on axis 1, as an LSTM's X)."""
    x = relax.Var("x", relax.TensorType([3, 1, 4], "float32"))
    bb = relax.BlockBuilder()
    with bb.function("f", [x]):
        with bb.dataflow():
            if body == "reshape_keeps_batch":
                out = bb.emit(relax.op.reshape(x, [3, 1, 2, 2]))
            elif body == "reshape_mixes_batch":
                out = bb.emit(relax.op.reshape(x, [1, 12]))
            else:  # x[-1]: a scalar take, then a matmul
                index = relax.const(np.array(2, np.int64))
                last = bb.emit(relax.op.take(x, index, axis=0, mode="clip"))
                out = bb.emit(relax.op.matmul(last, relax.const(np.ones((4, 2), np.float32))))
            result = bb.emit_output(out)
        bb.emit_func_output(result)
    return bb.get()["f"]


def _at(batch: int) -> list[relax.Var]:
    return [relax.Var("x", relax.TensorType([3, batch, 4], "float32"))]


def _dims(expr: relax.Expr) -> list[int]:
    return [int(d) for d in expr.ty.shape.values]


def test_a_reshape_keeps_the_batch_where_it_was() -> None:
    traced = retrace(_function("reshape_keeps_batch"), _at(5), "f")
    assert _dims(traced.body.body) == [3, 5, 2, 2]


def test_a_reshape_that_mixes_the_batch_is_not_batchable() -> None:
    with pytest.raises(NotBatchable, match="mixes the batch"):
        retrace(_function("reshape_mixes_batch"), _at(5), "f")
    traced = retrace(_function("reshape_mixes_batch"), _at(1), "f")  # batch 1: as it was
    assert _dims(traced.body.body) == [1, 12]


def test_a_scalar_take_becomes_a_take_of_1d_indices_and_computes_the_same() -> None:
    traced = retrace(_function("take"), _at(5), "f")
    assert _dims(traced.body.body) == [5, 2]
    takes = [b.value for b in bindings(traced) if getattr(b.value, "op", None) is not None]
    takes = [v for v in takes if isinstance(v.op, tvm.ir.Op) and v.op.name == "relax.take"]
    assert [len(_dims(t.args[1])) for t in takes] == [1]
    executable = tvm.compile(tvm.IRModule({"main": traced.with_attr("global_symbol", "main")}))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    out = vm["main"](tvm.runtime.tensor(x)).numpy()
    np.testing.assert_allclose(out, x[-1] @ np.ones((4, 2), np.float32), rtol=1e-5)


def test_batch_axis() -> None:
    assert batch_axis([3, 1, 4], [3, 7, 4]) == 1
    assert batch_axis([3, 1, 4], [3, 1, 4]) is None
    with pytest.raises(NotBatchable):
        batch_axis([3, 2, 4], [3, 7, 4])
