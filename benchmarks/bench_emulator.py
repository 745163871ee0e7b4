"""Emulator benchmark: the nine EIE benchmark layers, a PE sweep, a FIFO sweep, speed targets.

    /work/venv/bin/python benchmarks/bench_emulator.py [--out benchmarks/out]

Layers are random (uniform masks at the paper's weight and activation densities, uniform 4-bit
codes 1..15), emulated on the paper's 64-PE chip. A layer that does not fit the chip's per-PE
memories (128 KB sparse-matrix SRAM, 32 KB pointer SRAM, 16-bit pointers) runs on a machine with
those memories enlarged, and the table says so. Plots are written to ``--out`` as PNG.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from eiec.emulator import Emulator, EmulatorConfig
from eiec.isa import save
from eiec.isa.builder import fc_program, random_codes
from eiec.isa.program import Machine, Program

REPO = Path(__file__).resolve().parents[1]

#: (name, inputs, outputs, weight density, activation density): the design doc's table.
LAYERS = (
    ("Alex-6", 9216, 4096, 0.09, 0.351),
    ("Alex-7", 4096, 4096, 0.09, 0.353),
    ("Alex-8", 4096, 1000, 0.25, 0.375),
    ("VGG-6", 25088, 4096, 0.04, 0.183),
    ("VGG-7", 4096, 4096, 0.04, 0.375),
    ("VGG-8", 4096, 1000, 0.23, 0.411),
    ("NT-We", 4096, 600, 0.10, 1.0),
    ("NT-Wd", 600, 8791, 0.11, 1.0),
    ("NT-LSTM", 1201, 2400, 0.10, 1.0),
)
CHIP = Machine()  # the paper's 64-PE chip


def emulate_command(out: Path) -> list[str]:
    """The `eiec emulate` process on out/fc8.eie and out/fc8_x.npy (a 4096->1000 layer)."""
    return [
        str(Path(sys.executable).with_name("eiec")),
        "emulate",
        str(out / "fc8.eie"),
        "--input",
        str(out / "fc8_x.npy"),
        "--output",
        str(out / "fc8_y.npy"),
        "--json",
    ]


def layer_program(
    rng: np.random.Generator, inputs: int, outputs: int, density: float, pes: int, depth: int = 8
) -> tuple[Program, list[str]]:
    """One random FC layer on ``pes`` PEs, on the paper's memories or enlarged ones (noted)."""
    codes = random_codes(rng, outputs, inputs, density)
    book = np.array([0, *np.linspace(-3000, 3000, 15).astype(int)], dtype=np.int16)
    machine = dataclasses.replace(CHIP, pes=pes, fifo_depth=depth)
    program = fc_program([codes], [book], [15], [10, 8], machine=machine, relu=True)
    layer = next(iter(program.layers.values()))
    entries = int(layer.entries_per_pe.max())
    notes = []
    spmat, ptr_sram, ptr_bits = CHIP.spmat_sram, CHIP.ptr_sram, CHIP.ptr_bits
    if entries >= 1 << ptr_bits:
        ptr_bits = 32
        notes.append(f"ptr {ptr_bits}-bit")
    if entries > spmat:
        spmat = 1 << int(np.ceil(np.log2(entries)))
        notes.append(f"spmat {spmat // 1024} KB")
    if (inputs + 1) * ptr_bits // 8 > ptr_sram:
        ptr_sram = 1 << int(np.ceil(np.log2((inputs + 1) * ptr_bits // 8)))
        notes.append(f"ptr {ptr_sram // 1024} KB")
    program.machine = dataclasses.replace(
        machine, spmat_sram=spmat, ptr_sram=ptr_sram, ptr_bits=ptr_bits
    )
    return program, notes


def activations(rng: np.random.Generator, size: int, density: float) -> np.ndarray:
    """Post-ReLU-like activations: uniform in (0, 4) with the given density."""
    x = np.where(rng.random(size) < density, rng.random(size) * 4 + 1 / 256, 0.0)
    return x.reshape(1, -1).astype(np.float32)


def timed(fn, repeat: int = 5) -> tuple[float, object]:
    """Median wall time of ``fn()`` and its last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def benchmark_layers(console: Console) -> None:
    table = Table(title="EIE benchmark layers, 64 PEs, FIFO 8, 800 MHz (random masks)")
    for name in (
        "layer",
        "in x out",
        "W",
        "A",
        "cycles",
        "us",
        "theor. us",
        "ALU util",
        "load eff",
        "energy uJ",
        "load ms",
        "run ms",
        "MACs/s",
        "memories",
    ):
        table.add_column(name, justify="left" if name in ("layer", "memories") else "right")
    rng = np.random.default_rng(2016)
    for name, inputs, outputs, wd, ad in LAYERS:
        program, notes = layer_program(rng, inputs, outputs, wd, pes=64)
        x = activations(rng, inputs, ad)
        load_s, emulator = timed(lambda p=program: Emulator(p), repeat=1)
        run_s, result = timed(lambda e=emulator, x=x: e.run({"x": x}), repeat=3)
        stats = result.stats
        mac = stats.layers[0]
        table.add_row(
            name,
            f"{inputs}x{outputs}",
            f"{wd:.0%}",
            f"{ad:.1%}",
            f"{stats.cycles:,}",
            f"{stats.time_us:.2f}",
            f"{mac.ideal_cycles / stats.clock_mhz:.2f}",
            f"{stats.alu_utilization:.1%}",
            f"{stats.load_efficiency:.1%}",
            f"{stats.energy_pj / 1e6:.2f}",
            f"{load_s * 1e3:.0f}",
            f"{run_s * 1e3:.1f}",
            f"{stats.useful_macs / run_s:.2e}",
            ", ".join(notes) or "chip",
        )
    console.print(table)
    console.print(
        "us: emulated time at 800 MHz (whole program: codebook load, MAC, writeback); theor.: "
        "stored entries (padding included) of the broadcast columns / 64 / 800 MHz; ALU util: "
        "useful MACs / (64 x cycles); load eff: 1 - starved / (64 x MAC window); load ms: "
        "Emulator construction (layer tables); run ms: median of 3 runs; MACs/s: simulated "
        "useful MACs per wall second of a run. memories: 'chip' = the paper's per-PE memories."
    )


def sweeps(console: Console, out: Path) -> None:
    rng = np.random.default_rng(8)
    inputs, outputs, wd, ad = 4096, 1000, 0.25, 0.375  # Alex-8
    codes_rng_state = rng.bit_generator.state
    x = activations(np.random.default_rng(9), inputs, ad)
    pe_counts = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    pe_rows = []
    for pes in pe_counts:
        rng.bit_generator.state = codes_rng_state  # the same matrix for every PE count
        program, notes = layer_program(rng, inputs, outputs, wd, pes=pes)
        stats = Emulator(program).run({"x": x}).stats
        pe_rows.append(
            (
                pes,
                stats.layers[0].cycles,
                stats.layers[0].ideal_cycles,
                stats.load_efficiency,
                notes,
            )
        )
    depths = [1, 2, 4, 8, 16, 32]
    rng.bit_generator.state = codes_rng_state
    program, _ = layer_program(rng, inputs, outputs, wd, pes=64)
    emulator_by_depth = {d: Emulator(program, EmulatorConfig(fifo_depth=d)) for d in depths}
    depth_rows = []
    for depth, emulator in emulator_by_depth.items():
        stats = emulator.run({"x": x}).stats
        depth_rows.append(
            (depth, stats.layers[0].cycles, stats.load_efficiency, stats.stall_cycles)
        )

    table = Table(title="PE sweep, Alex-8 shape (4096x1000, 25% / 37.5%), FIFO 8")
    for name in ("PEs", "MAC cycles", "ideal", "speed-up", "load eff", "memories"):
        table.add_column(name, justify="right")
    base = pe_rows[0][1]
    for pes, cycles, ideal, eff, notes in pe_rows:
        table.add_row(
            str(pes),
            f"{cycles:,}",
            f"{ideal:,.0f}",
            f"{base / cycles:.1f}x",
            f"{eff:.1%}",
            ", ".join(notes) or "chip",
        )
    console.print(table)
    table = Table(title="FIFO-depth sweep, Alex-8 shape, 64 PEs")
    for name in ("depth", "MAC cycles", "load eff", "broadcast stalls"):
        table.add_column(name, justify="right")
    for depth, cycles, eff, stalls in depth_rows:
        table.add_row(str(depth), f"{cycles:,}", f"{eff:.1%}", f"{stalls:,}")
    console.print(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.loglog(pe_counts, [r[1] for r in pe_rows], "o-", label="emulated MAC cycles")
    left.loglog(pe_counts, [r[2] for r in pe_rows], "--", label="ideal (entries / N)")
    left.set_xscale("log", base=2)
    left.set_xlabel("PEs")
    left.set_ylabel("cycles")
    left.set_title("Alex-8 shape: PE scaling (FIFO 8)")
    left.legend()
    left.grid(True, which="both", alpha=0.3)
    right.plot(depths, [r[2] * 100 for r in depth_rows], "o-")
    right.set_xscale("log", base=2)
    right.set_xlabel("FIFO depth")
    right.set_ylabel("load efficiency (%)")
    right.set_title("Alex-8 shape: FIFO depth (64 PEs)")
    right.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "emulator_sweeps.png", dpi=120)
    console.print(f"plot: {out / 'emulator_sweeps.png'}")


def speed_targets(console: Console, out: Path) -> None:
    rng = np.random.default_rng(7)
    table = Table(title="Speed targets (median wall time)")
    for name in ("case", "measured", "target"):
        table.add_column(name, justify="left" if name == "case" else "right")
    for label, inputs, outputs, wd, ad, target in (
        ("4096->1000, 25%/43%, 64 PEs", 4096, 1000, 0.25, 0.43, 0.2),
        ("9216->4096, 9%/35%, 64 PEs", 9216, 4096, 0.09, 0.35, 1.0),
    ):
        program, _ = layer_program(rng, inputs, outputs, wd, pes=64)
        x = activations(rng, inputs, ad)
        whole, _ = timed(lambda p=program, x=x: Emulator(p).run({"x": x}))
        emulator = Emulator(program)
        run, _ = timed(lambda e=emulator, x=x: e.run({"x": x}))
        table.add_row(f"{label}: Emulator() + run", f"{whole:.3f} s", f"<= {target} s")
        table.add_row(f"{label}: run only", f"{run:.3f} s", "")
        if inputs == 4096:
            out.mkdir(parents=True, exist_ok=True)
            save(program, out / "fc8.eie")
            np.save(out / "fc8_x.npy", x)
            command = emulate_command(out)
            process, _ = timed(
                lambda c=command: subprocess.run(c, check=True, capture_output=True), repeat=5
            )
            table.add_row(f"{label}: `eiec emulate` process", f"{process:.3f} s", "<= 1 s")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    console = Console(width=160)
    benchmark_layers(console)
    sweeps(console, args.out)
    speed_targets(console, args.out)


if __name__ == "__main__":
    main()
