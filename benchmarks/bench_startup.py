"""Emulator speed goals (issue 14): a whole `eiec emulate` process, a big layer, a batch.

    .venv/bin/python benchmarks/bench_startup.py [--repeat 11] [--out benchmarks/out]

1. A whole ``eiec emulate`` process on the 4096->1000 layer (25% weights, 43% activations,
   64 PEs, as bench_emulator.py's), against a bare ``python -c "import numpy"`` measured in the
   same run, interleaved: goal <= 2.0x. Both run with bytecode caching on (as after an ordinary
   install) after one warm-up each, so the grammar cache, the loaded-program cache
   (``eiec.emulator.image``) and ``.pyc`` files exist; a third command runs without the
   program cache (``EIEC_NO_CACHE=1``) to show what a first run of a program costs.
2. In process, ``Emulator(program)`` + one run of the 9216->4096 layer (9% / 35%): goal
   <= 0.15 s.
3. ``run_batch`` of 100 samples of the 4096->1000 layer: (time of 100 - time of 1) / 99,
   goal <= 1 ms per sample after the first.

Medians of ``--repeat`` runs; the load average is printed with them (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_emulator import REPO, activations, emulate_command, layer_program
from rich.console import Console
from rich.table import Table

from eiec.emulator import Emulator, run_batch
from eiec.isa import save

#: The three measurements, in the order they run.
PARTS = ("process", "layer", "batch")


def median_time(fn, repeat: int) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def process_ratio(out: Path, repeat: int) -> tuple[list[float], list[float]]:
    """Median wall and CPU (user + system) seconds of a bare numpy import, a whole
    ``eiec emulate`` (its loaded program cached after the warm-up round) and the same with
    ``EIEC_NO_CACHE=1`` (parsed, verified and tables built in every process), run
    interleaved."""
    rng = np.random.default_rng(7)
    program, _ = layer_program(rng, 4096, 1000, 0.25, pes=64)
    out.mkdir(parents=True, exist_ok=True)
    save(program, out / "fc8.eie")
    np.save(out / "fc8_x.npy", activations(rng, 4096, 0.43))
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "EIEC_NO_CACHE")
    }
    runs = (
        ([sys.executable, "-c", "import numpy"], env),
        (emulate_command(out), env),
        (emulate_command(out), {**env, "EIEC_NO_CACHE": "1"}),
    )
    wall: list[list[float]] = [[] for _ in runs]
    cpu: list[list[float]] = [[] for _ in runs]
    for trial in range(repeat + 1):
        for which, (command, environment) in enumerate(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=environment)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if trial:  # the first round warms the caches
                wall[which].append(elapsed)
                cpu[which].append(
                    after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                )
    return [statistics.median(w) for w in wall], [statistics.median(c) for c in cpu]


def big_layer(repeat: int) -> tuple[float, float]:
    """Median seconds of Emulator() + run, and of Emulator() alone, on 9216->4096 at 9%."""
    rng = np.random.default_rng(7)
    program, _ = layer_program(rng, 9216, 4096, 0.09, pes=64)
    x = {"x": activations(rng, 9216, 0.35)}
    whole = median_time(lambda: Emulator(program).run(x), repeat)
    build = median_time(lambda: Emulator(program), repeat)
    return whole, build


def batch(repeat: int) -> tuple[float, float]:
    """Median seconds of run_batch on 1 and on 100 samples of the 4096->1000 layer."""
    rng = np.random.default_rng(7)
    program, _ = layer_program(rng, 4096, 1000, 0.25, pes=64)
    xs = np.concatenate([activations(rng, 4096, 0.43) for _ in range(100)])
    one = median_time(lambda: run_batch(program, {"x": xs[:1]}), repeat)
    hundred = median_time(lambda: run_batch(program, {"x": xs}), max(3, repeat // 3))
    return one, hundred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure"
    )
    args = parser.parse_args()
    console = Console(width=120)
    load_before = os.getloadavg()[0]
    table = Table(title=f"Emulator speed goals (medians of {args.repeat})")
    for name in ("case", "measured", "goal"):
        table.add_column(name, justify="left" if name == "case" else "right")
    if "process" in args.parts:
        (numpy_s, emulate_s, cold_s), (numpy_cpu, emulate_cpu, _) = process_ratio(
            args.out, args.repeat
        )
        table.add_row('`python -c "import numpy"` process', f"{numpy_s:.3f} s", "")
        table.add_row("`eiec emulate` process, 4096->1000 (25%/43%)", f"{emulate_s:.3f} s", "")
        table.add_row("  ratio to the numpy import", f"{emulate_s / numpy_s:.2f}x", "<= 2.0x")
        table.add_row(
            "  CPU time: numpy import, emulate, ratio",
            f"{numpy_cpu:.3f} s, {emulate_cpu:.3f} s, {emulate_cpu / numpy_cpu:.2f}x",
            "",
        )
        table.add_row(
            "  without the program cache (EIEC_NO_CACHE=1), ratio",
            f"{cold_s:.3f} s, {cold_s / numpy_s:.2f}x",
            "",
        )
    if "layer" in args.parts:
        whole, build = big_layer(args.repeat)
        table.add_row("Emulator() + run, 9216->4096 (9%/35%)", f"{whole:.3f} s", "<= 0.15 s")
        table.add_row("  of which Emulator() (layer tables)", f"{build:.3f} s", "")
    if "batch" in args.parts:
        one, hundred = batch(args.repeat)
        per_sample = (hundred - one) / 99
        table.add_row("run_batch, 4096->1000, 1 sample", f"{one * 1e3:.1f} ms", "")
        table.add_row("run_batch, 4096->1000, 100 samples", f"{hundred * 1e3:.0f} ms", "")
        table.add_row("  per sample after the first", f"{per_sample * 1e3:.2f} ms", "<= 1 ms")
    console.print(table)
    console.print(
        f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, "
        f"on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
