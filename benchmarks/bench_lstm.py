"""LSTM benchmark: NeuralTalk's LSTM layer (NT-LSTM) compiled and emulated per time step.

    /work/venv/bin/python benchmarks/bench_lstm.py [--steps 8] [--pes 64] [--sparsity 0.9]

An ONNX LSTM with 600 inputs and 600 hidden units (EIE's NT-LSTM: one 2400 x 1201 MxV over
[x_t; h_{t-1}; 1] per step) with random weights goes through ``eiec.compile_model`` (prune to
10% weights, 4-bit sharing, the LSTM lowering) and the emulator, on the paper's 64-PE chip.
Inputs are uniform in [-1, 1] (100% activation density, as the paper's NT-LSTM row; h is dense
too). The table has one row per time step: the sparse MxV, the rest of the step (writeback of
the gates and the element-wise cell update: 5 table lookups, 3 multiplies, 1 add), and the
whole step at 800 MHz. With 64 PEs the gate rows are padded from 4 x 600 to 4 x 640.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console
from rich.table import Table

from eiec.compiler import CompileOptions, compile_model
from eiec.emulator import Emulator

INPUTS = HIDDEN = 600  # NT-LSTM: 600 + 600 + 1 = 1201 columns, 4 x 600 = 2400 rows


def nt_lstm(steps: int, seed: int) -> onnx.ModelProto:
    """A one-layer forward LSTM (600 -> 600) over ``steps`` steps, batch 1, returning Y."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(HIDDEN)
    w = rng.uniform(-scale, scale, (1, 4 * HIDDEN, INPUTS)).astype(np.float32)
    r = rng.uniform(-scale, scale, (1, 4 * HIDDEN, HIDDEN)).astype(np.float32)
    b = rng.uniform(-scale, scale, (1, 8 * HIDDEN)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R", "B"], ["y"], name="nt_lstm", hidden_size=600)],
        "nt_lstm",
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
    console = Console()

    start = time.perf_counter()
    result = compile_model(
        nt_lstm(args.steps, args.seed), CompileOptions.of(pes=args.pes, sparsity=args.sparsity)
    )
    compile_s = time.perf_counter() - start
    program = result.program
    layer = program.layers["nt_lstm"]
    x = np.random.default_rng(args.seed + 1).uniform(-1, 1, (args.steps, 1, INPUTS))
    start = time.perf_counter()
    stats = Emulator(program).run({"x": x.astype(np.float32)}).stats
    run_s = time.perf_counter() - start

    clock = stats.clock_mhz
    table = Table(
        title=f"NT-LSTM per time step: {layer.rows} x {layer.cols} gate matrix "
        f"({4 * HIDDEN} x 1201 padded), {1 - args.sparsity:.0%} weights, {args.pes} PEs, "
        f"FIFO {stats.fifo_depth}, {clock:g} MHz"
    )
    for name in (
        "step",
        "MxV cycles",
        "cell cycles",
        "step cycles",
        "step us",
        "useful MACs",
        "load eff",
        "MxV energy uJ",
    ):
        table.add_column(name, justify="right")
    macs = stats.layers
    ends = [m.start_cycle for m in macs[1:]] + [stats.cycles]
    for mac, end in zip(macs, ends, strict=True):
        step = end - mac.start_cycle
        table.add_row(
            str(mac.step),
            f"{mac.cycles:,}",
            f"{step - mac.cycles:,}",
            f"{step:,}",
            f"{step / clock:.2f}",
            f"{mac.useful_macs:,}",
            f"{mac.load_efficiency:.1%}",
            f"{mac.energy_pj / 1e6:.3f}",
        )
    console.print(table)
    mac_cycles = sum(m.cycles for m in macs)
    console.print(
        f"whole sequence: {stats.cycles:,} cycles = {stats.time_us:.2f} us "
        f"({stats.time_us / args.steps:.2f} us per step); MxV {mac_cycles / stats.cycles:.1%} "
        f"of the cycles; ideal MxV (stored entries of the broadcast columns / PEs) of the last "
        f"step {macs[-1].ideal_cycles:,.0f} cycles (step 0 broadcasts only x and 1: h_0 = 0); "
        f"stored entries {layer.stored_entries:,} (padding "
        f"{layer.padding_entries:,}); saturations {stats.saturations}; energy "
        f"{stats.energy_pj / 1e6:.2f} uJ"
    )
    console.print(
        f"compile {compile_s:.1f} s, emulate {run_s * 1e3:.0f} ms "
        f"({stats.useful_macs / run_s:.2e} simulated useful MACs per second)"
    )


if __name__ == "__main__":
    main()
