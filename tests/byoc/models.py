"""Small models for the BYOC tests: ONNX graphs built with onnx.helper, random weights."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx


def mlp_onnx(
    sizes: list[int], seed: int, *, gemm: bool = True, between: str = "Relu", tail: str = ""
) -> onnx.ModelProto:
    """An MLP ``sizes[0] -> ... -> sizes[-1]``: Gemm (transB=1) or MatMul+Add layers with
    ``between`` (an ONNX op name) after every hidden layer and an optional ``tail`` op."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "x"
    for index, (k, m) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((m, k)) / np.sqrt(k)).astype(np.float32)
        b = (0.1 * rng.standard_normal(m)).astype(np.float32)
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
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, sizes[0]])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, sizes[-1]])],
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
