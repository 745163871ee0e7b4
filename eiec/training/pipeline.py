"""The training stage of ``eiec compile --train``: resolve the options, train, measure.

:func:`train_stage` runs before ``PruneWeights``: it reads ``DATA.npz`` (or arrays given from
Python), resolves ``--sparsity`` per layer (``auto``: :mod:`eiec.training.sensitivity`), and
returns the module with trained constants, which pruning and sharing then keep exactly.
:func:`emulated_stage` adds the last column of the report: the held-out samples run on the
compiled program in the emulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tvm

from eiec.emulator import Emulator
from eiec.errors import CompileError
from eiec.isa.program import Machine
from eiec.training import sensitivity
from eiec.training.backbone import read_layers
from eiec.training.compress import (
    STAGES,
    EpochResult,
    StageResult,
    Trainer,
    TrainingReport,
    TrainOptions,
    train_compress,
)
from eiec.training.data import (
    TrainingData,
    check_same_kind,
    check_training_arrays,
    load_training_data,
)

#: Everything a training run needs besides the module (CompileOptions' training fields).
TrainSource = str | Path | Mapping[str, np.ndarray]


@dataclass(frozen=True)
class InputInfo:
    """The model input training feeds: shape at batch 1 and batch axis."""

    shape: tuple[int, ...]
    batch_axis: int | None


def load_data(
    source: TrainSource, spec: InputInfo, classes: int | None, what: str = "train data"
) -> TrainingData:
    """``source``: a ``DATA.npz`` path or a mapping with ``x`` (and ``y``); ``what`` names a
    mapping in errors."""
    sample = tuple(d for i, d in enumerate(spec.shape) if i != spec.batch_axis)
    if isinstance(source, Mapping):
        return check_training_arrays(source, sample, spec.batch_axis, classes, what)
    return load_training_data(source, sample, spec.batch_axis, classes)


def _name(source: TrainSource) -> str:
    return "the train arrays" if isinstance(source, Mapping) else str(source)


def _classes(mod: tvm.IRModule) -> int | None:
    """The class count of a single (1, C) output, else None."""
    ty = mod["main"].ret_ty
    shape = getattr(ty, "shape", None)
    if shape is None or not hasattr(shape, "values"):
        return None
    dims = [int(d) for d in shape.values]
    return dims[1] if len(dims) == 2 and dims[0] == 1 else None


def train_stage(
    mod: tvm.IRModule,
    source: TrainSource,
    spec: InputInfo,
    targets: dict[str, float] | None,
    bits: int,
    options: TrainOptions,
    max_accuracy_drop: float,
    progress: Any = None,
    machine: Machine | None = None,
    validation: TrainSource | None = None,
) -> tuple[tvm.IRModule, TrainingReport, Trainer]:
    """Train ``mod`` (``targets``: sparsity per layer name, None for ``--sparsity auto``, whose
    choices are limited to those that fit ``machine``), measured on ``validation`` (default: a
    held-out part of ``source``)."""

    if targets is None:
        sensitivity.check_fits(read_layers(mod), machine)  # before reading data or training
    classes = _classes(mod)
    data = load_data(source, spec, classes)
    held_out = None
    if validation is not None:
        held_out = load_data(validation, spec, classes, "validation data")
        check_same_kind(data, held_out, _name(source), _name(validation))
    callback = _progress_callback(progress) if progress is not None else None
    trainer = Trainer(mod, data, spec.batch_axis, options, progress=callback, validation=held_out)
    table = None
    if targets is None:
        table = sensitivity.analyse(trainer, max_accuracy_drop, machine=machine)
        targets = table.sparsity()
    trained, report = train_compress(
        mod, data, spec.batch_axis, targets, bits, options, trainer=trainer
    )
    report.sensitivity = table
    return trained, report, trainer


def emulated_stage(trainer: Trainer, program: Any, report: TrainingReport) -> StageResult:
    """The held-out samples run on ``program`` in the emulator (16-bit fixed point); appended
    to ``report.stages``."""

    if len(program.inputs) != 1:
        raise CompileError("training needs a single-input model")
    port = program.inputs[0]
    emulator = Emulator(program)
    rows = []
    for sample in trainer.held_out.x:
        value = sample if trainer.batch_axis is None else np.expand_dims(sample, trainer.batch_axis)
        outputs = emulator.run({port.name: value}).outputs
        rows.append(np.concatenate([np.ravel(outputs[p.name]) for p in program.outputs]))
    result = trainer.score("emulated", np.stack(rows))
    report.stages.append(result)
    return result


def _progress_callback(bar: Any) -> Any:
    """Epoch progress on a rich ``Progress``: one task per stage, loss and held-out figure."""
    tasks: dict[str, Any] = {}

    def update(stage: str, epoch: int, epochs: int, result: EpochResult | None) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=epochs)
        if result is None:
            return
        held = result.held_out
        figure = (
            f"accuracy {held.accuracy:.2%}"
            if held.accuracy is not None
            else f"output error {held.output_error:.2%}"
        )
        bar.update(
            tasks[stage],
            completed=epoch,
            description=f"{stage} {epoch}/{epochs}: loss {result.train_loss:.4f}, {figure}",
        )

    return update


def stage_table(report: TrainingReport) -> object:
    """A ``rich.table.Table`` with one column per stage (held-out figures)."""
    from rich.table import Table  # lazy: rich

    labels = report.objective == "cross_entropy"
    distilled = f", distilled from the dense model ({report.distill:g})" if report.distill else ""
    table = Table(
        title=f"Training ({report.engine}, {report.samples} samples, "
        f"{report.held_out_samples} held out, batch {report.batch}, "
        f"{report.seconds_per_epoch():.2f} s/epoch{distilled})"
    )
    table.add_column("held out")
    stages = [*STAGES, "emulated"]
    measured = {s.stage: s for s in report.stages}
    for stage in stages:
        if stage in measured:
            table.add_column(stage, justify="right")
    row_names = ("accuracy", "loss") if labels else ("output error", "loss (MSE)")
    for name in row_names:
        cells = []
        for stage in stages:
            result = measured.get(stage)
            if result is None:
                continue
            if name == "accuracy":
                cells.append(f"{result.accuracy:.2%}")
            elif name == "output error":
                cells.append(f"{result.output_error:.2%}")
            else:
                cells.append(f"{result.loss:.4g}")
        table.add_row(name, *cells)
    if report.balance:
        pes = report.balance[0].pes
        parts = []
        for item in report.balance:
            before, after = item.ratios()
            parts.append(
                f"{item.layer} {item.max_before}/{item.mean_before:.1f} = {before:.2f} -> "
                f"{item.max_after}/{item.mean_after:.1f} = {after:.2f}"
            )
        table.caption = (
            f"Non-zero weights of the busiest PE / the mean over {pes} PEs, magnitude pruning "
            f"-> balanced training: " + "; ".join(parts)
        )
    return table
