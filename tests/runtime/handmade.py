"""A two-layer MLP compressed and lowered by hand (no compiler): a program and its CPU model.

Lets the verify tests run independently of the compiler track: weights are pruned and drawn
from a 16-entry codebook, the bias is one more codebook column, and the compressed ONNX model
holds exactly the float32 codebook values the program stores in 16-bit fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from eiec.isa.builder import fc_program
from eiec.isa.program import Machine, Program


@dataclass
class Handmade:
    program: Program
    compressed: onnx.ModelProto
    tensor_map: dict[str, str]
    x: np.ndarray


def _codes(rng: np.random.Generator, rows: int, cols: int, density: float) -> np.ndarray:
    codes = rng.integers(1, 16, size=(rows, cols))
    codes[rng.random((rows, cols)) > density] = 0
    codes[:, -1] = rng.integers(1, 16, size=rows)  # the bias column is dense
    return codes.astype(np.uint8)


def handmade_mlp(pes: int = 4, samples: int = 6, seed: int = 0) -> Handmade:
    """64 -> 32 (ReLU) -> 10 over ``pes`` PEs; buffers named after the ONNX tensors."""
    rng = np.random.default_rng(seed)
    sizes = [(32, 64), (10, 32)]
    cb_frac = 14
    layers, inits, nodes = [], [], []
    current = "input"
    for index, (rows, cols) in enumerate(sizes, start=1):
        centroids = np.sort(rng.uniform(-0.6, 0.6, 15)).astype(np.float32)
        words = np.concatenate(([0], np.floor(centroids * 2.0**cb_frac + 0.5))).astype(np.int16)
        codes = _codes(rng, rows, cols + 1, 0.3)
        layers.append((codes, words))
        dense = np.concatenate(([0.0], centroids)).astype(np.float32)[codes]
        inits.append(numpy_helper.from_array(np.ascontiguousarray(dense[:, :-1]), f"w{index}"))
        inits.append(numpy_helper.from_array(np.ascontiguousarray(dense[:, -1]), f"b{index}"))
        out = f"fc{index}_out" if index < len(sizes) else "logits"
        nodes.append(helper.make_node("Gemm", [current, f"w{index}", f"b{index}"], [out], transB=1))
        current = out
        if index < len(sizes):
            nodes.append(helper.make_node("Relu", [out], [f"relu{index}"]))
            current = f"relu{index}"
    graph = helper.make_graph(
        nodes,
        "handmade",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8

    program = fc_program(
        [layer_codes for layer_codes, _ in layers],
        [words for _, words in layers],
        [cb_frac, cb_frac],
        [14, 11, 10],
        machine=Machine(pes=pes),
        bias=True,
        relu=False,
        buffer_names=["input", "relu1", "logits"],
        layer_names=["fc1", "fc2"],
    )
    x = rng.uniform(0, 1, (samples, 64)).astype(np.float32)
    return Handmade(program, model, {"relu1": "relu1", "logits": "logits"}, x)
