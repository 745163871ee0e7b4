"""Batched LSTM training and ESE's balanced pruning with retraining, on a small LSTM classifier.

    .venv/bin/python benchmarks/bench_lstm_training.py [--epochs 10] [--batches 1,8,32]
        [--sparsity 0.9] [--pes 8] [--bits 4] [--examples]

The data (numpy, seeded; ``tests.training.seq_models.sequence_data``): 500 noisy sequences of
12 steps x 6 features in 4 classes (a sine of a class's frequency on a class's feature), 400
trained on, 100 held out. The model: ``LSTM(6, 24)`` and a ``Linear(24, 4)`` on the last step
(``y[-1]``: a Gather with a scalar index), first trained dense by eiec's own engine (``--epochs``
epochs from its random initialisation, 8 sequences per step). Then, per sequences-per-step
count in ``--batches``: pruned to ``--sparsity`` (both layers) with gradual pruning and
retraining, shared (4-bit) and fine-tuned, ``--epochs`` epochs, the same seed; and once more
at 8 sequences per step with ``--balance`` over ``--pes`` PEs. Sharing uses ``--bits``-bit
codebooks.

Printed per run: the seconds per training epoch (the mean over retraining and fine-tuning
epochs), the held-out accuracy after each stage (dense, pruned, retrained, shared,
fine-tuned), the build time of the training graphs, and for the balanced run each layer's
busiest-PE / mean non-zero weights under plain magnitude pruning and after balanced training.

``--examples`` instead trains each ``examples/lstm/*.onnx`` against its own outputs
(distillation) on 200 seeded uniform [-1, 1] input sequences, at ``--sparsity``, one and 8
sequences per step, and prints the seconds per epoch and the held-out relative RMS output
error after fine-tuning.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.training.seq_models

from eiec.frontend.read import read_onnx
from eiec.training.compress import (
    Trainer,
    TrainOptions,
    train_compress,
    write_back,
)
from eiec.training.data import TrainingData
from tests.training.seq_models import lstm_classifier, sequence_data

SEQ, INPUTS, HIDDEN, CLASSES, SAMPLES = 12, 6, 24, 4, 500
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "lstm"


def examples(args: argparse.Namespace, console: Console) -> None:
    """The ``--examples`` table (see the module docstring)."""
    table = Table(
        title=f"examples/lstm, distillation, {args.epochs} epochs, sparsity {args.sparsity}"
    )
    for header in ("model", "sequences/step", "s/epoch", "output error", "build s"):
        table.add_column(header, justify="left" if header == "model" else "right")
    for path in sorted(EXAMPLES.glob("*.onnx")):
        imported = read_onnx(str(path))
        (spec,) = imported.inputs
        shape = list(spec.shape)
        shape[spec.batch_axis] = 200
        x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
        data = TrainingData(np.ascontiguousarray(np.moveaxis(x, spec.batch_axis, 0)), None)
        for batch in (1, 8):
            options = TrainOptions(epochs=args.epochs, sequence_batch=batch)
            trainer = Trainer(imported.module, data, spec.batch_axis, options)
            targets = dict.fromkeys((layer.name for layer in trainer.layers), args.sparsity)
            _, report = train_compress(
                imported.module, data, spec.batch_axis, targets, 4, options, trainer=trainer
            )
            table.add_row(
                path.name,
                str(report.batch),
                f"{report.seconds_per_epoch():.3f}",
                f"{report.stage('fine-tuned').output_error:.2%}",
                f"{report.build_seconds:.0f}",
            )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--pes", type=int, default=8)
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--examples", action="store_true")
    args = parser.parse_args()
    console = Console(width=120)
    start = time.perf_counter()
    if args.examples:
        examples(args, console)
        console.print(f"wall time {time.perf_counter() - start:.0f} s")
        return

    model = lstm_classifier(
        "gather_last", seq=SEQ, inputs=INPUTS, hidden=HIDDEN, classes=CLASSES, scale=0.3
    )
    x, y = sequence_data(SAMPLES, seq=SEQ, inputs=INPUTS, classes=CLASSES)
    data = TrainingData(np.ascontiguousarray(np.moveaxis(x, 1, 0)), y)
    module = read_onnx(model).module
    # trained from its random initialisation: no dense model to distil from
    dense_trainer = Trainer(module, data, 1, TrainOptions(epochs=args.epochs, distill=0.0))
    dense = write_back(module, dense_trainer.retrain({}, args.epochs, record=False))
    names = [layer.name for layer in dense_trainer.layers]
    targets = dict.fromkeys(names, args.sparsity)

    table = Table(
        title=f"LSTM({INPUTS}, {HIDDEN}) -> Linear({HIDDEN}, {CLASSES}) over {SEQ} steps, "
        f"{SAMPLES} sequences, {args.epochs} epochs, sparsity {args.sparsity}, {args.bits}-bit "
        "weights"
    )
    stages = ("dense", "pruned", "retrained", "shared", "fine-tuned")
    for header in ("run", "s/epoch", *stages, "build s"):
        table.add_column(header, justify="left" if header == "run" else "right")
    balance_rows = []
    runs = [(int(b), False) for b in args.batches.split(",")] + [(8, True)]
    for batch, balance in runs:
        options = TrainOptions(
            epochs=args.epochs, sequence_batch=batch, balance=balance, pes=args.pes
        )
        _, report = train_compress(dense, data, 1, targets, args.bits, options)
        label = f"{batch} sequence{'s' if batch > 1 else ''}/step"
        if balance:
            label += f", --balance ({args.pes} PEs)"
            balance_rows = report.balance
        table.add_row(
            label,
            f"{report.seconds_per_epoch():.3f}",
            *(f"{report.stage(s).accuracy:.1%}" for s in stages),
            f"{report.build_seconds:.0f}",
        )
        assert report.batch == batch, (report.batch, batch)
    console.print(table)
    for item in balance_rows:
        before, after = item.ratios()
        console.print(
            f"{item.layer}: busiest PE / mean non-zeros {item.max_before}/{item.mean_before:.1f} "
            f"= {before:.2f} (magnitude pruning) -> {item.max_after}/{item.mean_after:.1f} = "
            f"{after:.2f} (balanced training)"
        )
    console.print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
