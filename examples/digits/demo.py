"""The eiec demo: a digits classifier compressed for EIE, emulated, and checked against TVM.

First from a dense model: the script trains the MLP dense with scikit-learn (the same as
``train_digits_mlp.py``'s starting point) and compiles it at 90% sparsity twice, without and
with ``--train`` (eiec retrains with gradual pruning and fine-tunes the shared centroids on
TVM's ``tvm.relax.training``), showing what training saves. Then in detail:

Compiles ``digits_mlp.onnx`` (64-128-64-10, ReLU, trained by ``train_digits_mlp.py``) at 90%
sparsity with 4-bit weight sharing for the paper's 64-PE machine, emulates the whole held-out
set in 16-bit fixed point, verifies every result against TVM's CPU build of the compressed
model, and prints accuracy before (TVM CPU, original model) and after compression (emulator),
the compression ratio, cycles and microseconds per inference, ALU utilisation and energy.

That model was trained with gradual magnitude pruning to 90% by ``train_digits_mlp.py`` (in
numpy, so that the bundled file does not depend on eiec; ``eiec compile --train`` does the same
retraining on TVM, as the first part shows), so "before compression" is that float32 model and
the loss shown is that of 4-bit weight sharing and 16-bit fixed point. A second table compiles the
same model for 1 to 64 PEs: on layers this small, per-PE column pointers dominate the storage
once every PE holds only a few rows.

Usage: ``python examples/digits/demo.py [--limit N] [--pes N] [--sparsity S] [--bits B]
[--sweep-images N] [--epochs N]``
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="emulate only the first N test images")
    parser.add_argument("--pes", type=int, default=64, help="processing elements (64)")
    parser.add_argument("--sparsity", type=float, default=0.9, help="weight sparsity (0.9)")
    parser.add_argument("--bits", type=int, default=4, help="weight index bits (4)")
    parser.add_argument(
        "--sweep-images",
        type=int,
        default=100,
        help="images emulated per PE count in the scaling table (100; 0 skips it)",
    )
    parser.add_argument(
        "--epochs", type=int, default=30, help="retraining epochs of the dense model (30; 0 skips)"
    )
    args = parser.parse_args(argv)

    import eiec

    x = np.load(HERE / "test_x.npy")
    y = np.load(HERE / "test_y.npy")
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    options = eiec.CompileOptions.of(
        pes=args.pes,
        sparsity=args.sparsity,
        bits=args.bits,
        calibration=np.load(HERE / "calib_x.npy"),
    )
    print(f"EIE demo: digits MLP 64-128-64-10, {len(y)} held-out images, {args.pes} PEs\n")
    if args.epochs > 0 and from_dense(eiec, options, x, y, args.epochs) != 0:
        return 1
    start = time.perf_counter()
    report = eiec.run(HERE / "digits_mlp.onnx", x, labels=y, options=options, progress=True)
    elapsed = time.perf_counter() - start

    total = report.compiled.report.total
    per = report.per_inference()
    accuracy = report.accuracy
    assert accuracy is not None
    verdict = report.verify
    print("\n  the model trained with pruning by train_digits_mlp.py (digits_mlp.onnx), in detail")
    print(
        f"  accuracy  before compression (TVM CPU, original model): {accuracy.original:.2%}"
        "  (float32, trained with pruning)\n"
        f"            after compression (EIE emulator, fixed16):    {accuracy.emulator:.2%}\n"
        f"            compressed model on the TVM CPU:             {accuracy.compressed:.2%}"
    )
    print(
        f"  weights   {total.nonzero_weights} of {total.weights} kept "
        f"({total.weight_density:.1%}), {args.bits}-bit indices into "
        f"{1 << args.bits}-entry codebooks"
    )
    print(
        f"  storage   {total.stored_bytes} B (entries {total.entry_bytes} B, pointers "
        f"{total.pointer_bytes} B, codebooks {total.codebook_bytes} B) vs {total.dense_bytes} B "
        f"dense fp32: {total.compression_ratio:.1f}x; with Huffman coding "
        f"{total.huffman_compression_ratio:.1f}x"
    )
    print(
        f"  per inference  {per['cycles']:.1f} cycles = {per['time_us']:.3f} us at "
        f"{options.machine.clock_mhz:.0f} MHz, ALU utilisation {report.stats.alu_utilization:.1%}, "
        f"load efficiency {report.stats.load_efficiency:.1%}, "
        f"energy {per['energy_pj'] / 1e3:.2f} nJ"
    )
    print(
        f"  verify    {'PASSED' if verdict.passed else 'FAILED'}: max abs error vs the "
        f"compressed CPU model {verdict.max_abs_error_vs_compressed:.3g} within tolerance "
        f"{verdict.tolerance:.3g}; top-1 agreement with the original "
        f"{verdict.top1_agreement_vs_original:.2%}"
    )
    print(f"  (compile + emulate + verify took {elapsed:.1f} s)")
    if not verdict.passed:
        print(verdict.summary(), file=sys.stderr)
        return 1
    if args.sweep_images > 0:
        return pe_scaling(eiec, options, x[: args.sweep_images], y[: args.sweep_images])
    return 0


def from_dense(eiec: Any, options: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> int:
    """Train the MLP dense, compile it without and with ``--train``; print both accuracies."""
    sys.path.insert(0, str(HERE))
    import train_digits_mlp as script

    dense = script.train_dense()
    model = script.gemm_model(
        [w.astype(np.float32) for w in dense.weights], [b.astype(np.float32) for b in dense.biases]
    )
    plain = eiec.run(model, x, labels=y, options=replace(options, progress=False))
    start = time.perf_counter()
    trained_options = replace(
        options, train={"x": dense.train_x, "y": dense.train_y}, epochs=epochs, progress=True
    )
    trained = eiec.run(model, x, labels=y, options=trained_options, progress=True)
    seconds = time.perf_counter() - start
    assert plain.accuracy is not None and trained.accuracy is not None
    training = trained.compiled.training
    print(
        f"  from a dense model (scikit-learn, trained just now): "
        f"{trained.accuracy.original:.2%} on the TVM CPU\n"
        f"            at {options.sparsity:.0%} sparsity without training (EIE emulator): "
        f"{plain.accuracy.emulator:.2%}\n"
        f"            at {options.sparsity:.0%} sparsity with --train (EIE emulator):     "
        f"{trained.accuracy.emulator:.2%}  ({epochs} epochs retraining with gradual pruning, "
        f"{max(1, epochs // 2)} of centroid fine-tuning, {training.seconds_per_epoch():.2f} s "
        f"per epoch; {seconds:.0f} s in all)"
    )
    for run in (plain, trained):
        if not run.verify.passed:
            print(run.verify.summary(), file=sys.stderr)
            return 1
    return 0


def pe_scaling(eiec: Any, options: Any, x: np.ndarray, y: np.ndarray) -> int:
    """Compile and emulate the model for 1..64 PEs; print storage, cycles and utilisation."""
    print(f"\n  scaling with the PE count ({len(y)} images each)")
    print("     PEs  stored B  ratio  cycles/inf   us/inf  ALU util  load eff  nJ/inf  verify")
    for pes in (1, 4, 16, 64):
        sweep = replace(options, machine=replace(options.machine, pes=pes), progress=False)
        report = eiec.run(HERE / "digits_mlp.onnx", x, labels=y, options=sweep)
        total = report.compiled.report.total
        per = report.per_inference()
        print(
            f"  {pes:6d}  {total.stored_bytes:8d}  {total.compression_ratio:4.1f}x  "
            f"{per['cycles']:10.1f}  {per['time_us']:7.3f}  "
            f"{report.stats.alu_utilization:8.1%}  {report.stats.load_efficiency:8.1%}  "
            f"{per['energy_pj'] / 1e3:6.2f}  {'ok' if report.verify.passed else 'FAILED'}"
        )
        if not report.verify.passed:
            print(report.verify.summary(), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
