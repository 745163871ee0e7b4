"""One call from an ONNX model to compressed, emulated, verified results: ``eiec run``.

:func:`run` picks one of two paths from the front end's support check
(:func:`eiec.runtime.split.eie_split`):

- **EIE** (the model is FC/LSTM/GRU layers, possibly followed by a classifier tail: Softmax,
  ArgMax, skl2onnx's ArrayFeatureExtractor...): compile the EIE part in memory, emulate every
  sample, verify the emulator against TVM's CPU build of the compressed model (and the
  original) within the program's fixed-point bounds, naming the diverging layer on a mismatch.
  The tail is cut off (:mod:`eiec.runtime.split`) and runs on the CPU through TVM on the
  emulator's output. Report: :class:`RunReport`.
- **BYOC** (ops EIE does not run before or between its layers: convolutions in front of the
  classifier, element-wise ops between FC layers): ``eiec.byoc.run_onnx`` offloads the FC/LSTM/GRU
  layers and TVM runs the rest; each offloaded call is checked against its compressed function.
  Report: :class:`eiec.runtime.run_byoc.ByocReport`.

The tail split stays beside BYOC because it checks more: the whole compressed model, per layer,
with one compression report; BYOC can only bound each offloaded function on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eiec.compiler import CompileOptions, CompileResult, compile_model
from eiec.emulator import BatchStats, EmulatorConfig, Stats
from eiec.errors import InputError
from eiec.frontend.canonicalize import batch_of_one
from eiec.frontend.load import weights_from_inputs
from eiec.runtime import reference
from eiec.runtime.accuracy import Accuracy, Inputs, check_labels, predictions
from eiec.runtime.emulate import emulate
from eiec.runtime.engines import Engine
from eiec.runtime.run_byoc import CALIBRATION_TEXT, ByocReport, calibrate, run_byoc
from eiec.runtime.split import TailSplit, eie_split
from eiec.runtime.verify import VerifyReport, verify
from eiec.training.pipeline import stage_table

#: ``emulate`` lives in :mod:`eiec.runtime.emulate` (no TVM); it is also reachable from here.
__all__ = ["RunReport", "emulate", "run"]


@dataclass
class RunReport:
    """What :func:`run` found. ``outputs``: the model's outputs computed by EIE (+ CPU tail)."""

    compiled: CompileResult
    verify: VerifyReport
    stats: BatchStats
    runs: list[Stats]
    outputs: dict[str, np.ndarray]
    tail_ops: tuple[str, ...] = ()
    accuracy: Accuracy | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: What set the activation formats: ``"given"``, ``"inputs"``, ``"input-range"``.
    calibration: str = "input-range"

    @property
    def passed(self) -> bool:
        """Whether the emulator matched the compressed CPU model within tolerance."""
        return self.verify.passed

    def per_inference(self) -> dict[str, float]:
        """Means over the batch: cycles, microseconds and energy (pJ) per inference."""
        count = max(self.stats.samples, 1)
        return {
            "cycles": self.stats.cycles / count,
            "time_us": self.stats.time_us / count,
            "energy_pj": self.stats.energy_pj / count,
        }

    def to_json(self) -> dict[str, Any]:
        """The verify keys (aggregated over the batch), ``path: "eie"``, ``compile`` (the
        compression report), ``emulator`` (batch totals and means, ``per_inference`` means, and
        ``first_run``: the full statistics of the first sample, per layer and per PE),
        ``cpu_tail``, ``accuracy``, ``calibration`` (``eiec.runtime.run_byoc.calibrate``).
        """
        data = self.verify.to_json()
        data["path"] = "eie"
        data["calibration"] = self.calibration
        data["compile"] = self.compiled.report.to_json()
        if self.compiled.training is not None:
            data["compile"]["training"] = self.compiled.training.to_json()
        data["emulator"] = {
            **self.stats.to_json(),
            "per_inference": self.per_inference(),
            "first_run": self.runs[0].to_json() if self.runs else None,
        }
        data["cpu_tail"] = list(self.tail_ops)
        data["accuracy"] = None if self.accuracy is None else self.accuracy.to_json()
        return data

    def tables(self) -> list[Any]:
        """The compression report (a rich table), after the training stages with --train."""
        training = self.compiled.training
        if training is None:
            return [self.compiled.report.table()]
        tables = [stage_table(training), self.compiled.report.table()]
        if training.sensitivity is not None:
            tables.insert(0, training.sensitivity.table())
        return tables

    def summary(self) -> str:
        """The compression, cycle and accuracy report as a few lines of text."""
        total = self.compiled.report.to_json()["total"]
        per = self.per_inference()
        lines = [
            f"compression: {total['stored_bytes']} bytes stored vs {total['dense_bytes']} dense "
            f"fp32 ({total['compression_ratio']:.1f}x; Huffman-coded "
            f"{total['huffman_compression_ratio']:.1f}x), weight density "
            f"{total['weight_density']:.1%}",
            f"emulator: {self.stats.samples} inference(s), {per['cycles']:.0f} cycles = "
            f"{per['time_us']:.3f} us per inference, ALU utilisation "
            f"{self.stats.alu_utilization:.1%}, load efficiency {self.stats.load_efficiency:.1%}, "
            f"{per['energy_pj'] / 1e3:.3f} nJ per inference, {self.stats.power_mw:.1f} mW, "
            f"{self.stats.gops:.2f} GOP/s, {self.stats.gops_per_w:.1f} GOP/s/W, chip "
            f"{self.stats.chip_area_mm2:.2f} mm^2",
        ]
        if self.tail_ops:
            lines.append(f"CPU tail (TVM): {', '.join(self.tail_ops)}")
        if self.accuracy is not None:
            acc = self.accuracy
            lines.append(
                f"accuracy: original {acc.original:.2%}, compressed (CPU) {acc.compressed:.2%}, "
                f"EIE emulator {acc.emulator:.2%}"
            )
        lines.append(CALIBRATION_TEXT[self.calibration])
        lines.append(self.verify.summary())
        return "\n".join(lines)


