"""Speech benchmark: the JapaneseVowels classifiers of ``examples/speech`` compressed for EIE.

    .venv/bin/python benchmarks/bench_speech.py [--models lstm_dynamo,gru_dynamo] [--epochs 60]
        [--densities 0.1,0.3] [--verify 40] [--seeds 3]

For each model (``examples/speech/*.onnx``, trained and exported by ``export_speech.py``: LSTM
or GRU(12, 64) -> Linear(64, 9) on the last of 29 frames), on the paper's 64-PE chip:

- ``dense``: the exported model's test accuracy (TVM's CPU build, all 370 test sequences);
- ``pruned``: compiled at each of ``--densities`` (weight density, default 10%; formats
  calibrated on the training sequences), no retraining;
- ``trained``: the same with ``--train speech_train.npz`` (gradual pruning and centroid
  fine-tuning, ``--epochs``, default 60, validated on the test sequences; with the compiler's
  default knowledge distillation from the dense model, ``--distill 0.5`` for these models);
- ``balance+train``: ``--balance`` with ``--train`` (ESE's load-balance-aware pruning), when
  the compiler accepts the pair (a printed note otherwise).

Columns: compile seconds (training included), seconds per training epoch (and the training
batch: sequences per step), test accuracy of the compressed model on the CPU (``cpu``) and of the
program emulated on one batch of all 370 test sequences (X [29, 370, 12], the batch on the LSTM's
axis 1; ``emulated``), the emulated accuracy minus the dense one, and ``eiec verify`` on a batch of
``--verify`` test sequences: PASS/FAIL, tolerance as % of the output range, worst error / bound
(``NOT CHECKED`` where verify passed with a NaN, infinite or zero tolerance: no check at all).
With ``--seeds N`` the trained configurations are also compiled with seeds 1..N-1 and the
``mean`` column gives the emulated accuracy over the N seeds (and its spread): one test sequence
is 0.27 points, and a training run's accuracy varies with its seed by about a point, as much as
the differences the rows show (the other columns are seed 0's, the compiler's default).
``stages`` splits a trained row's loss between the stages of training: the test accuracy on the
CPU (float) after pruning with retraining, after weight sharing (4-bit codebooks) and after
centroid fine-tuning (= ``cpu``), seed 0's, then with several seeds their means; ``emulated``
minus the last is what the 16-bit fixed point costs.
A model with an op the compiler does not support (GRU, until it does) is skipped with a note;
so is a configuration the compiler refuses or fails on (the reason is printed).
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
from rich.console import Console
from rich.table import Table

from eiec.compiler import CompileOptions, CompileResult, compile_model
from eiec.emulator.batch import run_batch
from eiec.errors import EiecError
from eiec.frontend.ops import CHECKS
from eiec.runtime.reference import run_rows
from eiec.runtime.verify import verify

SPEECH = Path(__file__).resolve().parents[1] / "examples" / "speech"


@dataclass
class Row:
    """One configuration of one model."""

    model: str
    config: str
    density: float = 1.0
    seconds: float | None = None
    epoch: str = ""
    cpu: float | None = None
    emulated: float | None = None
    seeds: list[float] | None = None
    #: Per training seed, the CPU test accuracy after each trained stage (TRAINED_STAGES).
    stages: list[list[float]] = field(default_factory=list)
    verify: str = ""
    note: str = ""


#: The training stages whose test accuracy (CPU, float) the ``stages`` column prints.
TRAINED_STAGES = ("retrained", "shared", "fine-tuned")


def _stages(result: CompileResult) -> list[float]:
    """The test accuracy of ``result``'s training after each of ``TRAINED_STAGES``."""
    return [result.training.stage(name).accuracy for name in TRAINED_STAGES]


def _layout(name: str, x: np.ndarray) -> np.ndarray:
    """X [T, B, F] in the model's input layout ([B, T, F] for a batch_first model)."""
    return np.ascontiguousarray(x.transpose(1, 0, 2)) if "_bf_" in name else x


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.reshape(labels.size, -1).argmax(axis=1) == labels))


def _configs(args: argparse.Namespace, train: dict, test: dict) -> list[tuple[str, dict]]:
    trained = {"train": train, "validation": test, "epochs": args.epochs}
    return [
        ("pruned", {}),
        ("trained", trained),
        ("balance+train", {**trained, "balance": True}),
    ]


def _emulated(result: CompileResult, x: np.ndarray, labels: np.ndarray) -> float:
    """The accuracy of ``result``'s program emulated on one batch of all sequences ``x``."""
    (port,) = result.program.inputs
    emulated = run_batch(result.program, {port.name: x})
    return _accuracy(emulated.outputs[result.program.outputs[0].name], labels)


