"""ONNX LSTM classifiers shaped like PyTorch's two exporters write them, built with onnx.helper.

``torch.onnx.export(..., dynamo=True)`` builds an LSTM's W, R and B from the module's
parameters in PyTorch's gate order (i, f, g, o) with ``Slice``/``Concat``/``Unsqueeze`` nodes
(ONNX's order is i, o, f, c), gives zero initial states as initialisers and merges the
directions of Y with ``Transpose``/``Reshape``. The TorchScript exporter (``dynamo=False``)
stores W, R, B ready-made, builds the zero initial states at run time from ``Shape(X)``
(``Shape``/``Gather``/``Unsqueeze``/``Concat``/``Expand``) and drops Y's direction axis with
``Squeeze``. ``batch_first=True`` adds a ``Transpose`` before the first LSTM and after the
last, and the classifier then reads ``y[:, -1]`` (a ``Gather`` along axis 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from lstm_models import OPSET, _runtime_zeros
from onnx import TensorProto, helper, numpy_helper

#: PyTorch's gate blocks (i, f, g, o) in ONNX's order (i, o, f, c).
TORCH_TO_ONNX = (0, 3, 1, 2)


@dataclass(frozen=True)
class ExporterSpec:
    """A classifier: ``layers`` LSTM layers of ``hidden`` units, then Linear on the last step."""

    style: str  # "dynamo" or "torchscript"
    batch_first: bool = False
    bidirectional: bool = False
    layers: int = 1
    seq: int = 5
    inputs: int = 6
    hidden: int = 8
    classes: int = 3


class _Graph:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, shape: tuple[int, ...]) -> str:
        return self.const(name, self.rng.uniform(-0.5, 0.5, size=shape).astype(np.float32))

    def node(self, op: str, inputs: list[str], output: str, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=f"node_{output}", **attrs))
        return output


def _reordered(g: _Graph, source: str, hidden: int, prefix: str) -> str:
    """Concat of the four gate blocks of ``source`` (rows) in ONNX's order, by Slice."""
    axes = g.const(f"{prefix}_axes", np.array([0], np.int64))
    blocks = []
    for k in TORCH_TO_ONNX:
        start = g.const(f"{prefix}_s{k}", np.array([k * hidden], np.int64))
        end = g.const(f"{prefix}_e{k}", np.array([(k + 1) * hidden], np.int64))
        blocks.append(g.node("Slice", [source, start, end, axes], f"{prefix}_slice{k}"))
    return g.node("Concat", blocks, f"{prefix}_cat", axis=0)


def _dynamo_weights(g: _Graph, k: int, width: int, spec: ExporterSpec) -> list[str]:
    """W, R, B of layer k built from PyTorch-layout parameters (per direction, then stacked)."""
    h, dirs = spec.hidden, 2 if spec.bidirectional else 1
    zero = g.const(f"l{k}_axis0", np.array([0], np.int64))
    per_direction: dict[str, list[str]] = {"W": [], "R": [], "B": []}
    for d in range(dirs):
        p = f"lstm.l{k}{'_reverse' if d else ''}"
        w_ih = g.weight(f"{p}.weight_ih", (4 * h, width))
        w_hh = g.weight(f"{p}.weight_hh", (4 * h, h))
        b_ih = g.weight(f"{p}.bias_ih", (4 * h,))
        b_hh = g.weight(f"{p}.bias_hh", (4 * h,))
        w = _reordered(g, w_ih, h, f"{p}_W")
        r = _reordered(g, w_hh, h, f"{p}_R")
        b = g.node(
            "Concat",
            [_reordered(g, b_ih, h, f"{p}_Bi"), _reordered(g, b_hh, h, f"{p}_Bh")],
            f"{p}_B",
            axis=0,
        )
        for key, value in (("W", w), ("R", r), ("B", b)):
            per_direction[key].append(g.node("Unsqueeze", [value, zero], f"{p}_{key}_1"))
    return [
        values[0] if dirs == 1 else g.node("Concat", values, f"l{k}_{key}", axis=0)
        for key, values in per_direction.items()
    ]


def exporter_model(spec: ExporterSpec, seed: int = 0) -> onnx.ModelProto:
    """The classifier of ``spec`` as its exporter writes it, for a batch of 1 (module doc)."""
    g = _Graph(seed)
    h, dirs = spec.hidden, 2 if spec.bidirectional else 1
    x_shape = [1, spec.seq, spec.inputs] if spec.batch_first else [spec.seq, 1, spec.inputs]
    x, width = "x", spec.inputs
    if spec.batch_first:
        x = g.node("Transpose", [x], "x_seq_first", perm=[1, 0, 2])
    direction = "bidirectional" if spec.bidirectional else "forward"
    for k in range(spec.layers):
        if spec.style == "dynamo":
            w, r, b = _dynamo_weights(g, k, width, spec)
            zeros = g.const(f"l{k}_zeros", np.zeros((dirs, 1, h), np.float32))
            states = [zeros, zeros]
        else:
            w = g.weight(f"onnx::LSTM_W{k}", (dirs, 4 * h, width))
            r = g.weight(f"onnx::LSTM_R{k}", (dirs, 4 * h, h))
            b = g.weight(f"onnx::LSTM_B{k}", (dirs, 8 * h))
            states = [_runtime_zeros(g.nodes, g.inits, x, dirs, h, f"l{k}_state_")] * 2
        y = f"l{k}_Y"
        g.nodes.append(
            helper.make_node(
                "LSTM",
                [x, w, r, b, "", *states],
                [y],
                name=f"lstm_l{k}",
                hidden_size=h,
                direction=direction,
            )
        )
        if spec.style == "torchscript" and dirs == 1:
            axes = g.const(f"l{k}_squeeze_axes", np.array([1], np.int64))
            x = g.node("Squeeze", [y, axes], f"l{k}_out")
        else:  # [seq, dirs, 1, h] -> [seq, 1, dirs * h]
            moved = g.node("Transpose", [y], f"l{k}_moved", perm=[0, 2, 1, 3])
            shape = g.const(f"l{k}_shape", np.array([spec.seq, 1, dirs * h], np.int64))
            x = g.node("Reshape", [moved, shape], f"l{k}_out")
        width = dirs * h
    axis = 0
    if spec.batch_first:
        x = g.node("Transpose", [x], "y_batch_first", perm=[1, 0, 2])
        axis = 1
    last = g.const("last", np.array(-1, np.int64))
    step = g.node("Gather", [x, last], "y_last", axis=axis)
    head_w = g.weight("head.weight", (spec.classes, width))
    head_b = g.weight("head.bias", (spec.classes,))
    g.node("Gemm", [step, head_w, head_b], "logits", transB=1)
    graph = helper.make_graph(
        g.nodes,
        f"{spec.style}_lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, spec.classes])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
