"""The compiler driver: ONNX (or Relax) -> prune -> share -> code generation -> EIE program.

The Relax-to-Relax stages are module passes run as one ``tvm.transform.Sequential``
(:func:`compression_passes`); code generation (:class:`eiec.codegen.generate.LowerToEIE`) is a
function of the compressed module; the emitted program is checked by ``eiec.isa.verify``.

Stages, each timed (``CompileResult.timings``, seconds): ``import`` (load, check, fold,
canonicalise, import to Relax), with ``--train`` ``train`` (:mod:`eiec.training`), ``prune``
(PruneWeights), ``share`` (ShareWeights), ``lower`` (code generation and the program's
verification), with ``--train`` ``emulate`` (the emulated held-out accuracy), ``export`` (the
compressed ONNX model) and ``report``; the passes' times come from TVM's
``PassTimingInstrument``. The same input and
options give the same program, text for text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import tvm
from tvm.ir.instrument import PassTimingInstrument, pass_instrument

from eiec.codegen.assembly import CALIBRATION_HEADROOM, FormatChoice
from eiec.codegen.decode import check_decodes_to
from eiec.codegen.generate import Generated, LowerToEIE, PortSpec
from eiec.codegen.streaming import WeightsMode
from eiec.compression import CompressionReport
from eiec.errors import CompileError
from eiec.frontend.canonicalize import canonicalize, output_batch_axes
from eiec.frontend.fingerprint import (
    ORIGIN_KEY,
    model_fingerprint,
    options_text,
    weights_fingerprint,
)
from eiec.frontend.fold import fold_constants
from eiec.frontend.layers import check_unambiguous, layer_aliases
from eiec.frontend.load import LoadedModel
from eiec.frontend.read import ImportedModel, read_onnx
from eiec.isa import verify as verify_program
from eiec.isa.fixed import MAX_MAGNITUDE, frac_for_range, lost_to_rounding
from eiec.isa.machines import check as check_machine
from eiec.isa.machines import machine_from
from eiec.isa.program import Machine, Origin, Program
from eiec.passes.export_compressed import export_compressed, recurrent_outputs
from eiec.passes.pass_decorator import run_pass
from eiec.passes.prune_weights import PruneWeights, resolve_layer_options
from eiec.passes.share_weights import ShareWeights, check_bits
from eiec.relax_layers.fc import find_fc_layers
from eiec.relax_layers.lstm import find_recurrent_layers, recurrent_aliases
from eiec.relax_layers.names import identifier
from eiec.training.compress import TrainOptions
from eiec.training.pipeline import InputInfo, emulated_stage, train_stage

#: Recurrent ONNX ops whose inputs 1..3 (W, R, B) hold a layer's weights.
RECURRENT_OPS = ("LSTM", "GRU")

STAGES = ("import", "train", "prune", "share", "lower", "emulate", "export", "report")

#: The stage name of each compression pass in ``CompileResult.timings``.
PASS_STAGES = {"PruneWeights": "prune", "ShareWeights": "share"}


@dataclass
class CompileOptions:
    """How to compile, and for which ``machine`` (default: the paper's chip, ``Machine()``).

    ``sparsity`` is one target for every layer, or a dict of per-layer targets (keys: layer
    names, ONNX node names or weight initialiser names) with ``default_sparsity`` for the other
    layers, or ``"auto"`` (with ``train``: each layer's from its sensitivity, losing at most
    ``max_accuracy_drop`` points). ``calibration`` holds sample inputs (the model input's shape
    with any batch size) that decide the activation formats; without it, inputs are assumed
    within ``+-input_range``.

    ``train`` (a ``DATA.npz`` path or ``{"x": samples, "y": labels}``, ``y`` optional) turns on
    Deep Compression's training (:mod:`eiec.training`): ``epochs`` of retraining with gradual
    pruning, then centroid fine-tuning, seeded by ``seed``, measured on ``validation`` (same
    form as ``train``; default: 20% of ``train`` held out, which then is not trained on; give
    one when ``train`` is what the model was trained on, or its held-out figures, and ``auto``'s
    choices, are those of seen data). ``balance``: load-balance-aware
    pruning (ESE): every PE's rows of a layer pruned to the layer's target on their own (with
    ``train``: at every step of the gradual pruning schedule).
    ``weights``: ``auto`` holds the layers in the PEs' SRAMs when they fit and streams those
    that do not from DRAM (``CompileResult.streamed`` names them), ``sram`` refuses a layer
    that does not fit (CapacityError), ``dram`` streams every layer
    (:mod:`eiec.codegen.streaming`).
    """

    machine: Machine = field(default_factory=Machine)
    sparsity: float | dict[str, float] | str = 0.9
    default_sparsity: float = 0.9
    bits: int = 4
    calibration: np.ndarray | None = None
    input_range: float = 8.0
    balance: bool = False
    #: The pruning criterion (``eiec.passes.prune_weights``): magnitude, wanda, N:M, wanda,N:M.
    prune: str = "magnitude"
    #: With ``prune`` ``...,refit``: the original model's values of the ``calibration`` samples
    #: (the refit's target; BYOC's sequential calibration gives the pruned model's as
    #: ``calibration``). Default: ``calibration`` itself.
    calibration_reference: np.ndarray | None = None
    progress: bool = False
    train: str | Path | Mapping[str, np.ndarray] | None = None
    validation: str | Path | Mapping[str, np.ndarray] | None = None
    epochs: int = 10
    seed: int = 0
    #: Knowledge distillation from the dense model with labels (``TrainOptions.distill``; None:
    #: on for a model with recurrent layers, off for the others).
    distill: float | None = None
    max_accuracy_drop: float = 0.5
    weights: WeightsMode = "auto"

    @classmethod
    def of(cls, **values: Any) -> CompileOptions:
        """Options from keyword arguments naming fields of ``CompileOptions`` or of ``Machine``
        (``CompileOptions.of(pes=16, ptr_bits=32, sparsity=0.8)``); the machine's go into
        ``machine`` (over a ``machine=`` base), checked field by field (MachineError)."""
        base = values.pop("machine", None) or Machine()
        fields = {name: values.pop(name) for name in list(values) if name in Machine.FIELDS}
        return cls(machine=machine_from(fields, base, where="CompileOptions"), **values)

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
    #: Layers whose weights are streamed from DRAM (``CompileOptions.weights``).
    streamed: list[str] = field(default_factory=list)


@pass_instrument
class _Snapshots:
    """Keeps the module entering and leaving each named pass (for the passes' statistics)."""

    def __init__(self) -> None:
        self.before: dict[str, tvm.IRModule] = {}
        self.after: dict[str, tvm.IRModule] = {}

    def run_before_pass(self, mod: tvm.IRModule, info: tvm.transform.PassInfo) -> None:
        self.before[info.name] = mod

    def run_after_pass(self, mod: tvm.IRModule, info: tvm.transform.PassInfo) -> None:
        self.after[info.name] = mod


def pass_timings(rendered: str) -> dict[str, float]:
    """Seconds per pass from ``PassTimingInstrument.render()`` (the Sequential's children)."""
    found = {}
    for name, micros in re.findall(r"^\t(\w+): (\d+)us", rendered, flags=re.MULTILINE):
        stage = PASS_STAGES.get(name, name)
        found[stage] = found.get(stage, 0.0) + int(micros) * 1e-6
    return found


class _Progress:
    """Times the stages that are not passes and drives an optional rich progress bar."""

    def __init__(self, enabled: bool, names: Sequence[str]) -> None:
        self.timings: dict[str, float] = {}
        self._bar: Any = None
        self._task: Any = None
        #: The rich Progress (None without a bar); training adds its epochs to it.
        self.bar: Any = None
        if enabled:
            from eiec.console import progress_bar  # lazy: rich, only with a progress bar

            self._bar = self.bar = progress_bar()
            self._task = self._bar.add_task("compile", total=len(names))

    @contextmanager
    def shown(self) -> Iterator[None]:
        """The bar is on screen within the block."""
        if self._bar is None:
            yield
            return
        with self._bar:
            yield

    @contextmanager
    def stage(self, name: str, timed: bool = True) -> Iterator[None]:
        """Show the block as stage ``name``; time it unless ``timed`` is False (the passes,
        which TVM times)."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"compile: {name}")
        start = time.perf_counter()
        yield
        if timed:
            self.timings[name] = time.perf_counter() - start
        if self._bar is not None:
            self._bar.advance(self._task)


def compression_passes(options: CompileOptions, aliases: dict[str, str]) -> tvm.transform.Pass:
    """Deep Compression's stages as one ``Sequential`` of module passes (run it with
    :func:`eiec.passes.pass_decorator.run_pass`, which raises what a pass raised)."""
    return tvm.transform.Sequential(
        [prune_pass(options, aliases), ShareWeights(options.bits)], name="compress"
    )


def prune_pass(options: CompileOptions, aliases: dict[str, str]) -> PruneWeights:
    """The ``PruneWeights`` of ``options``."""
    default, overrides = options.sparsity_targets()
    return PruneWeights(
        default,
        overrides,
        aliases,
        options.balance,
        options.machine.pes,
        criterion=options.prune,
        calibration=options.calibration,
        reference=options.calibration_reference,
        bits=options.bits,
    )


def compile_model(
    model: str | Path | onnx.ModelProto | LoadedModel, options: CompileOptions | None = None
) -> CompileResult:
    """Compile an ONNX FC/LSTM/GRU model into an EIE program (a ``LoadedModel``, already checked
    by ``eiec.frontend.load``, is not read again)."""
    options = options or CompileOptions()
    options_given = options
    machine = options.machine
    check_machine(machine, "CompileOptions.machine")
    _check_validation(options)
    trained = options.train is not None
    names = ("import", "train") if trained else ("import",)
    names += ("compress", "lower", "emulate") if trained else ("compress", "lower")
    progress = _Progress(options.progress, (*names, "export", "report"))
    training = None
    with progress.shown():
        with progress.stage("import"):
            imported = read_onnx(model)
        inputs = [PortSpec(identifier(i.name, "x"), i.batch_axis) for i in imported.inputs]
        outputs = [
            PortSpec(identifier(name, "y"), axis)
            for name, axis in zip(
                imported.outputs, output_batch_axes(imported.model, imported.inputs), strict=True
            )
        ]
        calibration = _calibration(options.calibration, imported.inputs, inputs)
        if isinstance(options.sparsity, dict):
            check_unambiguous(options.sparsity, imported.layers, "--sparsity")
        aliases = layer_aliases(imported.layers)
        module = imported.module
        if trained:
            with progress.stage("train"):
                module, training, trainer, options = _train(
                    module, options, imported.inputs, aliases, progress.bar
                )
        module, generated, report = _compress_and_generate(
            module, options, machine, progress, aliases, inputs, outputs, calibration
        )
        if training is not None:
            with progress.stage("emulate"):
                emulated_stage(trainer, generated.program, training)
        with progress.stage("export"):
            compressed = export_model(imported, module)
        generated.program.origin = Origin(
            model_fingerprint(imported.original),
            _options_text(options_given),
            weights_fingerprint(imported.original),
            weights_fingerprint(compressed),
        )
    written = generated.tensor_map
    tensor_map = {
        layer.output: written[layer.name] for layer in imported.layers if layer.name in written
    }
    lstm_layers = find_recurrent_layers(module)
    outputs_of = recurrent_outputs(imported.model)
    tensor_map.update(
        {
            outputs_of[layer.call.onnx_node]: written[layer.name]
            for layer in lstm_layers
            if outputs_of.get(layer.call.onnx_node) and layer.name in written
        }
    )
    return CompileResult(
        program=generated.program,
        report=report,
        module=module,
        compressed_model=compressed,
        tensor_map=tensor_map,
        layer_names=[layer.name for layer in imported.layers] + [lstm.name for lstm in lstm_layers],
        formats=generated.formats,
        timings=_ordered(progress.timings),
        training=training,
        streamed=generated.streamed,
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
    if len(specs) != 1:
        names = ", ".join(f"'{spec.name}'" for spec in specs)
        raise CompileError(
            f"training takes a model of one input; this one has {len(specs)} ({names})",
            where="--train",
            fix="compile without --train (prune and share only), or train the layers through "
            "eiec.byoc.partition_for_eie(mod, train=...), which trains each single-input "
            "offloaded function",
        )
    if options.epochs < 0:
        raise CompileError(f"--epochs {options.epochs}: give 0 or more epochs")
    if options.distill is not None and not 0.0 <= options.distill <= 1.0:
        raise CompileError(f"--distill {options.distill}: give a weight from 0 to 1")
    lstm = find_recurrent_layers(mod)
    names = [layer.name for layer in find_fc_layers(mod["main"])] + [x.name for x in lstm]
    targets = None
    if options.sparsity != "auto":
        default, overrides = options.sparsity_targets()
        every = {**aliases, **recurrent_aliases(lstm)}
        resolved = resolve_layer_options(overrides, names, every, "--sparsity")
        targets = {name: resolved.get(name, default) for name in names}
    trained, report, trainer = train_stage(
        mod,
        options.train,
        InputInfo(tuple(specs[0].shape), specs[0].batch_axis),
        targets,
        options.bits,
        TrainOptions(
            epochs=options.epochs,
            seed=options.seed,
            distill=options.distill,
            balance=options.balance,
            pes=options.machine.pes,
        ),
        options.max_accuracy_drop,
        bar,
        options.machine,
        validation=options.validation,
    )
    return trained, report, trainer, replace(options, sparsity=0.0, default_sparsity=0.0)


def compile_relax(mod: tvm.IRModule, options: CompileOptions | None = None) -> CompileResult:
    """Compile a Relax module whose ``main`` is a chain of FC layers with constant weights."""
    options = options or CompileOptions()
    machine = options.machine
    check_machine(machine, "CompileOptions.machine")
    _check_validation(options)
    trained = options.train is not None
    names = ("train", "compress", "lower", "emulate") if trained else ("compress", "lower")
    progress = _Progress(options.progress, (*names, "report"))
    calibration = None
    if options.calibration is not None:
        params = mod["main"].params
        if len(params) != 1:
            raise CompileError(
                f"calibration samples are given per input, and this function has "
                f"{len(params)} inputs",
                where="CompileOptions.calibration",
                fix="drop calibration and give input_range=R (inputs assumed within +-R)",
            )
        calibration = {params[0].name: np.asarray(options.calibration)}
    training = None
    with progress.shown():
        if trained:
            with progress.stage("train"):
                param = mod["main"].params
                if len(param) != 1:
                    raise CompileError(
                        f"training needs a function of one input; this one has {len(param)}",
                        where="CompileOptions.train",
                        fix="drop train (prune and share only)",
                    )
                spec = _RelaxInput(tuple(int(d) for d in param[0].ty.shape.values), 0)
                mod, training, trainer, options = _train(mod, options, [spec], {}, progress.bar)
        module, generated, report = _compress_and_generate(
            mod, options, machine, progress, {}, None, None, calibration
        )
        if training is not None:
            with progress.stage("emulate"):
                emulated_stage(trainer, generated.program, training)
    names = [layer.name for layer in find_fc_layers(module["main"])]
    names += [layer.name for layer in find_recurrent_layers(module)]
    return CompileResult(
        program=generated.program,
        report=report,
        module=module,
        compressed_model=None,
        tensor_map=dict(generated.tensor_map),
        layer_names=names,
        formats=generated.formats,
        timings=_ordered(progress.timings),
        training=training,
        streamed=generated.streamed,
    )


@dataclass(frozen=True)
class _RelaxInput:
    """A Relax function's input as the training stage reads it (batch along axis 0)."""

    shape: tuple[int, ...]
    batch_axis: int


def _ordered(timings: dict[str, float]) -> dict[str, float]:
    """The timings in pipeline order (known stages first, then any other pass)."""
    known = [name for name in STAGES if name in timings]
    return {name: timings[name] for name in known + [n for n in timings if n not in STAGES]}


def _compress_and_generate(
    mod: tvm.IRModule,
    options: CompileOptions,
    machine: Machine,
    progress: _Progress,
    aliases: dict[str, str],
    inputs: list[PortSpec] | None,
    outputs: list[PortSpec] | None,
    calibration: dict[str, np.ndarray] | None,
) -> tuple[tvm.IRModule, Generated, CompressionReport]:
    """The compressed module, its program (verified) and the compression report."""
    check_bits(options.bits)
    passes = compression_passes(options, aliases)
    timing, snapshots = PassTimingInstrument(), _Snapshots()
    with (
        progress.stage("compress", timed=False),
        tvm.transform.PassContext(opt_level=0, instruments=[timing, snapshots]),
    ):
        mod = run_pass(passes, mod)
        progress.timings.update(pass_timings(timing.render()))
        start = time.perf_counter()  # the statistics of weight sharing count as its stage
        share = ShareWeights(options.bits).stats(
            snapshots.before["ShareWeights"], snapshots.after["ShareWeights"]
        )
        prune = prune_pass(options, aliases).stats(
            snapshots.before["PruneWeights"], snapshots.after["PruneWeights"]
        )
        progress.timings["share"] += time.perf_counter() - start
    del snapshots  # the modules between the passes: their weights are no longer needed
    with progress.stage("lower"):
        generated = LowerToEIE(
            machine, inputs, outputs, calibration, options.input_range, options.weights
        )(mod)
        verify_program(generated.program)
        check_decodes_to(generated.program, mod)
    with progress.stage("report"):
        report = CompressionReport.build(
            generated.records, machine.ptr_bits, machine.pes, options.bits, share, prune
        )
    return mod, generated, report


def _calibration(
    samples: np.ndarray | None, specs: list[Any], ports: list[Any]
) -> dict[str, np.ndarray] | None:
    """Calibration samples per input port, as (S, elements) arrays."""
    if samples is None:
        return None
    if len(specs) != 1:
        names = ", ".join(f"'{spec.name}'" for spec in specs)
        raise CompileError(
            f"the samples are of one input; this model has {len(specs)} ({names})",
            where="--calibration",
            fix="drop --calibration and give --input-range R (every input assumed within +-R)",
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
    check_calibration_range(array)
    return {ports[0].name: array.reshape(-1, size)}


def check_calibration_range(
    array: np.ndarray, what: str = "the calibration samples", where: str | None = None
) -> None:
    """CompileError for calibration samples (``what``) whose range no input format can follow:
    all zero, beyond 16-bit fixed point, or so wide that most of them would round to 0 (the
    rule ``ShareWeights`` applies to weights, ``fit_word_format``)."""
    array = np.asarray(array, dtype=np.float64)
    largest = float(np.abs(array).max(initial=0.0))
    fix = "give representative inputs of the model, or --input-range R instead"
    if largest == 0.0:
        raise CompileError(
            f"{what} are all zero: they cannot set the formats of the activations",
            where=where,
            fix=fix,
        )
    if largest * CALIBRATION_HEADROOM > MAX_MAGNITUDE:
        raise CompileError(
            f"{what} reach {largest:.4g}, beyond what 16-bit fixed point holds (at most "
            f"{MAX_MAGNITUDE / CALIBRATION_HEADROOM:.4g} with the formats' headroom)",
            where=where,
            fix="scale the inputs down (e.g. images to [0, 1]), or remove the outliers",
        )
    frac = frac_for_range(largest, headroom=CALIBRATION_HEADROOM)
    lost = int(lost_to_rounding(array, frac).sum())
    count = int(np.count_nonzero(array))
    if lost * 2 > count:
        raise CompileError(
            f"{lost} of {count} non-zero values of {what} round to 0 in 16-bit fixed point: "
            f"the largest ({largest:.4g}) sets the input's step to {2.0**-frac:.3g}",
            where=where,
            fix="the samples span too wide a range for one 16-bit format: remove the outliers, "
            "or normalise the inputs",
        )


def export_model(imported: ImportedModel, module: tvm.IRModule) -> onnx.ModelProto:
    """The ONNX model of ``imported`` with ``module``'s layer weights, its metadata naming the
    source model's fingerprint (``eiec.frontend.fingerprint.ORIGIN_KEY``)."""
    compressed = export_compressed(_export_base(imported), imported.layers, module)
    kept = [entry for entry in compressed.metadata_props if entry.key != ORIGIN_KEY]
    del compressed.metadata_props[:]
    compressed.metadata_props.extend(kept)  # a compressed model compiled again: its new origin
    entry = compressed.metadata_props.add()
    entry.key, entry.value = ORIGIN_KEY, model_fingerprint(imported.original)
    return compressed


def _check_validation(options: CompileOptions) -> None:
    """``validation`` measures training, so it needs ``train``. (``balance`` with ``train``:
    the training stage's gradual pruning balances, PruneWeights then keeps its zeros.)"""
    if options.validation is not None and options.train is None:
        raise CompileError(
            "--validation measures training: it needs training data",
            fix="add --train DATA.npz, or drop --validation",
        )


def _options_text(options: CompileOptions) -> str:
    """The options the program header records (``progress`` is not one): the PE count, FIFO
    depth and clock, the compile options, and after ``input_range`` the machine's other fields
    where they differ from the paper's chip (``balance`` only when on, ``prune`` only when not
    magnitude, ``validation`` only when given, ``weights`` only when not ``auto``)."""
    machine, chip = options.machine, Machine()
    values: dict[str, Any] = {name: getattr(machine, name) for name in Machine.FIELDS[:3]}
    for item in fields(options):
        value = getattr(options, item.name)
        if item.name in ("progress", "machine") or (item.name == "balance" and not value):
            continue
        if item.name == "weights" and value == "auto":  # the default since streaming came
            continue
        if item.name == "prune" and value == "magnitude":
            continue
        if item.name == "validation" and value is None:
            continue
        values[item.name] = value
        if item.name == "input_range":
            for name in Machine.FIELDS[3:]:
                if getattr(machine, name) != getattr(chip, name):
                    values[name] = getattr(machine, name)
    return options_text(values)


def _export_base(imported: ImportedModel) -> onnx.ModelProto:
    """The graph to export: the loaded model canonicalised (it keeps its batch dimension) when
    it holds every layer's initialisers; else the same with its constant subgraphs folded (an
    exporter's Slice/Concat/Unsqueeze building an LSTM's W, R, B become initialisers); else
    the folded batch-1 graph the compiler imported."""
    base = canonicalize(imported.original)
    if _holds_weights(base, imported):
        return base
    base = canonicalize(fold_constants(imported.original), copy=False)
    return base if _holds_weights(base, imported) else imported.model


def _holds_weights(base: onnx.ModelProto, imported: ImportedModel) -> bool:
    """Whether every layer's weight and bias, and the W, R, B of every recurrent node of the
    imported model (found by name), are initialisers of ``base``."""
    names = {init.name for init in base.graph.initializer}
    needed = {layer.weight for layer in imported.layers} | {
        layer.bias for layer in imported.layers if layer.bias
    }
    recurrent = {node.name: node for node in base.graph.node if node.op_type in RECURRENT_OPS}
    for node in imported.model.graph.node:
        if node.op_type in RECURRENT_OPS:
            if node.name not in recurrent:
                return False
            needed |= {name for name in recurrent[node.name].input[1:4] if name}
    return needed <= names