def bench_model(name: str, args: argparse.Namespace, console: Console) -> list[Row]:
    """The rows of one model (module doc)."""
    path = SPEECH / f"{name}.onnx"
    model = onnx.load(str(path))
    recurrent = {node.op_type for node in model.graph.node} & {"LSTM", "GRU"}
    missing = sorted(recurrent - set(CHECKS))
    if missing:
        note = f"op {', '.join(missing)} is not supported by this compiler yet"
        console.print(f"[yellow]{name}: skipped: {note}[/yellow]")
        return [Row(name, "all", note=note)]
    train = dict(np.load(SPEECH / "speech_train.npz"))
    test = dict(np.load(SPEECH / "speech_test.npz"))
    train_x, test_x = _layout(name, train["x"]), _layout(name, test["x"])
    labels = test["y"]
    dense = _accuracy(run_rows(model, {"x": test_x})["logits"], labels)
    rows = [Row(name, "dense", cpu=dense, emulated=None)]
    axis = 0 if "_bf_" in name else 1
    train_data = {"x": train_x, "y": train["y"]}
    test_data = {"x": test_x, "y": labels}
    for density, (config, extra) in itertools.product(
        args.densities, _configs(args, train_data, test_data)
    ):
        row = Row(name, config, density)
        rows.append(row)
        options = CompileOptions.of(sparsity=1 - density, calibration=train_x, **extra)
        start = time.perf_counter()
        try:
            result = compile_model(model, options)
        except Exception as error:  # reported in the table: another part may not be ready
            text = str(error).strip().splitlines()
            row.note = text[0] if isinstance(error, EiecError) and text else type(error).__name__
            if text and not isinstance(error, EiecError):
                row.note += f": {text[-1]}"
            console.print(f"[yellow]{name} {config} {density:.0%}: skipped: {row.note}[/yellow]")
            continue
        row.seconds = time.perf_counter() - start
        training = result.training
        if training is not None:
            row.epoch = f"{training.seconds_per_epoch():.1f} (batch {training.batch})"
            row.stages.append(_stages(result))
        compressed = result.compressed_model
        row.cpu = _accuracy(run_rows(compressed, {"x": test_x})["logits"], labels)
        (port,) = result.program.inputs
        row.emulated = _emulated(result, test_x, labels)
        if training is not None and args.seeds > 1:
            row.seeds = [row.emulated]
            for seed in range(1, args.seeds):
                again = compile_model(model, replace(options, seed=seed))
                row.seeds.append(_emulated(again, test_x, labels))
                row.stages.append(_stages(again))
        sample = np.take(test_x, np.arange(args.verify), axis=axis)
        report = verify(compressed, result.program, {port.name: sample}, original=model)
        tolerance = report.relative_tolerance
        checked = tolerance is not None and np.isfinite(tolerance) and tolerance > 0
        status = "FAIL" if not report.passed else ("PASS" if checked else "NOT CHECKED")
        row.verify = (
            f"{status} {report.samples}: tolerance "
            f"{report.relative_tolerance:.2%} of range {report.output_range:.3g}, "
            f"error/bound {report.worst_error_to_tolerance:.2f}"
        )
        console.print(f"{name} {config} at {density:.0%}: done in {row.seconds:.0f} s")
    return rows


def _mean(values: list[float], dense: float | None) -> str:
    """The mean of seeds' accuracies, its range and the difference to ``dense``."""
    mean = float(np.mean(values))
    text = f"{mean:.2%} ({min(values):.2%}-{max(values):.2%}, {len(values)} seeds)"
    return text if dense is None else f"{text} {(mean - dense) * 100:+.2f} pt"


def _stage_text(stages: list[list[float]]) -> str:
    """Seed 0's accuracy after each trained stage, then (several seeds) the means."""
    if not stages:
        return ""
    text = " / ".join(f"{a:.2%}" for a in stages[0])
    if len(stages) > 1:
        means = np.mean(np.array(stages), axis=0)
        text += " (mean " + " / ".join(f"{a:.2%}" for a in means) + ")"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lstm_dynamo,lstm_bf_torchscript,gru_dynamo")
    parser.add_argument(
        "--densities",
        type=lambda text: [float(d) for d in text.split(",")],
        default=[0.1],
        help="weight densities, comma-separated (default 0.1)",
    )
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument(
        "--seeds", type=int, default=1, help="training seeds averaged in the mean column (1)"
    )
    parser.add_argument("--verify", type=int, default=40, help="sequences verified (a batch)")
    args = parser.parse_args()
    console = Console(width=160)
    rows = [row for name in args.models.split(",") for row in bench_model(name, args, console)]
    table = Table(title="JapaneseVowels speaker classification (370 test sequences)")
    for column in (
        "model",
        "config",
        "density",
        "compile s",
        "s/epoch",
        "cpu",
        "emulated",
        "vs dense",
        "mean",
        "stages",
        "verify",
    ):
        table.add_column(column)
    dense = {row.model: row.cpu for row in rows if row.config == "dense"}

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.2%}"

    for row in rows:
        delta = ""
        if row.emulated is not None and dense.get(row.model) is not None:
            delta = f"{(row.emulated - dense[row.model]) * 100:+.2f} pt"
        table.add_row(
            row.model,
            row.config,
            f"{row.density:.0%}",
            "" if row.seconds is None else f"{row.seconds:.0f}",
            row.epoch,
            pct(row.cpu),
            pct(row.emulated),
            delta,
            "" if not row.seeds else _mean(row.seeds, dense.get(row.model)),
            _stage_text(row.stages),
            row.verify or (f"skipped: {row.note}" if row.note else ""),
        )
    console.print(table)


if __name__ == "__main__":
    main()
