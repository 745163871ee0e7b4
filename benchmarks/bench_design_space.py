"""Design-space benchmark: Table IV, the ESE load-balancing effect, the sweep's wall time.

    .venv/bin/python benchmarks/bench_design_space.py [--part table4|ese|sweep|all]
        [--out benchmarks/out] [--workers 2]

- table4: the paper's nine benchmark layers on its 64-PE chip (FIFO 8, 800 MHz), theoretical
  (stored entries / 64 per cycle) and actual (the whole layer program: codebook load, MAC,
  writeback) microseconds beside the paper's Table IV; random layers at the paper's densities
  (magnitude pruning of uniform random scores: a uniform mask of the exact density), each also
  pruned load-balanced (ESE: every PE's rows to the same density); and the real AlexNet FC8
  of ../shared/fixtures (when present) as given and re-pruned to 90% of its density, globally
  and load-balanced.
- ese: cycles and load efficiency with and without load-balance-aware pruning at 16, 64 and 256
  PEs, on Alex-6 and Alex-8 shapes and densities with synthetic trained-like weights (Gaussian,
  each output row scaled by a log-normal factor, sigma 0.25: rows of larger weights keep more
  of them under global magnitude pruning) and on the real FC8.
- sweep: ``eiec sweep``'s work (``eiec.sweep``) on the FC8 fixture over 1..256 PEs and FIFO
  depths 1..16 on the local process pool and on a local Ray, ``--workers`` each; wall times,
  identical points checked, plots in ``--out``/sweep.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
from bench_emulator import LAYERS  # the paper's benchmark layers (Table III)
from rich.console import Console
from rich.table import Table

from eiec.emulator import Emulator
from eiec.isa import fixed
from eiec.isa.builder import fc_program
from eiec.isa.program import Machine
from eiec.passes.prune_weights import per_pe_counts, prune_balanced, prune_magnitude

REPO = Path(__file__).resolve().parents[1]
#: ../shared/fixtures beside the repository (a worktree's is two levels up).
FIXTURE = next(
    (
        path
        for path in (base / "shared/fixtures/alexnet_fc8_eie.npz" for base in REPO.parents[:2])
        if path.exists()
    ),
    REPO.parent / "shared/fixtures/alexnet_fc8_eie.npz",
)
#: Table IV of the paper (us, batch 1): EIE theoretical and actual time.
PAPER = {
    "Alex-6": (28.1, 30.3),
    "Alex-7": (11.7, 12.2),
    "Alex-8": (8.9, 9.9),
    "VGG-6": (28.1, 34.4),
    "VGG-7": (7.9, 8.7),
    "VGG-8": (7.3, 8.4),
    "NT-We": (5.2, 8.0),
    "NT-Wd": (13.0, 13.9),
    "NT-LSTM": (6.5, 7.5),
}
#: The chip with memories and pointers large enough for every layer at any PE count (the
#: per-PE memories do not change the cycles).
ROOMY = Machine(spmat_sram=1 << 24, ptr_sram=1 << 20, act_sram=1 << 20, ptr_bits=32)
BOOK = np.array([0, *np.linspace(-3000, 3000, 15).astype(int)], dtype=np.int16)


def owners(rows: int, pes: int) -> np.ndarray:
    """The PE of each row (row r on PE r mod N)."""
    return np.arange(rows) % pes


def codes_of(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform 4-bit codes 1..15 where ``mask``."""
    return np.where(mask, rng.integers(1, 16, size=mask.shape), 0).astype(np.uint8)


def run_layer(codes: np.ndarray, x: np.ndarray, pes: int, book=BOOK, frac=15, fracs=(10, 8)):
    """The layer program's statistics on ``pes`` PEs (FIFO 8, 800 MHz)."""
    machine = dataclasses.replace(ROOMY, pes=pes)
    program = fc_program([codes], [book], [frac], list(fracs), machine=machine, relu=True)
    return Emulator(program).run({"x": x.reshape(1, -1)}).stats


def activations(rng: np.random.Generator, size: int, density: float) -> np.ndarray:
    """Post-ReLU-like activations: uniform in (0, 4) with the given density."""
    return np.where(rng.random(size) < density, rng.random(size) * 4 + 1 / 256, 0.0)


def imbalance(codes: np.ndarray, pes: int) -> float:
    """max / mean of the PEs' non-zero weights."""
    counts = per_pe_counts(codes, owners(codes.shape[0], pes), pes)
    return float(counts.max() / counts.mean())


