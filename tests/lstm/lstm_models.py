"""Small ONNX LSTM (and GRU: ``op="GRU"``, see gru_models.py) models built with onnx.helper,
and their reference results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import tvm
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from tvm import relax

OPSET = 17
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


@dataclass
class LstmSpec:
    """One LSTM layer of a test model."""

    hidden: int
    direction: str = "forward"
    bias: bool = True
    initial_h: bool = False
    initial_c: bool = False
    #: Build zero initial states at run time from Shape(X) (as PyTorch's TorchScript exporter).
    runtime_zero_states: bool = False
    attrs: Mapping[str, Any] = field(default_factory=dict)
    peepholes: bool = False
    sequence_lens: Sequence[int] | None = None
    #: ``LSTM`` or ``GRU`` (3 gates, no cell state: initial_c, peepholes and Y_c do not apply).
    op: str = "LSTM"

    @property
    def gates(self) -> int:
        return 4 if self.op == "LSTM" else 3


def lstm_model(
    layers: Sequence[LstmSpec],
    *,
    seq: int = 4,
    batch: int = 1,
    inputs: int = 6,
    outputs: Sequence[str] = ("Y", "Y_h", "Y_c"),
    head: int | None = None,
    seed: int = 0,
    scale: float = 0.5,
) -> onnx.ModelProto:
    """A stack of LSTM layers on X [seq, batch, inputs]; layer k > 0 reads layer k-1's Y
    (directions merged into features). ``outputs`` names which of the last layer's outputs are
    graph outputs. ``head`` adds a Gemm (head outputs) on the last step's Y as output ``logits``.
    """
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x_name, width = "X", inputs
    for k, spec in enumerate(layers):
        d = DIRECTIONS[spec.direction]
        h = spec.hidden

        def init(name: str, shape: tuple[int, ...], prefix: str = f"l{k}_") -> str:
            array = rng.uniform(-scale, scale, size=shape).astype(np.float32)
            inits.append(numpy_helper.from_array(array, prefix + name))
            return prefix + name

        g = spec.gates
        ins = [x_name, init("W", (d, g * h, width)), init("R", (d, g * h, h))]
        ins.append(init("B", (d, 2 * g * h)) if spec.bias else "")
        if spec.sequence_lens is not None:
            lens = np.asarray(spec.sequence_lens, dtype=np.int32)
            inits.append(numpy_helper.from_array(lens, f"l{k}_seq_lens"))
            ins.append(f"l{k}_seq_lens")
        else:
            ins.append("")
        states = 2 if spec.op == "LSTM" else 1
        if spec.runtime_zero_states:
            ins += [_runtime_zeros(nodes, inits, x_name, d, h, f"l{k}_zeros_")] * states
        else:
            ins.append(init("h0", (d, batch, h)) if spec.initial_h else "")
            if spec.op == "LSTM":
                ins.append(init("c0", (d, batch, h)) if spec.initial_c else "")
        if spec.peepholes:
            ins.append(init("P", (d, 3 * h)))
        while ins[-1] == "":
            ins.pop()
        last = k == len(layers) - 1
        outs = [f"l{k}_Y", f"l{k}_Y_h", f"l{k}_Y_c"] if not last else ["Y", "Y_h", "Y_c"]
        outs = outs[: states + 1]
        if last:
            wanted = set(outputs) | ({"Y"} if head is not None else set())
            outs = [name if name in wanted else "" for name in outs]
            while outs[-1] == "":
                outs.pop()
        attrs = {"hidden_size": h, "direction": spec.direction, **spec.attrs}
        nodes.append(helper.make_node(spec.op, ins, outs, name=f"{spec.op.lower()}{k}", **attrs))
        if not last:
            # [seq, d, batch, h] -> [seq, batch, d * h]
            nodes.append(helper.make_node("Transpose", [outs[0]], [f"l{k}_T"], perm=[0, 2, 1, 3]))
            inits.append(
                numpy_helper.from_array(np.array([seq, batch, d * h], np.int64), f"l{k}_shape")
            )
            nodes.append(helper.make_node("Reshape", [f"l{k}_T", f"l{k}_shape"], [f"l{k}_X"]))
            x_name, width = f"l{k}_X", d * h

    last = layers[-1]
    d, h = DIRECTIONS[last.direction], last.hidden
    graph_outputs = []
    shapes = {"Y": [seq, d, batch, h], "Y_h": [d, batch, h], "Y_c": [d, batch, h]}
    for name in ("Y", "Y_h", "Y_c"):
        if name in outputs:
            graph_outputs.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, shapes[name])
            )
    if head is not None:
        # logits = Y_h[-1 direction-merged] @ Wh^T + bh, on the last step of Y.
        inits.append(numpy_helper.from_array(np.array([seq - 1], np.int64), "last"))
        inits.append(numpy_helper.from_array(np.array([batch, d * h], np.int64), "flat"))
        wh = rng.uniform(-scale, scale, size=(head, d * h)).astype(np.float32)
        bh = rng.uniform(-scale, scale, size=(head,)).astype(np.float32)
        inits += [numpy_helper.from_array(wh, "head_W"), numpy_helper.from_array(bh, "head_B")]
        nodes += [
            helper.make_node("Gather", ["Y", "last"], ["Y_last"], axis=0),
            helper.make_node("Reshape", ["Y_last", "flat"], ["Y_flat"]),
            helper.make_node("Gemm", ["Y_flat", "head_W", "head_B"], ["logits"], transB=1),
        ]
        graph_outputs.append(
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, head])
        )
    graph = helper.make_graph(
        nodes,
        "lstm_test",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, batch, inputs])],
        graph_outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _runtime_zeros(
    nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], x: str, d: int, h: int, prefix: str
) -> str:
    """Expand(0, Concat([d], Unsqueeze(Gather(Shape(x), 1)), [h])): zeros [d, batch, h]."""
    consts = {
        "zero": np.zeros(1, np.float32),
        "one": np.array(1, np.int64),
        "axes": np.array([0], np.int64),
        "d": np.array([d], np.int64),
        "h": np.array([h], np.int64),
    }
    inits += [numpy_helper.from_array(v, prefix + k) for k, v in consts.items()]
    p = prefix
    nodes += [
        helper.make_node("Shape", [x], [p + "shape"]),
        helper.make_node("Gather", [p + "shape", p + "one"], [p + "batch"], axis=0),
        helper.make_node("Unsqueeze", [p + "batch", p + "axes"], [p + "batch1"]),
        helper.make_node("Concat", [p + "d", p + "batch1", p + "h"], [p + "dims"], axis=0),
        helper.make_node("Expand", [p + "zero", p + "dims"], [p + "zeros"]),
    ]
    return p + "zeros"


# LLVM without optimisation: the same numbers (the checks are against onnx.reference), built
# about 3x faster; the suite compiles one small model per test.
CPU_TARGET = {"kind": "llvm", "opt-level": 0}


def run_relax(mod: tvm.IRModule, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Compile ``mod`` for the CPU and run ``main`` on ``feeds`` (in order); outputs as a list."""
    target = tvm.target.Target(CPU_TARGET)
    vm = relax.VirtualMachine(tvm.compile(mod, target=target), tvm.cpu())
    result = vm["main"](*[tvm.runtime.tensor(v) for v in feeds.values()])
    if isinstance(result, tvm.runtime.Tensor):
        return [result.numpy()]
    return [item.numpy() for item in result]


def reference(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The graph outputs by ``onnx.reference``, in graph order."""
    return list(ReferenceEvaluator(model).run(None, dict(feeds)))


def random_input(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    """Uniform [-1, 1) inputs for every graph input."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = rng.uniform(-1, 1, size=dims).astype(np.float32)
    return feeds
