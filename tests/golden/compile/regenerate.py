"""Regenerate the golden compiler cases: ``python tests/golden/compile/regenerate.py``.

Each case is a small ONNX model built here (fixed seeds), the compile options it is compiled
with, and the program text ``eiec compile`` emits for it:

    NAME.onnx           the model
    NAME.options.json   keyword arguments of eiec.CompileOptions
    NAME.eie            the expected program (eiec.isa.format_program of the compiled program)

``tests/compiler/test_golden_compile.py`` compiles every ``NAME.onnx`` with its options and
compares the text with ``NAME.eie``. After a change to the compiler that is meant to change its
output, run this script and review the diff of the ``.eie`` files like any other change.
With ``--check`` the script writes nothing and exits 1 when a file would change.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
OPSET = [helper.make_opsetid("", 17)]


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="eiec-golden")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def gemm_relu_gemm() -> onnx.ModelProto:
    """PyTorch's form: Gemm (transB=1) + Relu + Gemm, 8 -> 6 -> 3."""
    rng = np.random.default_rng(1)
    w1, b1 = rng.standard_normal((6, 8)), rng.standard_normal(6)
    w2, b2 = rng.standard_normal((3, 6)), rng.standard_normal(3)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="/fc1/Gemm", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="/relu/Relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="/fc2/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "gemm_relu_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [_init("w1", w1), _init("b1", b1), _init("w2", w2), _init("b2", b2)],
    )
    return _model(graph)


def matmul_add_flatten() -> onnx.ModelProto:
    """skl2onnx's form: Flatten, MatMul + Add + Relu, MatMul without a bias, 2x3 -> 5 -> 4."""
    rng = np.random.default_rng(2)
    w1, b1 = rng.standard_normal((6, 5)), rng.standard_normal(5)
    w2 = rng.standard_normal((5, 4))
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "w1"], ["m1"], name="dense1"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="bias1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "w2"], ["y"], name="dense2"),
    ]
    graph = helper.make_graph(
        nodes,
        "matmul_add_flatten",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [_init("w1", w1), _init("b1", b1), _init("w2", w2)],
    )
    return _model(graph)


def lstm_head() -> onnx.ModelProto:
    """A forward LSTM (T = 2, I = 3, H = 2) whose last step feeds a Gemm head of 2 outputs."""
    rng = np.random.default_rng(3)
    hidden, inputs = 2, 3
    w = rng.standard_normal((1, 4 * hidden, inputs)) * 0.5
    r = rng.standard_normal((1, 4 * hidden, hidden)) * 0.5
    b = rng.standard_normal((1, 8 * hidden)) * 0.1
    head_w, head_b = rng.standard_normal((2, hidden)), rng.standard_normal(2)
    nodes = [
        helper.make_node("LSTM", ["x", "W", "R", "B"], ["", "h"], name="lstm", hidden_size=hidden),
        helper.make_node("Flatten", ["h"], ["hf"], name="flatten"),
        helper.make_node("Gemm", ["hf", "head_w", "head_b"], ["y"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "lstm_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [_init("W", w), _init("R", r), _init("B", b), _init("head_w", head_w), _init("head_b", head_b)],
    )
    return _model(graph)


def gru_head() -> onnx.ModelProto:
    """A forward GRU (T = 2, I = 3, H = 2, ``linear_before_reset = 0``: two MACs per step)
    whose last hidden state feeds a Gemm head of 2 outputs."""
    rng = np.random.default_rng(4)
    hidden, inputs = 2, 3
    w = rng.standard_normal((1, 3 * hidden, inputs)) * 0.5
    r = rng.standard_normal((1, 3 * hidden, hidden)) * 0.5
    b = rng.standard_normal((1, 6 * hidden)) * 0.1
    head_w, head_b = rng.standard_normal((2, hidden)), rng.standard_normal(2)
    nodes = [
        helper.make_node("GRU", ["x", "W", "R", "B"], ["", "h"], name="gru", hidden_size=hidden),
        helper.make_node("Flatten", ["h"], ["hf"], name="flatten"),
        helper.make_node("Gemm", ["hf", "head_w", "head_b"], ["y"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "gru_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [_init("W", w), _init("R", r), _init("B", b), _init("head_w", head_w), _init("head_b", head_b)],
    )
    return _model(graph)


#: name -> (model builder, compile options).
CASES: dict[str, tuple[Callable[[], onnx.ModelProto], dict[str, object]]] = {
    "gemm_relu_gemm": (gemm_relu_gemm, {"pes": 4, "sparsity": 0.5, "bits": 2}),
    "matmul_add_flatten": (matmul_add_flatten, {"pes": 2, "sparsity": 0.3, "bits": 3}),
    "lstm_head": (lstm_head, {"pes": 2, "sparsity": 0.25, "bits": 4, "input_range": 2.0}),
    "gru_head": (gru_head, {"pes": 2, "sparsity": 0.25, "bits": 4, "input_range": 2.0}),
}


def expected_text(model: onnx.ModelProto, options: dict[str, object]) -> str:
    """The program text ``eiec compile`` emits for ``model`` with ``options``."""
    from eiec.compiler import CompileOptions, compile_model
    from eiec.isa import format_program

    return format_program(compile_model(model, CompileOptions.of(**options)).program)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    changed = []
    for name, (build, options) in CASES.items():
        model = build()
        files = {
            f"{name}.onnx": model.SerializeToString(),
            f"{name}.options.json": (json.dumps(options, indent=2, sort_keys=True) + "\n").encode(),
            f"{name}.eie": expected_text(model, options).encode(),
        }
        for file, data in files.items():
            path = HERE / file
            if not path.exists() or path.read_bytes() != data:
                changed.append(file)
                if not check:
                    path.write_bytes(data)
    print(("would change: " if check else "changed: ") + (", ".join(changed) or "nothing"))
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