def fixture() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(codes with the bias column, codebook words, activations) of FC8, or None."""
    if not FIXTURE.exists():
        return None
    data = np.load(FIXTURE)
    return data["codes"], data["codebook"].astype(np.float64), data["activations"]


def fc8_variants(pes: int) -> list[tuple[str, np.ndarray]]:
    """FC8 as given, and re-pruned to 90% of its density globally and load-balanced."""
    loaded = fixture()
    if loaded is None:
        return []
    codes, book, _ = loaded
    magnitude = np.abs(book[codes])
    sparsity = 1 - 0.9 * np.count_nonzero(codes) / codes.size
    plain = np.where(prune_magnitude(magnitude, sparsity) != 0, codes, 0)
    balanced = np.where(prune_balanced(magnitude, sparsity, owners(1000, pes)) != 0, codes, 0)
    return [("FC8 (real)", codes), ("FC8 -10% global", plain), ("FC8 -10% balanced", balanced)]


def run_fc8(codes: np.ndarray, pes: int):
    """The FC8 variant on ``pes`` PEs with the fixture's codebook and activations."""
    _, book, a = fixture()
    book_frac = fixed.frac_for_range(np.abs(book).max())
    words, _ = fixed.quantize(book, book_frac)
    return run_layer(codes, a, pes, words, book_frac, (fixed.frac_for_range(a.max()), 8))


def table4(console: Console) -> None:
    table = Table(title="Table IV: 64 PEs, FIFO 8, 800 MHz (us per layer, batch 1)")
    heads = ("layer", "theor.", "actual", "act/theor", "paper theor.", "paper actual")
    for head in (*heads, "paper a/t", "balanced actual", "PE max/mean", "balanced max/mean"):
        table.add_column(head, justify="left" if head == "layer" else "right")
    rng = np.random.default_rng(2016)
    for name, inputs, outputs, wd, ad in LAYERS:
        scores = rng.random((outputs, inputs))
        plain = codes_of(prune_magnitude(scores, 1 - wd) != 0, rng)
        balanced = codes_of(prune_balanced(scores, 1 - wd, owners(outputs, 64)) != 0, rng)
        x = activations(rng, inputs, ad)
        stats, even = run_layer(plain, x, 64), run_layer(balanced, x, 64)
        theory, actual = stats.ideal_cycles / 800, stats.time_us
        paper = PAPER[name]
        table.add_row(
            name,
            f"{theory:.1f}",
            f"{actual:.1f}",
            f"{actual / theory:.3f}",
            f"{paper[0]:.1f}",
            f"{paper[1]:.1f}",
            f"{paper[1] / paper[0]:.3f}",
            f"{even.time_us:.1f}",
            f"{imbalance(plain, 64):.3f}",
            f"{imbalance(balanced, 64):.3f}",
        )
        del scores
    for name, codes in fc8_variants(64):
        stats = run_fc8(codes, 64)
        theory = stats.ideal_cycles / 800
        table.add_row(
            name,
            f"{theory:.1f}",
            f"{stats.time_us:.1f}",
            f"{stats.time_us / theory:.3f}",
            *(("8.9", "9.9", "1.112") if name == "FC8 (real)" else ("", "", "")),
            "",
            f"{imbalance(codes, 64):.3f}",
            "",
        )
    console.print(table)
    console.print(
        "theor.: stored entries (padding included) of the broadcast columns / 64 per cycle; "
        "actual: the layer's program (load-codebook, sparse-column-mac, relu-writeback). "
        "Random layers: uniform masks of the exact density; balanced: each PE's rows pruned to "
        "that density on their own (ESE). PE max/mean: non-zero weights of the busiest PE over "
        "the mean. FC8 re-pruned rows share the real layer's codebook and activations."
    )


def synthetic(rng: np.random.Generator, outputs: int, inputs: int) -> np.ndarray:
    """Trained-like dense weights: Gaussian, each output row scaled log-normally (sigma 0.25)."""
    scale = np.exp(rng.normal(0.0, 0.25, size=(outputs, 1)))
    return rng.normal(size=(outputs, inputs)) * scale


