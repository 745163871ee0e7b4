"""Power and area benchmark: the paper's chip on its workload, and a sweep over SRAM size.

    .venv/bin/python benchmarks/bench_power.py [--part chip|sweep|all] [--out benchmarks/out]
        [--workers 2]

- chip: the real AlexNet FC8 of ../shared/fixtures (when present) and random layers of the
  shapes and densities of the paper's AlexNet FC layers (Table III: uniform masks, activations
  uniform in (0, 4)), on the authors' simulator's machine (preset eie-sim, the machine of Table
  IV) and on eie-45nm: time, energy, average power, area, GOP/s and GOP/s/W beside the paper's
  (Table IV's time; 586-590 mW = 64 x Table II's 9.157 mW, "about 590 mW"; 0.638 mm^2 per PE,
  40.8 mm^2; 102 GOP/s peak), and the split of the energy by module and by component beside
  Table II's; the power of random layers of Table III's six other benchmarks. Then the same FC8
  on Table V's 28 nm chip (256 PEs, 1.2 GHz; 2.36 W, 63.8 mm^2).
- sweep: ``eiec sweep`` (``eiec.sweep``) of the real FC8 at 64 PEs, FIFO 7 (eie-sim) over the
  sparse-matrix SRAM per PE (16 KB .. 256 KB; 16 KB does not hold the layer), and over the DRAM
  bandwidth when the machine has a ``dram_gbps`` field; its plot is copied to
  benchmarks/figures/power_sram_sweep.png.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from bench_design_space import BOOK, FIXTURE, PAPER, activations, codes_of, fc8_model, fixture
from bench_emulator import LAYERS as TABLE_III  # the paper's benchmark layers (Table III)
from rich.console import Console
from rich.table import Table

from eiec.emulator import Emulator, EmulatorConfig, EnergyModel
from eiec.isa import fixed
from eiec.isa.builder import fc_program
from eiec.isa.machines import PRESETS
from eiec.isa.program import Machine

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "benchmarks" / "figures"
#: Table II: one PE's power shares by module and by component.
MODULES = {
    "spmat_sram": 54.11,
    "ptr_sram": 19.73,
    "arithmetic": 12.68,
    "activation": 12.25,
    "activation_queue": 1.23,
}
COMPONENTS = {"memory": 59.15, "clock": 20.46, "register": 11.20, "combinational": 9.18}
#: The paper's AlexNet FC layers: Table III shape and densities, Table IV actual time (us).
LAYERS = tuple((*layer, PAPER[layer[0]][1]) for layer in TABLE_III if layer[0].startswith("Alex"))
#: Table III's other benchmark layers (shape, weight and activation density), random as above;
#: the paper's 586-590 mW is one figure for all nine.
OTHERS = tuple(layer for layer in TABLE_III if not layer[0].startswith("Alex"))
PAPER_MW = (586.0, 590.0)
#: The energy table's reference workload (the three layers at one MAC per PE per cycle): 64-bit
#: sparse-matrix reads and pointer pairs read per MAC.
REFERENCE = (0.20924, 0.16289)


def fc8_program(machine: Machine):
    """The real FC8 (bias column included) as a program for ``machine``."""
    codes, book, a = fixture()
    bias = np.load(FIXTURE)["bias_codes"]
    book_frac = fixed.frac_for_range(np.abs(book).max())
    words, _ = fixed.quantize(book, book_frac)
    program = fc_program(
        [np.concatenate([codes, bias[:, None]], axis=1)],
        [words],
        [book_frac],
        [fixed.frac_for_range(a.max()), 8],
        machine=machine,
        bias=True,
        relu=False,
    )
    return program, a


def synthetic(rng: np.random.Generator, inputs: int, outputs: int, wd: float, ad: float, machine):
    """A random layer at the densities: the program and its input."""
    codes = codes_of(rng.random((outputs, inputs)) < wd, rng)
    program = fc_program([codes], [BOOK], [15], [10, 8], machine=machine, relu=True)
    return program, activations(rng, inputs, ad)


def shares(parts: dict[str, float], order: dict[str, float], total: float) -> str:
    """The parts' percentages of ``total``, in ``order``."""
    return " ".join(f"{100 * parts.get(name, 0.0) / total:.1f}" for name in order)