def _with_tail(split: TailSplit, head_outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs from the head's (by ONNX name): through the CPU tail if any."""
    if split.tail is None:
        return head_outputs
    return reference.run_rows(split.tail, head_outputs)


def run(
    model: reference.ModelLike,
    inputs: Inputs,
    *,
    labels: np.ndarray | None = None,
    options: CompileOptions | None = None,
    config: EmulatorConfig | None = None,
    progress: bool = False,
    calibrate_on_inputs: bool = True,
    engine: Engine = "local",
    workers: int = 1,
    address: str | None = None,
) -> RunReport | ByocReport:
    """Compile ``model`` for EIE, emulate every sample of ``inputs``, verify, and report.

    ``inputs``: one array (batch along the first axis) or input name -> array. ``labels``
    (one class per sample) add accuracy before and after compression. Models with ops EIE does
    not run before or between its layers take the BYOC path (module doc) and return a
    ``ByocReport``; ``config`` then must keep the emulator's defaults. Without calibration
    samples in ``options`` and with ``calibrate_on_inputs``, the formats are calibrated on
    ``inputs`` (``eiec.runtime.run_byoc.calibrate``; the report's ``calibration`` says which).
    ``workers`` > 1 spreads the samples of a BYOC run over ``engine`` (``run_byoc``: the same
    report as one process); the EIE path runs in this process only (InputError otherwise).
    """
    original = reference.load_model(model)
    if not isinstance(inputs, np.ndarray):
        original, inputs = weights_from_inputs(original, inputs)
    original = batch_of_one(original, reference.model_where(model))
    split = eie_split(original)
    if split is None:
        return run_byoc(
            original,
            inputs,
            labels=labels,
            options=options,
            config=config,
            calibrate_on_inputs=calibrate_on_inputs,
            engine=engine,
            workers=workers,
            address=address,
        )
    if workers > 1 or engine != "local":
        raise InputError(
            "spreading the samples over workers applies to models run through BYOC; this "
            "model runs on EIE whole (or with a CPU tail), in this process",
            where="eiec run --workers/--engine",
            fix="leave out --workers and --engine",
        )
    options, source = calibrate(options or CompileOptions(), original, inputs, calibrate_on_inputs)
    compiled = compile_model(split.head, options)
    program = compiled.program
    assert compiled.compressed_model is not None, "an ONNX model compiles to an ONNX model"
    report = verify(
        compiled.compressed_model,
        program,
        inputs,
        original=split.head,
        tensor_map=compiled.tensor_map,
        config=config,
        classifier=labels is not None or bool(split.tail_ops) or None,
        progress=progress,
    )
    head_outputs = {
        tensor: report.emulator_outputs[port.name]
        for port, tensor in zip(program.outputs, report.outputs, strict=True)
    }
    outputs = _with_tail(split, head_outputs)
    accuracy = None
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != report.samples:
            raise InputError(
                f"{labels.shape[0]} labels for {report.samples} samples",
                where="labels",
                fix="give one label per sample",
            )
        check_labels(labels, outputs, "labels")
        feeds = report.cpu_feeds
        compressed_head = reference.run_rows(compiled.compressed_model, feeds)
        compressed_out = _with_tail(split, {name: compressed_head[name] for name in head_outputs})
        original_out = reference.run_rows(original, feeds)
        accuracy = Accuracy(
            original=float(np.mean(predictions(original_out) == labels)),
            compressed=float(np.mean(predictions(compressed_out) == labels)),
            emulator=float(np.mean(predictions(outputs) == labels)),
        )
    return RunReport(
        compiled=compiled,
        verify=report,
        stats=BatchStats.of(report.stats),
        runs=report.stats,
        outputs=outputs,
        tail_ops=split.tail_ops,
        accuracy=accuracy,
        calibration=source,
    )
