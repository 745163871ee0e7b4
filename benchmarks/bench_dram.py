"""Models larger than the chip: weights streamed from DRAM on the paper's 64-PE chip.

    .venv/bin/python benchmarks/bench_dram.py [--samples 3] [--seed 0]

Two layers larger than the chip's 8 MB of sparse-matrix SRAM (64 PEs x 128 KB): an AlexNet
FC6-shaped layer (9216 x 4096 and a bias column) at 25% weight density, 1.2x the sparse-matrix
SRAM, and a transformer MLP up-projection (4096 x 16384, i.e. 16384 rows of 4096 inputs and a
bias) at 25%, 2x; random 4-bit codes, inputs with 35% non-zero activations (the paper's FC6
activation density), compiled with ``--weights dram`` (``eiec.codegen.streaming``: chunks of at
most half of each PE's SRAMs). Each is emulated at four DRAM bandwidths (a 32-bit LPDDR4-3200
or 64-bit DDR3-1600 channel, 12.8 GB/s, the machine's default; 25.6 (two channels); 51.2 (a
64-bit LPDDR5-6400); 256 (one HBM2 stack)), 100 ns first-word latency, and with unbounded
bandwidth and no latency, which must cost exactly the cycles of the layer held on chip (the
compute bound; checked). Printed per bandwidth: cycles (mean over the samples) against the
compute-bound cycles, the DRAM stall cycles, bytes streamed, the roofline bound bytes /
bandwidth (cycles never fall below it: checked), memory- or compute-bound, and the DRAM's
share of the energy (Table I's 640 pJ per 32 bits).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from eiec.codegen.streaming import place_weights
from eiec.emulator import EmulatorConfig, run_batch
from eiec.isa import verify
from eiec.isa.builder import fc_program, random_codes
from eiec.isa.program import Machine

#: (name, rows, inputs, weight density)
LAYERS = (("FC6", 4096, 9216, 0.25), ("MLP-up", 16384, 4096, 0.25))
BANDWIDTHS = (12.8, 25.6, 51.2, 256.0)
ACTIVATION_DENSITY = 0.35


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=3, help="inputs per layer (3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=160)
    machine = Machine()
    rng = np.random.default_rng(args.seed)
    table = Table(
        title=f"Weights streamed from DRAM, {machine.pes} PEs at {machine.clock_mhz:g} "
        f"MHz, {machine.dram_latency_ns:g} ns latency, {args.samples} inputs"
    )
    for header in (
        "layer",
        "x SRAM",
        "chunks",
        "GB/s",
        "cycles",
        "compute-bound",
        "x",
        "DRAM stall",
        "MB streamed",
        "bytes/bw",
        "bound",
        "DRAM energy",
        "us",
    ):
        table.add_column(header, justify="left" if header in ("layer", "bound") else "right")
    for name, rows, inputs, density in LAYERS:
        start = time.perf_counter()
        codes = random_codes(rng, rows, inputs + 1, density)
        book = np.array([0, *range(-7, 8)], dtype=np.int16) * 1000
        program = fc_program([codes], [book], [14], [10, 8], machine=machine, bias=True)
        streamed, _ = place_weights(program, "dram")
        verify(streamed)
        layer = streamed.layers[program.text[2].layer]
        size = layer.entries_per_pe.max() / machine.spmat_sram
        x = rng.normal(size=(args.samples, inputs))
        x[rng.random(x.shape) >= ACTIVATION_DENSITY] = 0.0
        built = time.perf_counter() - start
        on_chip = run_batch(program, {"x": x}).runs  # the emulator does not check capacity
        free = run_batch(streamed, {"x": x}, EmulatorConfig(dram_gbps=math.inf, dram_latency_ns=0))
        compute = np.mean([s.cycles for s in on_chip])
        assert [s.cycles for s in free.runs] == [s.cycles for s in on_chip], "compute bound"
        for gbps in BANDWIDTHS:
            runs = run_batch(streamed, {"x": x}, EmulatorConfig(dram_gbps=gbps)).runs
            bytes_per_cycle = gbps * 1000 / machine.clock_mhz
            for stats in runs:
                assert stats.cycles >= stats.dram_bytes / bytes_per_cycle, "roofline"
            cycles = np.mean([s.cycles for s in runs])
            dram_share = np.mean([s.energy_breakdown_pj["dram"] / s.energy_pj for s in runs])
            memory = sum(s.layer_totals[0].memory_bound for s in runs)
            table.add_row(
                name,
                f"{size:.2f}",
                str(len(layer.chunks or ()) - 1),
                f"{gbps:g}",
                f"{cycles:,.0f}",
                f"{compute:,.0f}",
                f"{cycles / compute:.2f}",
                f"{np.mean([s.dram_stall_cycles for s in runs]):,.0f}",
                f"{runs[0].dram_bytes / 1e6:.2f}",
                f"{runs[0].dram_bytes / bytes_per_cycle:,.0f}",
                "memory" if memory == len(runs) else "compute" if not memory else "mixed",
                f"{dram_share:.1%}",
                f"{cycles / machine.clock_mhz:,.1f}",
            )
        table.add_section()
        console.print(
            f"{name}: built and placed in {built:.1f} s, emulated in "
            f"{time.perf_counter() - start - built:.1f} s"
        )
    console.print(table)


if __name__ == "__main__":
    main()
