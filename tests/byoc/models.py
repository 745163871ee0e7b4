"""Small models for the BYOC tests: ONNX graphs built with onnx.helper, random weights."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

#: Weight values EIE stores exactly: fewer than 16 distinct non-zeros (weight sharing keeps them),
#: each a few bits wide (16-bit fixed point holds them).
GRID = np.array([-0.5, -0.375, -0.25, -0.125, 0.125, 0.25, 0.375, 0.5], dtype=np.float32)
#: Fraction of zero weights of :func:`exact_weights`; compile with sparsity at most this.
ZEROS = 0.6


def exact_weights(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Weights EIE compiles without loss: ``ZEROS`` of them zero, the rest from ``GRID``."""
    values = rng.choice(GRID, size=shape)
    values[rng.random(shape) < ZEROS] = 0.0
    return values.astype(np.float32)


def mlp_onnx(
    sizes: list[int],
    seed: int,
    *,
    gemm: bool = True,
    between: str = "Relu",
    tail: str = "",
    batch: int | str = 1,
) -> onnx.ModelProto:
    """An MLP ``sizes[0] -> ... -> sizes[-1]`` with :func:`exact_weights`: Gemm (transB=1) or
    MatMul+Add layers with ``between`` (an ONNX op name) after every hidden layer and an
    optional ``tail`` op; input ``x`` [batch, sizes[0]]."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "x"
    for index, (k, m) in enumerate(itertools.pairwise(sizes)):
        w = exact_weights(rng, m, k)
        b = rng.choice(GRID, size=m).astype(np.float32)
        out = f"fc{index}"
        if gemm:
            inits += [
                numpy_helper.from_array(w, f"w{index}"),
                numpy_helper.from_array(b, f"b{index}"),
            ]
            node = helper.make_node("Gemm", [current, f"w{index}", f"b{index}"], [out], transB=1)
            nodes.append(node)
        else:
            inits += [
                numpy_helper.from_array(w.T.copy(), f"w{index}"),
                numpy_helper.from_array(b, f"b{index}"),
            ]
            nodes.append(helper.make_node("MatMul", [current, f"w{index}"], [f"mm{index}"]))
            nodes.append(helper.make_node("Add", [f"mm{index}", f"b{index}"], [out]))
        current = out
        if index < len(sizes) - 2 and between:
            nodes.append(helper.make_node(between, [current], [f"act{index}"]))
            current = f"act{index}"
    if tail:
        nodes.append(helper.make_node(tail, [current], ["y"]))
        current = "y"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, sizes[0]])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, [batch, sizes[-1]])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def to_relax(model: onnx.ModelProto) -> tvm.IRModule:
    """The Relax module of an ONNX model, weights as constants."""
    return from_onnx(model, keep_params_in_input=False)


def relax_dense(
    k: int, m: int, *, dtype: str = "float32", weight_param: bool = False, const_input: bool = False
) -> tvm.IRModule:
    """``main(x) = relu(matmul(x, W) + b)`` in Relax with the given dtype; the weight a
    parameter instead of a constant with ``weight_param``; the input a constant with
    ``const_input`` (then ``main`` adds x to the layer's result)."""
    rng = np.random.default_rng(0)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, k), dtype))
    params = [x]
    if weight_param:
        weight = relax.Var("w", relax.TensorType((k, m), dtype))
        params.append(weight)
    else:
        weight = relax.const(rng.standard_normal((k, m)).astype(dtype))
    bias = relax.const(rng.standard_normal(m).astype(dtype))
    source = relax.const(rng.standard_normal((1, k)).astype(dtype)) if const_input else x
    with bb.function("main", params):
        with bb.dataflow():
            h = bb.emit(relax.op.matmul(source, weight))
            h = bb.emit(relax.op.add(h, bias))
            h = bb.emit(relax.op.nn.relu(h))
            if const_input:
                h = bb.emit(relax.op.add(h, relax.op.matmul(x, weight)))
            out = bb.emit_output(h)
        bb.emit_func_output(out)
    return bb.get()


def lstm_onnx(
    seq: int,
    inputs: int,
    hidden: int,
    seed: int,
    *,
    head: int | None = None,
    op: str = "LSTM",
    **attrs: int,
) -> onnx.ModelProto:
    """One forward LSTM (or ``op="GRU"``, with ONNX ``attrs``) on X [seq, 1, inputs] with
    :func:`exact_weights` (recurrence bias zero, so W, R and the input bias share the 8 values
    of ``GRID``), outputs Y [seq, 1, 1, hidden] and, with ``head``, a Gemm on the last hidden
    state (``logits`` [1, head])."""
    rng = np.random.default_rng(seed)
    gates = 4 if op == "LSTM" else 3
    w = exact_weights(rng, 1, gates * hidden, inputs)
    r = exact_weights(rng, 1, gates * hidden, hidden)
    b = np.concatenate(
        [rng.choice(GRID, size=(1, gates * hidden)), np.zeros((1, gates * hidden))], 1
    )
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(r, "R"),
        numpy_helper.from_array(b.astype(np.float32), "B"),
    ]
    nodes = [helper.make_node(op, ["X", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hidden, **attrs)]
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [seq, 1, 1, hidden])]
    if head is not None:
        inits += [
            numpy_helper.from_array(exact_weights(rng, head, hidden), "Wh"),
            numpy_helper.from_array(rng.choice(GRID, size=head).astype(np.float32), "bh"),
            numpy_helper.from_array(np.array([1, hidden], np.int64), "flat"),
        ]
        nodes += [
            helper.make_node("Reshape", ["Y_h", "flat"], ["last"]),
            helper.make_node("Gemm", ["last", "Wh", "bh"], ["logits"], transB=1),
        ]
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, head]))
    graph = helper.make_graph(
        nodes,
        "lstm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, 1, inputs])],
        outputs,
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
