"""Benchmark of the textual ISA on an AlexNet FC6-sized program.

Builds a 9216 -> 4096 fully connected layer with a bias column (a 4096 x 9217 code matrix, about
4 M stored entries) over 64 PEs of the paper's machine, then times printing, parsing and
verifying it and reports the file size and the peak memory of each step.

    python benchmarks/bench_isa.py [--density 0.09] [--pes 64] [--repeat 3]

Targets (isa track, issue 2): parse <= 3 s and print <= 3 s.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from eiec.isa import format_program, parse, verify
from eiec.isa.builder import fc_program, random_codes
from eiec.isa.program import Machine, Program

T = TypeVar("T")


def fc6_program(density: float, pes: int, seed: int = 0) -> Program:
    """One FC6-shaped layer (bias included) with random codes at ``density``."""
    rows, cols = 4096, 9216
    codes = random_codes(np.random.default_rng(seed), rows, cols + 1, density)
    codebook = np.concatenate(([0], np.linspace(-8000, 8000, 15))).astype(np.int16)
    return fc_program(
        [codes],
        [codebook],
        [14],
        [12, 10],
        machine=Machine(pes=pes),
        bias=True,
        layer_names=["fc6"],
    )


def measure(step: Callable[[], T], repeat: int) -> tuple[T, float, float]:
    """(result, best wall time in s, peak traced memory in MB of one run)."""
    best = float("inf")
    result: T
    for _ in range(repeat):
        start = time.perf_counter()
        result = step()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, best, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--density", type=float, default=0.09)
    parser.add_argument("--pes", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    program = fc6_program(args.density, args.pes)
    layer = program.layers["fc6"]
    print(
        f"program: {layer.rows} x {layer.cols} layer over {layer.pes} PEs, "
        f"{layer.stored_entries:,} stored entries ({layer.padding_entries:,} padding)"
    )
    text, print_s, print_mb = measure(lambda: format_program(program), args.repeat)
    print(f"print : {print_s:6.3f} s  peak {print_mb:7.1f} MB  file {len(text) / 2**20:.2f} MB")
    parsed, parse_s, parse_mb = measure(lambda: parse(text, "fc6.eie"), args.repeat)
    print(f"parse : {parse_s:6.3f} s  peak {parse_mb:7.1f} MB")
    _, verify_s, verify_mb = measure(lambda: verify(parsed), args.repeat)
    print(f"verify: {verify_s:6.3f} s  peak {verify_mb:7.1f} MB")
    assert parsed == program, "round trip changed the program"
    print("round trip: parse(format_program(p)) == p")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"process peak RSS (generation included): {peak_rss:.0f} MB")


if __name__ == "__main__":
    main()
