"""The compiler driver: ONNX (or Relax) -> prune -> share -> lower -> EIE program + report.

Stages, each timed (``CompileResult.timings``, seconds): ``import`` (load, check, fold,
canonicalise, import to Relax), ``prune`` (PruneWeights), ``share`` (ShareWeights),
``lower`` (LowerToEIE), ``export`` (the compressed ONNX model) and ``report``. The same input
and options give the same program, text for text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import tvm

from eiec.errors import CompileError
from eiec.isa.program import Machine, Program
from eiec.passes.assembly import FormatChoice
from eiec.report import CompressionReport

STAGES = ("import", "prune", "share", "lower", "export", "report")


@dataclass
class CompileOptions:
    """How to compile. Memory sizes default to the paper's chip (``Machine()``).

    ``sparsity`` is one target for every layer, or a dict of per-layer targets (keys: layer
    names, ONNX node names or weight initialiser names) with ``default_sparsity`` for the other
    layers, or ``"auto"`` (with ``train``: each layer's from its sensitivity, losing at most
    ``max_accuracy_drop`` points). ``calibration`` holds sample inputs (the model input's shape
    with any batch size) that decide the activation formats; without it, inputs are assumed
    within ``+-input_range``.

    ``train`` (a ``DATA.npz`` path or ``{"x": samples, "y": labels}``, ``y`` optional) turns on
    Deep Compression's training (:mod:`eiec.training`): ``epochs`` of retraining with gradual
    pruning, then centroid fine-tuning, seeded by ``seed``.
    """

    pes: int = 64
    fifo_depth: int = 8
    clock_mhz: float = 800.0
    sparsity: float | dict[str, float] | str = 0.9
    default_sparsity: float = 0.9
    bits: int = 4
    calibration: np.ndarray | None = None
    input_range: float = 8.0
    spmat_sram: int | None = None
    ptr_sram: int | None = None
    act_sram: int | None = None
    ptr_bits: int | None = None
    progress: bool = False
    train: str | Path | Mapping[str, np.ndarray] | None = None
    epochs: int = 10
    seed: int = 0
    max_accuracy_drop: float = 0.5

    def machine(self) -> Machine:
        """The machine these options describe."""
        base = Machine()
        if self.pes < 1:
            raise CompileError(f"--pes {self.pes}: the machine needs at least one PE")
        return Machine(
            pes=self.pes,
            fifo_depth=self.fifo_depth,
            clock_mhz=self.clock_mhz,
            spmat_sram=self.spmat_sram or base.spmat_sram,
            ptr_sram=self.ptr_sram or base.ptr_sram,
            act_sram=self.act_sram or base.act_sram,
            ptr_bits=self.ptr_bits or base.ptr_bits,
            acc_bits=base.acc_bits,
        )

    def sparsity_targets(self) -> tuple[float, dict[str, float]]:
        """(default target, per-layer overrides)."""
        if self.sparsity == "auto":
            raise CompileError(
                "--sparsity auto picks each layer's sparsity by training: it needs training data",
                fix="add --train DATA.npz, or give --sparsity S",
            )
        if isinstance(self.sparsity, dict):
            return self.default_sparsity, dict(self.sparsity)
        return float(self.sparsity), {}


@dataclass
class CompileResult:
    """A compiled model: the program, its report and the compressed model it computes.

    ``tensor_map`` maps the ONNX tensor each layer writes (after bias and ReLU; the layer name
    for ``compile_relax``) to the program buffer holding it. ``formats`` records why each
    buffer and codebook has its fixed-point format.
    """

    program: Program
    report: CompressionReport
    module: tvm.IRModule
    compressed_model: onnx.ModelProto | None
    tensor_map: dict[str, str]
    layer_names: list[str]
    formats: dict[str, FormatChoice] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    training: Any = None


class _Stages:
    """Times the stages and drives an optional rich progress bar."""

    def __init__(self, progress: bool, names: tuple[str, ...]) -> None:
        self.timings: dict[str, float] = {}
        self._bar: Any = None
        self.bar: Any = None  # the rich Progress while running (training adds its epochs)
        self._names = names
        if progress:
            from rich.progress import Progress

            self._bar = Progress(transient=True)

    @contextmanager
    def run(self) -> Iterator[Callable[[str], Any]]:
        if self._bar is None:
            yield self._stage
            return
        with self._bar:
            self._task = self._bar.add_task("compile", total=len(self._names))
            self.bar = self._bar
            yield self._stage

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        if self._bar is not None:
            self._bar.update(self._task, description=f"compile: {name}")
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        if self._bar is not None:
            self._bar.advance(self._task)


def compile_model(
    model: str | Path | onnx.ModelProto, options: CompileOptions | None = None
) -> CompileResult:
    """Compile an ONNX FC model into an EIE program."""
    from eiec.frontend.canonicalize import canonicalize, output_batch_axes
    from eiec.frontend.layers import identifier
    from eiec.frontend.read import read_onnx
    from eiec.passes.export_compressed import ExportCompressed
    from eiec.passes.lower_to_eie import PortSpec
    from eiec.passes.lstm_layers import export_lstm_onnx, find_lstm_layers, lstm_outputs

    options = options or CompileOptions()
    machine = options.machine()
    names = (
        STAGES
        if options.train is None
        else ("import", "train", *STAGES[1:4], "emulate", *STAGES[4:])
    )
    stages = _Stages(options.progress, names)
    training = None
    with stages.run() as stage:
        with stage("import"):
            imported = read_onnx(model)
        inputs = [PortSpec(identifier(i.name, "x"), i.batch_axis) for i in imported.inputs]
        outputs = [
            PortSpec(identifier(name, "y"), axis)
            for name, axis in zip(
                imported.outputs, output_batch_axes(imported.model, imported.inputs), strict=True
            )
        ]
        calibration = _calibration(options.calibration, imported.inputs, inputs)
        aliases = {a: layer.name for layer in imported.layers for a in layer.aliases}
        module = imported.module
        if options.train is not None:
            with stage("train"):
                module, training, trainer, options = _train(
                    module, options, imported.inputs, aliases, stages.bar
                )
        module, share_stats, lower = _compress_and_lower(
            module, options, machine, stage, aliases, inputs, outputs, calibration
        )
        if training is not None:
            from eiec.training.pipeline import emulated_stage

            with stage("emulate"):
                emulated_stage(trainer, lower.program, training)
        with stage("export"):
            base = _export_base(imported, canonicalize)
            exporter = ExportCompressed(base, imported.layers)
            exporter(module)
            compressed = export_lstm_onnx(exporter.compressed, module)
        with stage("report"):
            report = CompressionReport.build(
                lower.assembly.records, machine.ptr_bits, machine.pes, options.bits, share_stats
            )
    written = lower.tensor_map
    tensor_map = {
        layer.output: written[layer.name] for layer in imported.layers if layer.name in written
    }
    lstm_layers = find_lstm_layers(module)
    outputs_of = lstm_outputs(imported.model)
    tensor_map.update(
        {
            outputs_of[layer.call.onnx_node]: written[layer.name]
            for layer in lstm_layers
            if outputs_of.get(layer.call.onnx_node) and layer.name in written
        }
    )
    return CompileResult(
        program=lower.program,
        report=report,
        module=module,
        compressed_model=compressed,
        tensor_map=tensor_map,
        layer_names=[layer.name for layer in imported.layers] + [lstm.name for lstm in lstm_layers],
        formats=dict(lower.assembly.formats),
        timings=stages.timings,
        training=training,
    )


def _train(
    mod: tvm.IRModule,
    options: CompileOptions,
    specs: list[Any],
    aliases: dict[str, str],
    bar: Any,
) -> tuple[tvm.IRModule, Any, Any, CompileOptions]:
    """The training stage (:func:`eiec.training.pipeline.train_stage`) and the options pruning
    then uses: sparsity 0, which keeps the trained zeros and prunes nothing more."""
    from dataclasses import replace

    from eiec.passes.fc_layers import find_fc_layers
    from eiec.passes.lstm_layers import find_lstm_layers, lstm_aliases
    from eiec.passes.prune_weights import resolve_layer_options
    from eiec.training.compress import TrainOptions
    from eiec.training.pipeline import InputInfo, train_stage

    if len(specs) != 1:
        raise CompileError(f"--train needs a single-input model; this one has {len(specs)}")
    if options.epochs < 0:
        raise CompileError(f"--epochs {options.epochs}: give 0 or more epochs")
    lstm = find_lstm_layers(mod)
    names = [layer.name for layer in find_fc_layers(mod["main"])] + [x.name for x in lstm]
    targets = None
    if options.sparsity != "auto":
        default, overrides = options.sparsity_targets()
        every = {**aliases, **lstm_aliases(lstm)}
        resolved = resolve_layer_options(overrides, names, every, "--sparsity")
        targets = {name: resolved.get(name, default) for name in names}
    trained, report, trainer = train_stage(
        mod,
        options.train,
        InputInfo(tuple(specs[0].shape), specs[0].batch_axis),
        targets,
        options.bits,
        TrainOptions(epochs=options.epochs, seed=options.seed),
        options.max_accuracy_drop,
        bar,
    )
    return trained, report, trainer, replace(options, sparsity=0.0, default_sparsity=0.0)


def compile_relax(mod: tvm.IRModule, options: CompileOptions | None = None) -> CompileResult:
    """Compile a Relax module whose ``main`` is a chain of FC layers with constant weights."""
    from eiec.passes.fc_layers import find_fc_layers
    from eiec.passes.lstm_layers import find_lstm_layers

    options = options or CompileOptions()
    machine = options.machine()
    stages = _Stages(options.progress, ("prune", "share", "lower", "report"))
    calibration = None
    if options.calibration is not None:
        params = mod["main"].params
        if len(params) != 1:
            raise CompileError("calibration inputs need a single-input function")
        calibration = {params[0].name: np.asarray(options.calibration)}
    with stages.run() as stage:
        module, share_stats, lower = _compress_and_lower(
            mod, options, machine, stage, {}, None, None, calibration
        )
        with stage("report"):
            report = CompressionReport.build(
                lower.assembly.records, machine.ptr_bits, machine.pes, options.bits, share_stats
            )
    names = [layer.name for layer in find_fc_layers(module["main"])]
    names += [layer.name for layer in find_lstm_layers(module)]
    return CompileResult(
        program=lower.program,
        report=report,
        module=module,
        compressed_model=None,
        tensor_map=dict(lower.tensor_map),
        layer_names=names,
        formats=dict(lower.assembly.formats),
        timings=stages.timings,
    )


def _compress_and_lower(
    mod: tvm.IRModule,
    options: CompileOptions,
    machine: Machine,
    stage: Callable[[str], Any],
    aliases: dict[str, str],
    inputs: list[Any] | None,
    outputs: list[Any] | None,
    calibration: dict[str, np.ndarray] | None,
) -> tuple[tvm.IRModule, Any, Any]:
    from eiec.passes import lower_lstm  # noqa: F401 (registers the LSTM lowerings)
    from eiec.passes.lower_to_eie import LowerToEIE
    from eiec.passes.prune_weights import PruneWeights
    from eiec.passes.share_weights import ShareWeights, check_bits

    check_bits(options.bits)
    default, overrides = options.sparsity_targets()
    with stage("prune"):
        mod = PruneWeights(default, overrides, aliases)(mod)
    with stage("share"):
        share = ShareWeights(options.bits)
        mod = share(mod)
    with stage("lower"):
        lower = LowerToEIE(machine, inputs, outputs, calibration, options.input_range)
        lower(mod)
    return mod, share.stats, lower


def _calibration(
    samples: np.ndarray | None, specs: list[Any], ports: list[Any]
) -> dict[str, np.ndarray] | None:
    """Calibration samples per input port, as (S, elements) arrays."""
    if samples is None:
        return None
    if len(specs) != 1:
        raise CompileError(
            f"calibration inputs need a single-input model; this one has {len(specs)} inputs"
        )
    spec = specs[0]
    array = np.asarray(samples, dtype=np.float64)
    size = int(np.prod(spec.shape, dtype=np.int64))
    if spec.batch_axis is not None and array.ndim == len(spec.shape):
        array = np.moveaxis(array, spec.batch_axis, 0)
    if (
        array.size == 0
        or array.size % size != 0
        or (array.ndim > 1 and int(np.prod(array.shape[1:], dtype=np.int64)) != size)
    ):
        raise CompileError(
            f"calibration data of shape {list(np.shape(samples))} does not match input "
            f"'{spec.name}' of shape {list(spec.shape)} (batch axis {spec.batch_axis})",
            fix="give samples stacked along the input's batch axis",
        )
    if not np.all(np.isfinite(array)):
        raise CompileError("calibration data contains NaN or infinity")
    return {ports[0].name: array.reshape(-1, size)}


def _export_base(imported: Any, canonicalize: Callable[[onnx.ModelProto], onnx.ModelProto]) -> Any:
    """The graph to export: the loaded model, canonicalised (keeps its batch dimension), when it
    holds every layer's initialisers; else the folded batch-1 graph the compiler imported."""
    base = canonicalize(imported.original)
    names = {init.name for init in base.graph.initializer}
    needed = {layer.weight for layer in imported.layers} | {
        layer.bias for layer in imported.layers if layer.bias
    }
    return base if needed <= names else imported.model