def per_mac(activity: dict[str, int]) -> str:
    """64-bit sparse-matrix reads and pointer pairs read per MAC (stored entry)."""
    macs = activity["multiply"]
    return f"{activity['spmat_read'] / macs:.3f} / {activity['ptr_read'] / macs:.3f}"


def chip(console: Console) -> None:
    table = Table(title="The paper's chip on its workload (45 nm, 64 PEs, 800 MHz)")
    heads = ("layer", "machine", "cycles", "us", "paper us", "uJ", "paper uJ", "mW", "vs paper")
    for head in (*heads, "GOP/s", "GOP/s/W", "mm^2"):
        table.add_column(head, justify="left" if head in ("layer", "machine") else "right")
    splits = Table(title="Energy split (%), beside Table II")
    splits.add_column("layer")
    splits.add_column("machine")
    splits.add_column("modules: " + " / ".join(MODULES))
    splits.add_column("components: " + " / ".join(COMPONENTS))
    splits.add_column("per MAC: SRAM reads / pointers", justify="right")
    rng = np.random.default_rng(2016)
    runs = []
    if fixture() is not None:
        for preset in ("eie-sim", "eie-45nm"):
            runs.append(("FC8 (real)", preset, 9.9, *fc8_program(PRESETS[preset].machine)))
    else:
        console.print(f"FC8: skipped ({FIXTURE} is absent)")
    for name, inputs, outputs, wd, ad, paper_us in LAYERS:
        program, x = synthetic(rng, inputs, outputs, wd, ad, PRESETS["eie-sim"].machine)
        runs.append((f"{name} (random)", "eie-sim", paper_us, program, x))
    for name, preset, paper_us, program, x in runs:
        stats = Emulator(program).run({"x": x.reshape(1, -1)}).stats
        paper_uj = tuple(mw * paper_us / 1e3 for mw in PAPER_MW)
        table.add_row(
            name,
            preset,
            f"{stats.cycles:,}",
            f"{stats.time_us:.2f}",
            f"{paper_us:.1f}",
            f"{stats.energy_pj / 1e6:.3f}",
            f"{paper_uj[0]:.2f}-{paper_uj[1]:.2f}",
            f"{stats.power_mw:.1f}",
            f"{100 * (stats.power_mw / PAPER_MW[1] - 1):+.1f}% / "
            f"{100 * (stats.power_mw / PAPER_MW[0] - 1):+.1f}%",
            f"{stats.gops:.1f}",
            f"{stats.gops_per_w:.1f}",
            f"{stats.chip_area_mm2:.2f}",
        )
        splits.add_row(
            name,
            preset,
            shares(stats.energy_breakdown_pj, MODULES, stats.energy_pj),
            shares(stats.energy_components_pj, COMPONENTS, stats.energy_pj),
            per_mac(stats.activity),
        )
    splits.add_row(
        "Table II",
        "",
        " ".join(f"{v:.1f}" for v in MODULES.values()),
        " ".join(f"{v:.1f}" for v in COMPONENTS.values()),
        f"{REFERENCE[0]:.3f} / {REFERENCE[1]:.3f}",
    )
    console.print(table)
    console.print(
        "paper: Table IV's actual time; energy = 586-590 mW x that time; 'vs paper': power "
        "against 590 / 586 mW; area 40.8 mm^2 (0.638 mm^2 per PE); 102 GOP/s peak. GOP/s: 2 x "
        "useful MACs / time. Random layers: uniform masks of the exact density."
    )
    console.print(splits)
    console.print(
        "Table II's row: the energy table's reference workload (Alex-6/7/8 at one MAC per PE per "
        "cycle), where the table reproduces Table II. A layer reading the SRAMs more often per "
        "MAC than that (Alex-8's 15-16 rows per PE: about 4 entries per column) draws more "
        "power, one reading them less often (Alex-6/7) less. A PE reads a 64-bit word when its "
        "next entry lies in another word than the one it read last (the authors' simulator's "
        "rule; its counts on FC8 are tests/emulator/test_cycles.py's)."
    )
    others = Table(title="Table III's other layers (random, eie-sim): power beside 586-590 mW")
    for head in ("layer", "cycles", "us", "mW", "vs paper", "per MAC: SRAM reads / pointers"):
        others.add_column(head, justify="left" if head == "layer" else "right")
    for name, inputs, outputs, wd, ad in OTHERS:
        program, x = synthetic(rng, inputs, outputs, wd, ad, PRESETS["eie-sim"].machine)
        stats = Emulator(program).run({"x": x.reshape(1, -1)}).stats
        others.add_row(
            name,
            f"{stats.cycles:,}",
            f"{stats.time_us:.2f}",
            f"{stats.power_mw:.1f}",
            f"{100 * (stats.power_mw / PAPER_MW[1] - 1):+.1f}% / "
            f"{100 * (stats.power_mw / PAPER_MW[0] - 1):+.1f}%",
            per_mac(stats.activity),
        )
    console.print(others)
    if fixture() is not None:
        preset = PRESETS["eie-28nm"]
        program, x = fc8_program(preset.machine)
        config = EmulatorConfig(energy=EnergyModel.default(preset.process))
        stats = Emulator(program, config).run({"x": x.reshape(1, -1)}).stats
        console.print(
            f"FC8 (real) on eie-28nm (Table V: 256 PEs, 1.2 GHz, 2.36 W, 63.8 mm^2): "
            f"{stats.cycles:,} cycles, {stats.time_us:.2f} us, {stats.energy_pj / 1e6:.3f} uJ, "
            f"{stats.power_mw / 1e3:.2f} W, {stats.chip_area_mm2:.1f} mm^2, {stats.gops:.0f} "
            f"GOP/s, {stats.gops_per_w:.0f} GOP/s/W"
        )


