"""`eiec verify` on every model of examples/ and tests/ it runs on: the tolerance as a fraction
of the reference output's range and the worst error/tolerance ratio (issue 11's figures).

Each model is compiled with the options its test or example uses and verified against the
model itself (the reference: its graph with the weights decoded from the program).

    .venv/bin/python benchmarks/bench_verify.py
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.compiler.models, tests.runtime.handmade

from eiec.compiler import CompileOptions, compile_model  # noqa: E402
from eiec.runtime.run import run  # noqa: E402
from eiec.runtime.verify import VerifyReport, verify  # noqa: E402
from tests.compiler.models import mlp, relu_before_head  # noqa: E402
from tests.runtime.handmade import handmade_mlp  # noqa: E402

EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden" / "compile"


def _activation(name: str) -> onnx.ModelProto:
    model = mlp([16, 12, 8, 5], seed=0)
    for node in model.graph.node:
        if node.op_type == "Relu":
            node.op_type = name
    return model


def _float16() -> onnx.ModelProto:
    model = mlp([16, 12, 5], seed=0)
    for init in model.graph.initializer:
        value = numpy_helper.to_array(init).astype(np.float16)
        init.CopyFrom(numpy_helper.from_array(value, init.name))
    for info in [*model.graph.input, *model.graph.output]:
        info.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    return model


def _uniform(shape: tuple[int, ...], low: float = -1.0, dtype: type = np.float32) -> np.ndarray:
    return np.random.default_rng(1).uniform(low, 1, shape).astype(dtype)


def cases() -> list[tuple[str, Callable[[], tuple[object, CompileOptions, np.ndarray]]]]:
    digits_x = np.load(EXAMPLES / "digits" / "test_x.npy")[:50]
    calib = np.load(EXAMPLES / "digits" / "calib_x.npy")
    lstm_x = _uniform((5, 1, 8))
    found = [
        (
            "examples/digits/digits_mlp.onnx, --calibration, 16 PEs (demo)",
            lambda: (
                EXAMPLES / "digits" / "digits_mlp.onnx",
                CompileOptions.of(pes=16, calibration=calib),
                digits_x,
            ),
        ),
        (
            "examples/digits/digits_mlp.onnx, no calibration, --input-range 16",
            lambda: (
                EXAMPLES / "digits" / "digits_mlp.onnx",
                CompileOptions.of(pes=16, input_range=16.0),
                digits_x,
            ),
        ),
        (
            "examples/lstm/lstm.onnx",
            lambda: (
                EXAMPLES / "lstm" / "lstm.onnx",
                CompileOptions.of(pes=4, sparsity=0.6),
                lstm_x,
            ),
        ),
        (
            "examples/lstm/lstm_linear.onnx",
            lambda: (
                EXAMPLES / "lstm" / "lstm_linear.onnx",
                CompileOptions.of(pes=4, sparsity=0.6),
                None,
            ),
        ),
        (
            "lstm_linear + ReLU on the last step",
            lambda: (
                relu_before_head(onnx.load(EXAMPLES / "lstm" / "lstm_linear.onnx")),
                CompileOptions.of(pes=4, sparsity=0.5),
                None,
            ),
        ),
        (
            "examples/lstm/lstm_bidir_legacy.onnx",
            lambda: (
                EXAMPLES / "lstm" / "lstm_bidir_legacy.onnx",
                CompileOptions.of(pes=4, sparsity=0.6),
                None,
            ),
        ),
        (
            "MLP 16-12-8-5 with Sigmoid",
            lambda: (
                _activation("Sigmoid"),
                CompileOptions.of(pes=4, sparsity=0.5),
                _uniform((6, 16)),
            ),
        ),
        (
            "MLP 16-12-8-5 with Tanh",
            lambda: (
                _activation("Tanh"),
                CompileOptions.of(pes=4, sparsity=0.5),
                _uniform((6, 16)),
            ),
        ),
        (
            "MLP 16-12-5 float16",
            lambda: (
                _float16(),
                CompileOptions.of(pes=4, sparsity=0.5),
                _uniform((4, 16), dtype=np.float16),
            ),
        ),
        (
            "tests mlp 64-32-10 pytorch style",
            lambda: (
                mlp([64, 32, 10], seed=0),
                CompileOptions.of(pes=8, sparsity=0.7),
                _uniform((8, 64)),
            ),
        ),
        (
            "tests mlp 64-32-10 sklearn style",
            lambda: (
                mlp([64, 32, 10], style="sklearn", seed=0),
                CompileOptions.of(pes=8, sparsity=0.7),
                _uniform((8, 64)),
            ),
        ),
        (
            "dense 784-300-100-10, torch init, no calibration",
            lambda: (
                mlp([784, 300, 100, 10], init="torch", seed=0),
                CompileOptions(sparsity=0.0),
                _uniform((50, 784), 0.0),
            ),
        ),
    ]
    for options in sorted(GOLDEN.glob("*.options.json")):
        name = options.name.removesuffix(".options.json")
        found.append(
            (
                f"tests/golden/compile/{name}.onnx",
                lambda n=name, o=options: (
                    GOLDEN / f"{n}.onnx",
                    CompileOptions.of(**json.loads(o.read_text())),
                    None,
                ),
            )
        )
    return found


def main() -> None:
    print(
        f"{'model':64s} {'tolerance/range':>15s} {'worst err/tol':>13s} {'err/range':>10s}  verdict"
    )
    for name, make in cases():
        model, options, x = make()
        result = compile_model(model, options)
        if x is None:  # one sample of each input's shape
            x = {p.name: _uniform(p.shape) for p in result.program.inputs}
        _line(name, verify(model, result.program, x))
    made = handmade_mlp()
    _line(
        "tests/runtime/handmade.py MLP (its compressed model)",
        verify(made.compressed, made.program, made.x),
    )
    skl = EXAMPLES / "digits" / "digits_skl_style.onnx"
    calib = np.load(EXAMPLES / "digits" / "calib_x.npy")
    digits_x = np.load(EXAMPLES / "digits" / "test_x.npy")[:50]
    ran = run(skl, digits_x, options=CompileOptions.of(pes=16, calibration=calib))
    _line("examples/digits/digits_skl_style.onnx, eiec run (CPU tail)", ran.verify)


def _line(name: str, report: VerifyReport) -> None:
    span = report.output_range or float("nan")
    print(
        f"{name:64s} {report.relative_tolerance:15.3%} {report.worst_error_to_tolerance:13.3f} "
        f"{(report.max_abs_error_vs_compressed or 0.0) / span:10.3%}  "
        f"{'PASSED' if report.passed else 'FAILED'}"
    )


if __name__ == "__main__":
    main()
