"""The example transformers (examples/transformer) on EIE through BYOC: pruning criteria
compared at one sparsity, quality and cycles (issue 22 item 3).

For each model (``--models``: the GPT, ``gpt.onnx``, scored by perplexity and next-character
accuracy over per-token targets; the BERT-style classifier, ``bert.onnx``, by accuracy) and
each criterion (default: magnitude, wanda, 2:4 one-shot, then each with ``,refit``: the
layer-wise recovery, sequential calibration and codebook-aware refit of
``eiec.passes.prune_weights``), at ``--sparsity`` (default 50%; 2:4 is 50% by its pattern) with
4-bit sharing, calibrated on the first ``--calibration`` windows of the model's
``*_calib_ids.npy``, it runs ``eiec.runtime.run_byoc.run_byoc`` on the first ``--windows`` test
windows of 64 characters and prints one row: the original model's quality on the CPU, the
emulated (EIE + CPU) one and the change, the decode cycles per token (one new token through
every offloaded Linear), whether verify passed, and the wall time of the whole run (compile,
emulate, check every call, CPU reference). With ``--profile`` the first criterion's run is
profiled and the top functions by cumulative time are printed.

Run: ``.venv/bin/python benchmarks/bench_transformer.py [--windows 20] [--models gpt,bert]``
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
from eiec.runtime.run_byoc import ByocReport, run_byoc

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "transformer"
CRITERIA = "magnitude;wanda;2:4;magnitude,refit;wanda,refit;2:4,refit"


def quality(report: ByocReport) -> tuple[float, float, str]:
    """(original, emulated, change) of the report's headline figure: perplexity for a
    language model (change in %), accuracy for a classifier (change in points)."""
    if report.sequence is not None:
        seq = report.sequence
        change = 100.0 * (seq.perplexity / seq.original_perplexity - 1.0)
        return seq.original_perplexity, seq.perplexity, f"{change:+.1f}%"
    accuracy = report.accuracy
    assert accuracy is not None and accuracy.emulator is not None
    change = 100.0 * (accuracy.emulator - accuracy.original)
    return 100.0 * accuracy.original, 100.0 * accuracy.emulator, f"{change:+.1f} pt"


def bench_model(name: str, args: argparse.Namespace) -> None:
    """One table: a row per criterion."""
    model = onnx.load(EXAMPLE / f"{name}.onnx")
    ids = np.load(EXAMPLE / f"{name}_test_ids.npy")[: args.windows]
    label_file = "gpt_test_targets.npy" if name == "gpt" else "bert_test_labels.npy"
    labels = np.load(EXAMPLE / label_file)[: args.windows]
    calibration = np.load(EXAMPLE / f"{name}_calib_ids.npy")[: args.calibration]
    figure = "perplexity" if name == "gpt" else "accuracy %"
    print(
        f"\n{name}.onnx: {len(ids)} test windows of {ids.shape[1]} tokens, sparsity "
        f"{args.sparsity:g}, 4-bit sharing, calibration: {len(calibration)} windows; {figure}"
    )
    print(
        f"{'criterion':<16} {'original':>9} {'EIE':>9} {'change':>9} {'cyc/token':>10} "
        f"{'verify':>7} {'wall s':>8}"
    )
    for index, criterion in enumerate(args.criteria.split(";")):
        options = CompileOptions.of(
            sparsity=args.sparsity, prune=criterion, calibration=calibration
        )
        profiler = cProfile.Profile() if args.profile and index == 0 else None
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = run_byoc(model, ids, labels=labels, options=options)
        if profiler is not None:
            profiler.disable()
        wall = time.perf_counter() - start
        original, emulated, change = quality(report)
        assert report.tokens is not None
        print(
            f"{criterion:<16} {original:>9.3f} {emulated:>9.3f} {change:>9} "
            f"{report.tokens.decode['cycles']:>10.0f} {'PASS' if report.passed else 'FAIL':>7} "
            f"{wall:>8.1f}",
            flush=True,
        )
        if profiler is not None:
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text).sort_stats("cumulative")
            stats.print_stats(r"(eiec|emulator|runtime)/.*\.py", 25)
            print(text.getvalue())


def main() -> None:
    """Parse the options, print one table per model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gpt,bert", help="gpt, bert or gpt,bert")
    parser.add_argument("--windows", type=int, default=20, help="test windows per model")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--criteria", default=CRITERIA, help="';'-separated --prune values")
    parser.add_argument("--calibration", type=int, default=32, help="calibration windows")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    for name in args.models.split(","):
        bench_model(name, args)


if __name__ == "__main__":
    main()