def sweep(console: Console, out: Path, workers: int) -> None:
    if fixture() is None:
        console.print(f"sweep: skipped ({FIXTURE} is absent)")
        return
    import eiec
    from eiec.console import print_table

    out.mkdir(parents=True, exist_ok=True)
    model, x = fc8_model(out)
    options = eiec.CompileOptions.of(
        sparsity=0.0, calibration=x, machine=PRESETS["eie-sim"].machine
    )
    sizes = [16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10]
    settings: dict[str, list[int | float]] = {"spmat_sram": sizes}
    if "dram_gbps" in Machine.FIELDS:
        settings["dram_gbps"] = [1.0, 4.0, 16.0, 64.0]
    else:
        console.print("DRAM bandwidth: not swept (the machine has no dram_gbps field)")
    command = " ".join(
        f"--set {k}={','.join(f'{v:g}' for v in vals)}" for k, vals in settings.items()
    )
    console.print(
        f"eiec sweep {model} --input {out / 'alexnet_fc8_x.npy'} --sparsity 0 --machine eie-sim "
        f"--pes 64 --fifo-depth 7 {command} --plot {out / 'power_sweep'}"
    )
    start = time.perf_counter()
    result = eiec.sweep(model, x, [64], [7], options, workers=workers, settings=settings)
    console.print(f"{len(result.points)} points in {time.perf_counter() - start:.1f} s wall")
    print_table(result.table(), console)
    paths = result.plot(out / "power_sweep")
    FIGURES.mkdir(parents=True, exist_ok=True)
    figure = FIGURES / "power_sram_sweep.png"
    shutil.copyfile(out / "power_sweep" / "machine_fields.png", figure)
    console.print("plots: " + ", ".join(str(p) for p in [*paths, figure]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("chip", "sweep", "all"), default="all")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    console = Console(width=200)
    if args.part in ("chip", "all"):
        chip(console)
    if args.part in ("sweep", "all"):
        sweep(console, args.out, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
