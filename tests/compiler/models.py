"""ONNX MLPs built with onnx.helper the way PyTorch and skl2onnx export them."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp(
    sizes: list[int],
    *,
    style: str = "pytorch",
    bias: bool = True,
    seed: int = 0,
    batch: int | str = "batch",
    density: float = 1.0,
    relu_last: bool = False,
    init: str = "normal",
) -> onnx.ModelProto:
    """An MLP ``sizes[0] -> ... -> sizes[-1]`` with ReLU between layers.

    ``pytorch``: ``Gemm(transB=1)`` with [out, in] weights named ``fcN.weight`` and nodes
    ``/fcN/Gemm``. ``sklearn``: ``MatMul`` with [in, out] weights ``coefN`` and ``Add`` of
    ``interceptN``. ``density`` < 1 zeroes weights at random (an already-sparse model).
    ``init``: ``normal`` (N(0, 1/k) weights, N(0, 0.01) biases) or ``torch`` (nn.Linear's
    default: weights and biases uniform in +-1/sqrt(k)).
    """
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "input"
    for i, (k, m) in enumerate(itertools.pairwise(sizes)):
        if init == "torch":
            w = rng.uniform(-1, 1, (m, k)) / np.sqrt(k)
            b = rng.uniform(-1, 1, m) / np.sqrt(k)
        else:
            w = rng.standard_normal((m, k)) / np.sqrt(k)
            b = 0.1 * rng.standard_normal(m)
        w, b = w.astype(np.float32), b.astype(np.float32)
        if density < 1.0:
            w[rng.random(w.shape) >= density] = 0.0
        out = f"h{i}"
        if style == "pytorch":
            inits.append(numpy_helper.from_array(w, f"fc{i}.weight"))
            ins = [current, f"fc{i}.weight"]
            if bias:
                inits.append(numpy_helper.from_array(b, f"fc{i}.bias"))
                ins.append(f"fc{i}.bias")
            nodes.append(helper.make_node("Gemm", ins, [out], name=f"/fc{i}/Gemm", transB=1))
        else:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T), f"coef{i}"))
            mm = out if not bias else f"mm{i}"
            nodes.append(helper.make_node("MatMul", [current, f"coef{i}"], [mm], name=f"MatMul{i}"))
            if bias:
                inits.append(numpy_helper.from_array(b, f"intercept{i}"))
                nodes.append(helper.make_node("Add", [mm, f"intercept{i}"], [out], name=f"Add{i}"))
        current = out
        if i < len(sizes) - 2 or relu_last:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"], name=f"/relu{i}/Relu"))
            current = f"r{i}"
    nodes.append(helper.make_node("Identity", [current], ["output"], name="out"))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, sizes[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, sizes[-1]])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def gemm_model(
    w: np.ndarray,
    c: np.ndarray | None,
    *,
    trans_a: int = 0,
    trans_b: int = 0,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> onnx.ModelProto:
    """One Gemm; ``w`` in the layout ``trans_b`` says; input [1, K] (or [K, 1] for transA)."""
    k = w.shape[1] if trans_b else w.shape[0]
    m = w.shape[0] if trans_b else w.shape[1]
    inits = [numpy_helper.from_array(w.astype(np.float32), "W")]
    ins = ["x", "W"]
    if c is not None:
        inits.append(numpy_helper.from_array(c.astype(np.float32), "C"))
        ins.append("C")
    node = helper.make_node(
        "Gemm", ins, ["y"], name="gemm", transA=trans_a, transB=trans_b, alpha=alpha, beta=beta
    )
    x_shape = [k, 1] if trans_a else [1, k]
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def relu_before_head(model: onnx.ModelProto) -> onnx.ModelProto:
    """PyTorch's ``head(relu(lstm(x)[0][-1]))``: a Relu between the last step and the Gemm."""
    nodes = list(model.graph.node)
    gemm = next(node for node in nodes if node.op_type == "Gemm")
    relu = helper.make_node("Relu", [gemm.input[0]], ["last_relu"], name="/relu/Relu")
    gemm.input[0] = "last_relu"
    at = nodes.index(gemm)
    del model.graph.node[:]
    model.graph.node.extend([*nodes[:at], relu, *nodes[at:]])
    return model
