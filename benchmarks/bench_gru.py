"""GRU benchmark: a GRU of NT-LSTM's size compiled and emulated, both ``linear_before_reset``.

    .venv/bin/python benchmarks/bench_gru.py [--steps 8] [--pes 64] [--sparsity 0.9]

An ONNX GRU with 600 inputs and 600 hidden units (random weights, 10% kept, 4-bit sharing) on
the paper's 64-PE chip, inputs uniform in [-1, 1], once with ``linear_before_reset = 1``
(PyTorch's GRU: one MxV per step over [x_t; h_{t-1}; 1] into four row groups of 640 rows) and
once with ``linear_before_reset = 0`` (ONNX's default: the layer run twice per step, over
[0; x_t; h_{t-1}; 1] and then over [r * h; 0; 0; 0]). Per setting: the program layer's shape,
the average cycles per step (sparse MxV and the rest: writebacks, tables, the update), the time
per step at 800 MHz, and the largest error bound and error against the compressed model run by
``onnx.reference`` over the sequence.
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from rich.console import Console
from rich.table import Table

from eiec.compiler import CompileOptions, compile_model
from eiec.runtime.verify import emulate_with_bounds

INPUTS = HIDDEN = 600


def gru(steps: int, seed: int, linear_before_reset: int) -> onnx.ModelProto:
    """A one-layer forward GRU (600 -> 600) over ``steps`` steps, batch 1, returning Y."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(HIDDEN)
    w = rng.uniform(-scale, scale, (1, 3 * HIDDEN, INPUTS)).astype(np.float32)
    r = rng.uniform(-scale, scale, (1, 3 * HIDDEN, HIDDEN)).astype(np.float32)
    b = rng.uniform(-scale, scale, (1, 6 * HIDDEN)).astype(np.float32)
    node = helper.make_node(
        "GRU",
        ["x", "W", "R", "B"],
        ["y"],
        name="gru",
        hidden_size=HIDDEN,
        linear_before_reset=linear_before_reset,
    )
    graph = helper.make_graph(
        [node],
        "gru",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, 1, INPUTS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [steps, 1, 1, HIDDEN])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "W"), (r, "R"), (b, "B"))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--pes", type=int, default=64)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=2016)
    args = parser.parse_args()
    x = np.random.default_rng(args.seed + 1).uniform(-1, 1, (args.steps, 1, INPUTS))
    x = x.astype(np.float32)
    table = Table(
        title=f"GRU 600 -> 600, {args.steps} steps, {1 - args.sparsity:.0%} weights, {args.pes} PEs"
    )
    for name in (
        "linear_before_reset",
        "layer rows x cols",
        "MACs per step",
        "MxV cycles/step",
        "other cycles/step",
        "us/step",
        "max bound",
        "max error",
    ):
        table.add_column(name, justify="right")
    for lbr in (1, 0):
        options = CompileOptions.of(pes=args.pes, sparsity=args.sparsity)
        result = compile_model(gru(args.steps, args.seed, lbr), options)
        layer = result.program.layers["gru"]
        run = emulate_with_bounds(result.program, {"x": x})
        stats = run.stats
        mac_cycles = sum(m.cycles for m in stats.layers)
        (expected,) = ReferenceEvaluator(result.compressed_model).run(None, {"x": x})
        table.add_row(
            str(lbr),
            f"{layer.rows} x {layer.cols}",
            str(len(stats.layers) // args.steps),
            f"{mac_cycles / args.steps:,.0f}",
            f"{(stats.cycles - mac_cycles) / args.steps:,.0f}",
            f"{stats.time_us / args.steps:.2f}",
            f"{run.bounds['y'].max():.2e}",
            f"{np.abs(run.outputs['y'] - expected).max():.2e}",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
