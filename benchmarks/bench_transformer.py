"""The example GPT (examples/transformer/gpt.onnx) on EIE through BYOC: speed, and pruning
criteria compared at one sparsity.

For each criterion (default: magnitude, wanda, 2:4, wanda,refit at 50% sparsity, 4-bit sharing;
calibrated on the first 8 windows of ``gpt_calib_ids.npy``) it runs
``eiec.runtime.run_byoc.run_byoc`` on the first ``--windows`` test windows of 64 characters and
prints the perplexity and next-char accuracy (original on the CPU vs EIE + CPU), the decode
cycles per token, whether verify passed, and the wall time of the whole run (compile, emulate,
check every call, CPU reference). With ``--profile`` the first
criterion's run is profiled and the top functions by cumulative time are printed.

Run: ``.venv/bin/python benchmarks/bench_transformer.py [--windows 8] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from pathlib import Path

import numpy as np
import onnx

from eiec.compiler import CompileOptions
from eiec.runtime.run_byoc import run_byoc

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "transformer"


def main() -> None:
    """Parse the options, run each criterion, print one line each (and the profile)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--criteria", default="magnitude;wanda;2:4;wanda,refit")
    parser.add_argument("--model", default=str(EXAMPLE / "gpt.onnx"))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    model = onnx.load(args.model)
    folder = Path(args.model).parent
    ids = np.load(folder / "gpt_test_ids.npy")[: args.windows]
    targets = np.load(folder / "gpt_test_targets.npy")[: args.windows]
    calibration = np.load(folder / "gpt_calib_ids.npy")[:8]
    print(
        f"{args.model}: {len(ids)} windows of {ids.shape[1]} tokens, sparsity "
        f"{args.sparsity:g}, 4-bit sharing, calibration: 8 windows"
    )
    print(
        f"{'criterion':<12} {'ppl orig':>9} {'ppl EIE':>9} {'acc orig':>9} {'acc EIE':>9} "
        f"{'cyc/token':>10} {'verify':>7} {'wall s':>8} {'windows/s':>10}"
    )
    for index, criterion in enumerate(args.criteria.split(";")):
        options = CompileOptions.of(
            sparsity=args.sparsity, prune=criterion, calibration=calibration
        )
        profiler = cProfile.Profile() if args.profile and index == 0 else None
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = run_byoc(model, ids, labels=targets, options=options)
        if profiler is not None:
            profiler.disable()
        wall = time.perf_counter() - start
        seq, tokens = report.sequence, report.tokens
        assert seq is not None and tokens is not None
        print(
            f"{criterion:<12} {seq.original_perplexity:>9.3f} {seq.perplexity:>9.3f} "
            f"{seq.original_accuracy:>9.2%} {seq.accuracy:>9.2%} "
            f"{tokens.decode['cycles']:>10.0f} {'PASS' if report.passed else 'FAIL':>7} "
            f"{wall:>8.1f} {len(ids) / wall:>10.3f}",
            flush=True,
        )
        if profiler is not None:
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text).sort_stats("cumulative")
            stats.print_stats(r"(eiec|emulator|runtime)/.*\.py", 25)
            print(text.getvalue())


if __name__ == "__main__":
    main()
