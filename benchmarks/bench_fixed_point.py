"""Formats without calibration: a dense PyTorch-style MLP 784-300-100-10 (nn.Linear's default
init, --sparsity 0, no --calibration), emulated against the compressed model on the CPU.

Prints each buffer's format (fraction bits, the range it holds, why), then the emulator's
largest error and the verify tolerance as fractions of the output range (issue 11's goal: the
error within 1% of the range, the tolerance within 2%).

    .venv/bin/python benchmarks/bench_fixed_point.py [--samples 100] [--input-range 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.compiler.models

from eiec.compiler import CompileOptions, compile_model
from eiec.runtime.verify import verify
from tests.compiler.models import mlp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--input-range", type=float, default=8.0)
    args = parser.parse_args()
    model = mlp([784, 300, 100, 10], init="torch", seed=0)
    result = compile_model(model, CompileOptions(sparsity=0.0, input_range=args.input_range))
    print(f"784-300-100-10, dense, no calibration, --input-range {args.input_range:g}")
    for choice in result.formats.values():
        if choice.kind == "buffer":
            holds = f"holds {choice.max_abs:8.3f}"
            print(f"  {choice.name:8s} frac {choice.frac:3d}  {holds}  ({choice.source})")
    x = np.random.default_rng(1).uniform(0, 1, (args.samples, 784)).astype(np.float32)
    report = verify(result.compressed_model, result.program, x)
    span = report.output_range or 0.0
    error = report.max_abs_error_vs_compressed or 0.0
    print(
        f"  {args.samples} inputs uniform in [0, 1]: output range {span:.4f}, max abs error "
        f"{error:.3g} = {error / span:.3%} "
        f"of it, tolerance {report.tolerance:.3g} = {report.relative_tolerance:.3%}, worst "
        f"error/bound {report.worst_error_to_tolerance:.3f}, saturations {report.saturations}, "
        f"verify {'PASSED' if report.passed else 'FAILED'}"
    )


if __name__ == "__main__":
    main()
