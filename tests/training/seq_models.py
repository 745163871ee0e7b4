"""LSTM classifiers with the heads people write, built with onnx.helper, and sequence data
built with numpy.

Heads on the LSTM's sequence ``ys = Y[:, 0]`` ([T, B, H]) or its last state, each followed by a
``Gemm`` to the class scores ``logits`` [B, C] (except ``sequence``):

- ``gather_last``: ``ys[-1]``, a Gather with a *scalar* index (PyTorch's ``y[-1]``);
- ``slice_last``: ``ys[-1:]`` (Slice) squeezed (``y[-1:].squeeze(0)``);
- ``h_n``: the final hidden state ``Y_h`` squeezed (``self.fc(h_n[0])``);
- ``mean``: ``ys.mean(0)`` (ReduceMean over time);
- ``sequence``: every step's scores ``ys @ W + b`` ([T, B, C]: per-frame outputs).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.lstm.lstm_models import LstmSpec, lstm_model

HEADS = ("gather_last", "slice_last", "h_n", "mean", "sequence")


def lstm_classifier(
    head: str,
    *,
    seq: int = 6,
    inputs: int = 4,
    hidden: int = 8,
    classes: int = 3,
    seed: int = 0,
    scale: float = 0.5,
) -> onnx.ModelProto:
    """One forward LSTM(inputs, hidden) on X [seq, 1, inputs] with ``head`` (see the module
    docstring); output ``logits``."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}")
    base = lstm_model(
        [LstmSpec(hidden=hidden)],
        seq=seq,
        inputs=inputs,
        outputs=("Y_h",) if head == "h_n" else ("Y",),
        seed=seed,
        scale=scale,
    )
    graph = base.graph
    del graph.output[:]
    rng = np.random.default_rng(seed + 1)

    def init(name: str, array: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    node = helper.make_node
    axes0 = init("axes0", np.array([0], np.int64))
    if head == "h_n":
        graph.node.append(node("Squeeze", ["Y_h", axes0], ["feature"]))
    else:
        graph.node.append(node("Squeeze", ["Y", init("axes1", np.array([1], np.int64))], ["ys"]))
    if head == "gather_last":
        graph.node.append(node("Gather", ["ys", init("last", np.array(-1, np.int64))], ["feature"]))
    elif head == "slice_last":
        starts = init("starts", np.array([-1], np.int64))
        ends = init("ends", np.array([np.iinfo(np.int64).max], np.int64))
        graph.node.append(node("Slice", ["ys", starts, ends, axes0], ["ys_last"]))
        graph.node.append(node("Squeeze", ["ys_last", axes0], ["feature"]))
    elif head == "mean":
        graph.node.append(node("ReduceMean", ["ys"], ["feature"], axes=[0], keepdims=0))
    weight = rng.uniform(-scale, scale, (classes, hidden)).astype(np.float32)
    bias = rng.uniform(-scale, scale, classes).astype(np.float32)
    if head == "sequence":
        graph.node.append(node("MatMul", ["ys", init("head_W", weight.T.copy())], ["scores"]))
        graph.node.append(node("Add", ["scores", init("head_B", bias)], ["logits"]))
        shape = [seq, 1, classes]
    else:
        w, b = init("head_W", weight), init("head_B", bias)
        graph.node.append(node("Gemm", ["feature", w, b], ["logits"], transB=1))
        shape = [1, classes]
    graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, shape))
    onnx.checker.check_model(base)
    return base


def sequence_data(
    count: int, *, seq: int = 6, inputs: int = 4, classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` noisy sequences ``x`` [seq, count, inputs] (stacked on the LSTM's batch axis)
    and their labels ``y``: class k is a sine of frequency k + 1 on feature k mod inputs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, count)
    t = np.arange(seq)[:, None]
    x = rng.normal(0.0, 0.3, (seq, count, inputs))
    phase = rng.uniform(0, 2 * np.pi, count)
    x[:, np.arange(count), y % inputs] += np.sin((y + 1) * np.pi * t / seq + phase)
    return x.astype(np.float32), y.astype(np.int64)