def ese(console: Console) -> None:
    table = Table(title="ESE load-balance-aware pruning: cycles and load efficiency (FIFO 8)")
    heads = ("layer", "PEs", "cycles", "balanced", "speed-up", "load eff", "balanced")
    for head in (*heads, "PE max/mean", "balanced"):
        table.add_column(head, justify="left" if head == "layer" else "right")
    rng = np.random.default_rng(2017)
    for name, inputs, outputs, wd, ad in (LAYERS[0], LAYERS[2]):
        weights = synthetic(rng, outputs, inputs)
        x = activations(rng, inputs, ad)
        plain = codes_of(prune_magnitude(weights, 1 - wd) != 0, rng)
        for pes in (16, 64, 256):
            balanced = np.where(prune_balanced(weights, 1 - wd, owners(outputs, pes)) != 0, 1, 0)
            balanced = codes_of(balanced != 0, rng)
            a, b = run_layer(plain, x, pes), run_layer(balanced, x, pes)
            _row(
                table,
                f"{name} (synthetic)",
                pes,
                a,
                b,
                imbalance(plain, pes),
                imbalance(balanced, pes),
            )
    if fixture() is not None:
        for pes in (16, 64, 256):
            variants = dict(fc8_variants(pes))
            plain, balanced = variants["FC8 -10% global"], variants["FC8 -10% balanced"]
            a, b = run_fc8(plain, pes), run_fc8(balanced, pes)
            _row(
                table, "FC8 -10% (real)", pes, a, b, imbalance(plain, pes), imbalance(balanced, pes)
            )
    console.print(table)
    console.print(
        "cycles: the layer program (codebook, MAC, writeback); speed-up: plain / balanced "
        "cycles; load eff: 1 - starved / (N x MAC window); both variants of a row have the "
        "same number of weights (balanced: the same per PE, to rounding)."
    )


def _row(table: Table, name: str, pes: int, a, b, before: float, after: float) -> None:
    table.add_row(
        name,
        str(pes),
        f"{a.cycles:,}",
        f"{b.cycles:,}",
        f"{a.cycles / b.cycles:.3f}x",
        f"{a.load_efficiency:.1%}",
        f"{b.load_efficiency:.1%}",
        f"{before:.3f}",
        f"{after:.3f}",
    )


def fc8_model(out: Path) -> tuple[Path, np.ndarray]:
    """The fixture as an ONNX Gemm (W = codebook[codes], C = codebook[bias_codes])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    data = np.load(FIXTURE)
    book = data["codebook"]
    w = book[data["codes"]].astype(np.float32)
    c = book[data["bias_codes"]].astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=1)],
        "alexnet_fc8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1000])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(c, "c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = out / "alexnet_fc8.onnx"
    onnx.save(model, str(path))
    x = data["activations"].reshape(1, -1).astype(np.float32)
    np.save(out / "alexnet_fc8_x.npy", x)
    return path, x


def sweep(console: Console, out: Path, workers: int) -> None:
    if fixture() is None:
        console.print(f"sweep: skipped ({FIXTURE} is absent)")
        return
    import eiec
    from eiec.console import print_table

    out.mkdir(parents=True, exist_ok=True)
    model, x = fc8_model(out)
    options = eiec.CompileOptions.of(
        sparsity=0.0,
        calibration=x,
        ptr_bits=32,
        spmat_sram=1 << 22,
        ptr_sram=1 << 16,
        act_sram=1 << 16,
    )
    pes, depths = (1, 2, 4, 8, 16, 32, 64, 128, 256), (1, 2, 4, 8, 16)
    results = {}
    for engine in ("local", "ray"):
        start = time.perf_counter()
        results[engine] = eiec.sweep(model, x, pes, depths, options, engine, workers=workers)
        console.print(
            f"sweep, {engine} engine, {workers} workers: {len(pes)} compiles + "
            f"{len(pes) * len(depths)} points in {time.perf_counter() - start:.1f} s wall"
        )
    local, ray = (results[e].to_json()["points"] for e in ("local", "ray"))
    console.print(f"local and Ray points identical: {local == ray}")
    print_table(results["local"].table(), console)
    paths = results["local"].plot(out / "sweep")
    console.print("plots: " + ", ".join(str(p) for p in paths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("table4", "ese", "sweep", "all"), default="all")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    console = Console(width=180)
    if args.part in ("table4", "all"):
        table4(console)
    if args.part in ("ese", "all"):
        ese(console)
    if args.part in ("sweep", "all"):
        sweep(console, args.out, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
