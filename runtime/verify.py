"""Check an EIE program's emulated results against TVM's CPU build of the model it came from.

:func:`verify` emulates every sample of a batch and compares, output by output:

1. shape and dtype, first (a mismatch fails at once, values are not compared);
2. values against the **compressed** model (the pruned, weight-shared float32 model the program
   was compiled from: ``CompileResult.compressed_model``, or the file ``eiec compile
   --export-onnx`` writes): element by element against the error bound that
   :mod:`eiec.emulator.bounds` derives from the program's fixed-point formats. ``tolerance``
   in the report is the largest of these per-element bounds; an element passes when its error is
   within its own bound;
3. values against the **original** model, when given: the largest error (compression changes
   the function, so this is information, not a pass/fail criterion) and, for classifiers, how
   often the top-1 class agrees.

On a mismatch it names the layer where emulator and CPU first diverge: each writeback of the
program is compared with the CPU's value of the ONNX tensor that ``tensor_map`` (ONNX tensor ->
program buffer, from ``CompileResult.tensor_map``) maps to its destination buffer, against that
layer's own bound; the first layer (in program order) over its bound is the one named.

When only a model and a program are given (``eiec verify MODEL.onnx PROG.eie``), the model is
taken to be the compressed model the program was compiled from. The model may end in a CPU tail
(Softmax, ArgMax, ...): the comparison is then made on the tensor the EIE part hands to the tail
(see :mod:`eiec.runtime.split`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from eiec.codegen.assembly import CALIBRATION_HEADROOM
from eiec.emulator.batch import run_lanes, split_batch
from eiec.emulator.bounds import FLOAT32_U, ErrorBounds, LayerBound, Saturation
from eiec.emulator.config import EmulatorConfig
from eiec.emulator.emulator import Emulator, RunResult
from eiec.emulator.ports import CLAMPED_FIX, clamped_inputs
from eiec.emulator.stats import Stats
from eiec.errors import InputError, RuntimeCheckError
from eiec.frontend.layers import find_onnx_layers
from eiec.isa import load
from eiec.isa.program import Port, Program, ReluWriteback, SparseColumnMac, Writeback
from eiec.runtime import reference
from eiec.runtime.split import split_tail

#: The float dtypes a model may compute in, with their unit roundoff.
UNIT_ROUNDOFF = {
    np.dtype(np.float16): 2.0**-11,
    np.dtype(np.float32): FLOAT32_U,
    np.dtype(np.float64): 2.0**-53,
}

#: A tolerance above this fraction of the reference output's range is uninformative: verify
#: fails it (FIXED_POINT.md, "What PASS means").
MAX_RELATIVE_TOLERANCE = 0.02

#: Ops whose presence makes a model a classifier (top-1 agreement is then reported).
CLASSIFIER_OPS = frozenset({"Softmax", "LogSoftmax", "ArgMax"})


@dataclass
class LayerCheck:
    """One writeback of the program compared with the CPU's value of its ONNX tensor."""

    layer: str
    step: int
    buffer: str
    tensor: str
    max_abs_error: float
    tolerance: float
    passed: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


@dataclass
class VerifyReport:
    """The outcome of :func:`verify` (JSON keys: :meth:`to_json`).

    ``scope`` says what the ``*_vs_compressed`` figures compare: ``"model"``, the program's
    outputs with the compressed model's (:func:`verify`); ``"offloaded_calls"``, each call of
    an offloaded EIE program with its compressed function on the CPU, on the same inputs
    (``eiec.runtime.run_byoc``).
    """

    samples: int
    outputs: list[str]
    scope: str = "model"
    #: ``"decoded"``: the source model with the weights decoded from the program;
    #: ``"compressed"``: the given model as it is (an exported compressed model).
    reference: str = "compressed"
    max_abs_error_vs_compressed: float | None = None
    max_rel_error_vs_compressed: float | None = None
    tolerance: float | None = None
    output_range: float | None = None
    relative_tolerance: float | None = None
    worst_error_to_tolerance: float | None = None
    saturated_outputs: int = 0
    failing_samples: int = 0
    first_failing_sample: int | None = None
    max_abs_error_vs_original: float | None = None
    top1_agreement_vs_original: float | None = None
    diverging_layer: str | None = None
    layers: list[LayerCheck] = field(default_factory=list)
    saturations: int = 0
    problems: list[str] = field(default_factory=list)
    arith: str = "fixed16"
    #: Not in the JSON: the emulator's outputs (stacked over the batch), its statistics per
    #: sample, and the inputs as the CPU model was fed (ONNX input name -> array).
    emulator_outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    stats: list[Stats] = field(default_factory=list, repr=False)
    cpu_feeds: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        """True when shapes, dtypes and every element are within tolerance."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (errors as floats, ``None`` where not applicable; a NaN or
        infinite figure as the string ``"nan"``, ``"inf"``: JSON has no such numbers)."""
        return {
            "passed": self.passed,
            "samples": self.samples,
            "outputs": self.outputs,
            "arith": self.arith,
            "verify_scope": self.scope,
            "reference": self.reference,
            "max_abs_error_vs_compressed": _json_number(self.max_abs_error_vs_compressed),
            "max_rel_error_vs_compressed": _json_number(self.max_rel_error_vs_compressed),
            "tolerance": _json_number(self.tolerance),
            "output_range": _json_number(self.output_range),
            "relative_tolerance": _json_number(self.relative_tolerance),
            "worst_error_to_tolerance": _json_number(self.worst_error_to_tolerance),
            "saturated_outputs": self.saturated_outputs,
            "failing_samples": self.failing_samples,
            "first_failing_sample": self.first_failing_sample,
            "max_abs_error_vs_original": self.max_abs_error_vs_original,
            "top1_agreement_vs_original": self.top1_agreement_vs_original,
            "diverging_layer": self.diverging_layer,
            "saturations": self.saturations,
            "layers": [layer.to_json() for layer in self.layers],
            "problems": self.problems,
        }

    def summary(self) -> str:
        """A few lines for the terminal: the verdict, the errors, and what went wrong."""

        def num(value: float | None, spec: str = ".3g") -> str:
            if value is None:
                return "n/a"
            return _percent(value) if spec == "%" else format(value, spec)

        verdict = "PASSED" if self.passed else "FAILED"
        against = {
            "model": "compressed model"
            + (
                " (the source, weights decoded from the program)"
                if self.reference == "decoded"
                else ""
            ),
            "offloaded_calls": "compressed functions (each EIE call, same inputs)",
        }[self.scope]
        lines = [
            f"verify {verdict}: {self.samples} sample(s), outputs {', '.join(self.outputs)} "
            f"({self.arith})",
            f"  vs {against}: max abs error {num(self.max_abs_error_vs_compressed)}, "
            f"max rel error {num(self.max_rel_error_vs_compressed)}, tolerance "
            f"{num(self.tolerance)} = {num(self.relative_tolerance, '%')} of the output range "
            f"{num(self.output_range)} (worst error/bound {num(self.worst_error_to_tolerance)})",
        ]
        if self.max_abs_error_vs_original is not None:
            top1 = self.top1_agreement_vs_original
            lines.append(
                f"  vs original model:   max abs error {num(self.max_abs_error_vs_original)}"
                + ("" if top1 is None else f", top-1 agreement {top1:.2%}")
            )
        if self.saturations:
            lines.append(f"  saturations: {self.saturations}")
        lines.extend(f"  problem: {problem}" for problem in self.problems)
        return "\n".join(lines)


def _json_number(value: float | None) -> float | str | None:
    """A float for JSON: non-finite ones as strings."""
    return value if value is None or np.isfinite(value) else str(value)


# --- binding the program to the model ---------------------------------------------------------


def _bind(ports: list[Port], names: list[str], what: str) -> dict[str, str]:
    """Program port name -> ONNX tensor name: by name, else by position when counts match."""
    if {p.name for p in ports} == set(names):
        return {p.name: p.name for p in ports}
    if len(ports) == len(names):
        return {p.name: name for p, name in zip(ports, names, strict=True)}
    raise RuntimeCheckError(
        f"the program has {len(ports)} {what} port(s) ({', '.join(p.name for p in ports)}), "
        f"the model {len(names)} ({', '.join(names)})",
        fix="verify a program against the model it was compiled from",
    )


@dataclass
class _Emulated:
    """One sample's emulator outputs, its per-output bounds and its layer writebacks."""

    outputs: dict[str, np.ndarray]
    bounds: dict[str, np.ndarray]
    writebacks: list[LayerBound]
    stats: Stats
    saturated: dict[str, np.ndarray]
    first_saturation: Saturation | None
    first_unbounded: Saturation | None = None
    #: Per output, each element's centre (``ErrorBounds.centre``): its error lies within
    #: ``bounds - |centres|`` of it.
    centres: dict[str, np.ndarray] = field(default_factory=dict)


def emulate_with_bounds(
    program: Program,
    sample: Mapping[str, np.ndarray],
    config: EmulatorConfig | None = None,
    *,
    emulator: Emulator | None = None,
) -> _Emulated:
    """Run one sample, tracking the error bound of every buffer word (``eiec.emulator.bounds``);
    ``emulator`` (of ``program``): reuse it and its layer tables across samples."""
    return _emulate(emulator or Emulator(program, config), sample)


def emulate_all_with_bounds(
    emulator: Emulator, samples: Sequence[Mapping[str, np.ndarray]]
) -> list[_Emulated]:
    """:func:`emulate_with_bounds` of each of ``samples`` (inputs of the ports' shapes), run in
    lockstep (``eiec.emulator.batch.run_lanes``: the MACs' arithmetic and timing batched), each
    with its own error-bound probe; the same results, in order."""
    fixed = emulator.config.arith == "fixed16"
    shared: dict = {}  # the layers' stored weights, the same for every lane: built once

    def probes(lanes: int) -> tuple[ErrorBounds]:
        return (ErrorBounds(emulator.program, fixed_point=fixed, lanes=lanes, _weights=shared),)

    runs = run_lanes(emulator, samples, probes)
    return [_collect(probes[0], result) for result, probes in runs]


def _emulate(emulator: Emulator, sample: Mapping[str, np.ndarray]) -> _Emulated:
    bounds = _probe(emulator)
    return _collect(bounds, emulator.run(sample))


def _collect(bounds: ErrorBounds, result: RunResult) -> _Emulated:
    """A run's outputs with their bounds and taints from its probe ``bounds``."""
    port_bounds, port_taints = bounds.ports()
    return _Emulated(
        result.outputs,
        port_bounds,
        bounds.writebacks,
        result.stats,
        port_taints,
        bounds.first_saturation,
        bounds.first_unbounded,
        bounds.port_centres(),
    )


def _probe(emulator: Emulator) -> ErrorBounds:
    """The emulator's error-bound probe (added on first use)."""
    for probe in emulator.probes:
        if isinstance(probe, ErrorBounds):
            return probe
    bounds = ErrorBounds(emulator.program, fixed_point=emulator.config.arith == "fixed16")
    emulator.probes = (*emulator.probes, bounds)
    return bounds


# --- the check --------------------------------------------------------------------------------


def _class_scores(program: Program) -> bool:
    """Whether the program's one output is a vector of class scores: shape (1, C), C > 1."""
    if len(program.outputs) != 1:
        return False
    shape = program.outputs[0].shape
    return len(shape) == 2 and shape[0] == 1 and shape[1] > 1


def report_clamped_inputs(report: VerifyReport, program: Program, runs: Sequence[Stats]) -> None:
    """A problem per input port whose values were clamped to its buffer's range: the emulator
    then computes other inputs than the CPU, so no tolerance makes the comparison meaningful."""
    for sentence in clamped_inputs(program, runs):
        report.problems.append(f"{sentence}: {CLAMPED_FIX}")


def is_classifier(model: onnx.ModelProto) -> bool:
    """Whether the model has a Softmax, LogSoftmax or ArgMax node."""
    return any(node.op_type in CLASSIFIER_OPS for node in model.graph.node)


def verify(
    model: reference.ModelLike,
    program: Program | str | Path,
    inputs: Mapping[str, np.ndarray] | np.ndarray,
    *,
    original: reference.ModelLike | None = None,
    tensor_map: Mapping[str, str] | None = None,
    config: EmulatorConfig | None = None,
    classifier: bool | None = None,
    progress: bool = False,
) -> VerifyReport:
    """Emulate ``program`` on every sample of ``inputs`` and compare it with the CPU.

    ``model`` is the compressed model the program (a Program or an ``.eie`` path) was compiled
    from; ``original`` the model
    before compression (optional). ``inputs``: input name -> array with the batch along each
    port's batch axis (one array for a one-input program). ``tensor_map`` (ONNX tensor ->
    program buffer) enables naming the diverging layer; without it, buffers named like ONNX
    tensors are matched by name. ``classifier``: report top-1 agreement (default: when the
    model has a Softmax/LogSoftmax/ArgMax node). ``progress`` shows a progress bar.
    """
    if not isinstance(program, Program):
        program = load(program)
    where = "the given model" if isinstance(model, onnx.ModelProto) else str(model)
    given = reference.load_model(model)
    compressed, is_source = reference.program_reference(given, program, where)
    head = split_tail(compressed).head
    original_proto = None if original is None else reference.load_model(original)
    if original_proto is None and is_source:
        original_proto = given  # the source model: its own weights are the original
    if classifier is None:
        classifier = (
            is_classifier(compressed)
            or (original_proto is not None and is_classifier(original_proto))
            or (is_source and _class_scores(program))
        )
    in_map = _bind(program.inputs, [vi.name for vi in reference.model_inputs(head)], "input")
    out_map = _bind(program.outputs, [o.name for o in head.graph.output], "output")
    if isinstance(inputs, np.ndarray):
        if len(program.inputs) != 1:
            raise InputError(
                f"the program has {len(program.inputs)} inputs; got one array",
                fix="pass a dict of input name -> array",
            )
        inputs = {program.inputs[0].name: inputs}
    feeds = {name: np.asarray(inputs[name]) for name in in_map if name in inputs}
    missing = [name for name in in_map if name not in inputs]
    if missing:
        raise InputError(
            f"missing input(s) {', '.join(missing)}",
            fix=f"give every program input: {', '.join(in_map)}",
        )
    batch = split_batch(program, feeds)
    count = batch.count

    mapping = dict(tensor_map) if tensor_map is not None else derive_tensor_map(head, program)
    emulator = Emulator(program, config)
    report = VerifyReport(
        samples=count,
        outputs=list(out_map.values()),
        arith=emulator.config.arith,
        reference="decoded" if is_source else "compressed",
    )
    cpu_feeds = {in_map[name]: value for name, value in feeds.items()}
    _check_representable(cpu_feeds, head)
    intermediate_names = sorted(set(mapping) - set(out_map.values()))
    cpu = reference.run_rows(head, cpu_feeds, extra_outputs=intermediate_names)
    orig = None
    if original_proto is not None:
        orig = reference.run_rows(split_tail(original_proto).head, cpu_feeds)

    report.cpu_feeds = cpu_feeds
    indices: Iterable[int] = range(count)
    if progress:
        from eiec.console import track  # lazy: rich

        indices = track(indices, "emulating", total=count)
    dtypes = {np.dtype(cpu[out_map[port.name]].dtype) for port in program.outputs}
    unit = max((UNIT_ROUNDOFF.get(dtype, FLOAT32_U) for dtype in dtypes), default=FLOAT32_U)
    probe = _probe(emulator)
    probe.reference_u = unit  # the CPU model rounds in its own dtype
    # The decoded weights (16-bit codebook words) are exact in float32 and float64.
    probe.exact_weights = is_source and all(
        UNIT_ROUNDOFF.get(dtype, 1.0) <= FLOAT32_U for dtype in dtypes
    )
    runs = []
    for index in indices:
        runs.append(_emulate(emulator, batch.sample(index)))
    report.saturations = sum(run.stats.saturations for run in runs)
    report.stats = [run.stats for run in runs]

    for port in program.outputs:
        tensor = out_map[port.name]
        axis = port.batch_axis or 0
        got = np.concatenate([run.outputs[port.name] for run in runs], axis=axis)
        want = cpu[tensor]
        if want.dtype in UNIT_ROUNDOFF:  # compared in the model's own dtype
            got = got.astype(want.dtype)
        report.emulator_outputs[port.name] = got
        if got.shape != want.shape or want.dtype not in UNIT_ROUNDOFF:
            report.problems.append(
                f"output '{tensor}': emulator gives {got.dtype}{list(got.shape)}, the CPU "
                f"model {want.dtype}{list(want.shape)}"
            )
            continue
        bound = np.concatenate([run.bounds[port.name] for run in runs], axis=axis)
        saturated = np.concatenate([run.saturated[port.name] for run in runs], axis=axis)
        first = next((run.first_saturation for run in runs if run.first_saturation), None)
        unbounded = next((run.first_unbounded for run in runs if run.first_unbounded), None)
        centre = np.concatenate([run.centres[port.name] for run in runs], axis=axis)
        compare_values(report, tensor, got, want, bound, axis, saturated, first, unbounded, centre)
        if orig is not None:
            compare_original(report, got, orig[tensor], classifier)
    report_clamped_inputs(report, program, report.stats)
    if report.problems and report.first_failing_sample is not None:
        _find_divergence(report, runs, cpu, mapping, report.first_failing_sample)
    return report


def _check_representable(feeds: Mapping[str, np.ndarray], model: onnx.ModelProto) -> None:
    """InputError when an input holds a value beyond the float dtype the model takes it in
    (it would become inf there: the CPU reference would not be a number)."""
    for info in reference.model_inputs(model):
        if info.name not in feeds:
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type)
        value = np.asarray(feeds[info.name])
        if dtype.kind != "f" or value.dtype.kind != "f" or not value.size:
            continue
        beyond = np.abs(value.astype(np.float64)) > np.finfo(dtype).max
        if beyond.any():
            index = tuple(int(i) for i in np.argwhere(beyond)[0])
            raise InputError(
                f"input '{info.name}' holds {float(value[index]):.3g} at index {index}, beyond "
                f"the range of {dtype} (+-{float(np.finfo(dtype).max):.3g}) that the model "
                "computes in, so the CPU reference cannot be computed",
                fix="give inputs in the range the model was made for",
            )


def compare_values(
    report: VerifyReport,
    tensor: str,
    got: np.ndarray,
    want: np.ndarray,
    bound: np.ndarray,
    axis: int,
    saturated: np.ndarray | None = None,
    first_saturation: Saturation | None = None,
    first_unbounded: Saturation | None = None,
    centre: np.ndarray | None = None,
) -> None:
    """Fold the errors of ``got`` (EIE) vs ``want`` (CPU, compressed) into ``report``; a
    problem when an element's error is farther than ``bound - |centre|`` from its ``centre``
    (the known signed part of its error, ``ErrorBounds.centre``; 0 when not given: then
    beyond its ``bound``; samples along ``axis``), when an element
    depends on a saturated word (``saturated``; the first clamp: ``first_saturation``), and
    whenever the check itself cannot be trusted (:func:`untrusted`: a non-finite value or
    bound, a zero tolerance, one above ``MAX_RELATIVE_TOLERANCE`` of ``want``'s range; the
    first instruction whose bound overflowed: ``first_unbounded``)."""
    checked = None if saturated is None else ~saturated  # None: every element
    with np.errstate(over="ignore", invalid="ignore"):
        signed = np.subtract(got, want, dtype=np.float64)
        error = np.abs(signed)
        if centre is None:
            off, width = error, np.asarray(bound, np.float64)
        else:
            off = np.subtract(signed, centre)  # from the centre, within bound - |centre|
            np.abs(off, out=off)
            width = np.abs(centre, dtype=np.float64)
            np.subtract(bound, width, out=width)
    finite = np.isfinite(error)
    finite &= np.isfinite(bound)
    every = bool(finite.all())  # (then no element needs masking out)
    finite_want = np.isfinite(want)
    scale = float(np.abs(want if finite_want.all() else want[finite_want]).max(initial=0.0))
    worst = float((error if every else error[finite]).max(initial=0.0))
    report.max_abs_error_vs_compressed = max(report.max_abs_error_vs_compressed or 0.0, worst)
    rel = worst / scale if scale > 0 else (0.0 if worst == 0 else float("inf"))
    report.max_rel_error_vs_compressed = max(report.max_rel_error_vs_compressed or 0.0, rel)
    bounded = finite if checked is None else finite & checked  # a saturated one is not checked
    tiny = np.finfo(np.float64).tiny
    if every and checked is None:
        ratio = off / np.maximum(width, tiny)
    else:
        ratio = off[bounded] / np.maximum(width[bounded], tiny)
    report.worst_error_to_tolerance = max(
        report.worst_error_to_tolerance or 0.0, float(ratio.max(initial=0.0))
    )
    if saturated is not None and saturated.any():
        count = int(saturated.sum())
        report.saturated_outputs += count
        where = "" if first_saturation is None else f" (the first at {first_saturation.where})"
        fix = (
            "compile with a wider accumulator (--acc-bits; the paper's chip: 48)"
            if first_saturation is not None and first_saturation.accumulator
            else "compile with --calibration on representative inputs (its formats hold at "
            f"least {CALIBRATION_HEADROOM:g}x the largest value the samples reach), or with an "
            "--input-range that holds every input"
        )
        index = tuple(int(i) for i in np.argwhere(saturated)[0])
        report.problems.append(
            f"output '{tensor}': {count} of {saturated.size} elements depend on words that "
            f"saturated{where}; the first such element: index {index}, emulator "
            f"{float(got[index]):.6g}, CPU {float(want[index]):.6g}; a clamped value is not a "
            f"rounding error, so they are not checked: {fix}"
        )
    span = output_range(want)
    if got.size if checked is None else checked.any():
        tolerance = float(np.max(bound if checked is None else bound[checked]))  # NaN stays NaN
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = tolerance / span if span > 0 else float("inf")
        report.tolerance = _worse(report.tolerance, tolerance)
        if report.relative_tolerance is None or not relative < report.relative_tolerance:
            report.relative_tolerance, report.output_range = relative, span
    report.problems.extend(untrusted(tensor, got, want, bound, checked, first_unbounded, span))
    over = finite & ~(off <= width)
    if checked is not None:
        over &= checked  # (a saturated element: the problem above)
    if not over.any():
        return
    per_sample = np.moveaxis(over, axis, 0).reshape(over.shape[axis], -1).any(axis=1)
    failing = np.flatnonzero(per_sample)
    report.failing_samples = max(report.failing_samples, int(failing.size))
    first = int(failing[0])
    if report.first_failing_sample is None or first < report.first_failing_sample:
        report.first_failing_sample = first
    where = tuple(int(i) for i in np.argwhere(over)[0])
    beyond = f"error {float(error[where]):.3g} > bound {float(bound[where]):.3g}"
    if centre is not None and centre[where] != 0:
        beyond = (
            f"error {float(signed[where]):.3g} outside {float(centre[where]):.3g} +- "
            f"{float(width[where]):.3g} (its known roundings, +- the bound of the rest)"
        )
    report.problems.append(
        f"output '{tensor}': {int(over.sum())} of {over.size} elements exceed their error "
        f"bound in {failing.size} of {over.shape[axis]} samples; first at index {where}: "
        f"emulator {float(got[where]):.6g}, CPU {float(want[where]):.6g}, {beyond}"
    )


def untrusted(
    tensor: str,
    got: np.ndarray,
    want: np.ndarray,
    bound: np.ndarray,
    checked: np.ndarray | None,
    first_unbounded: Saturation | None = None,
    span: float | None = None,
) -> list[str]:
    """Why comparing ``got`` (EIE) with ``want`` (CPU) within ``bound`` would not check them:
    the one rule that a PASS needs a meaningful check (FIXED_POINT.md, "What PASS means").

    Each reason is a problem (so a FAIL): a NaN or infinite value on either side; a NaN or
    infinite bound of an element that is ``checked`` (not saturated; None: every element;
    ``first_unbounded``: where the bound first overflowed); a tolerance (the largest bound of
    those elements) of 0; a reference output with no range (``span``: its
    :func:`output_range`, when known); a tolerance above ``MAX_RELATIVE_TOLERANCE`` of the range.
    """
    problems = []
    for side, values, why in (
        ("the emulator", got, "the program computed it (float32 arithmetic overflowed)"),
        (
            "the CPU model",
            want,
            "the model overflowed its dtype on these inputs: give inputs in the range the "
            "model was made for",
        ),
    ):
        bad = ~np.isfinite(values if values.dtype.kind == "f" else values.astype(np.float64))
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            problems.append(
                f"output '{tensor}': {side} gives {float(values[index])} at index {index} "
                f"({int(bad.sum())} non-finite values), so it cannot be compared: {why}"
            )
    unbounded = ~np.isfinite(bound)
    if checked is not None:
        unbounded &= checked
    if unbounded.any():
        index = tuple(int(i) for i in np.argwhere(unbounded)[0])
        kind = "NaN" if np.isnan(bound[index]) else "infinite"
        where = "" if first_unbounded is None else f" first at {first_unbounded.where}"
        problems.append(
            f"output '{tensor}': the tolerance of element {index} is {kind} "
            f"({int(unbounded.sum())} of {bound.size} elements): the error bound overflowed"
            f"{where}, so these elements are not checked: compile with --calibration on "
            "representative inputs (formats fitted to their ranges); if it persists, the "
            "bound's rule for that instruction (eiec.emulator.bounds) is too loose for it"
        )
        return problems
    if not (got.size if checked is None else checked.any()) or problems:
        return problems
    tolerance = float((bound if checked is None else bound[checked]).max())
    span = output_range(want) if span is None else span
    if tolerance <= 0:
        problems.append(
            f"output '{tensor}': the tolerance is 0 (every element's error bound vanished), "
            "so a check would only accept an exact match: the bound has lost its terms (an "
            "all-zero run?); verify on inputs that exercise the model"
        )
    elif not span > 0:
        problems.append(
            f"output '{tensor}': the CPU model's output is constant 0 over the batch, so no "
            "tolerance can be judged against its range: verify on inputs that exercise the "
            "model"
        )
    elif tolerance > MAX_RELATIVE_TOLERANCE * span:
        problems.append(
            f"output '{tensor}': the tolerance {tolerance:.3g} is "
            f"{_percent(tolerance / span)} of the output's range {span:.3g}, more than "
            f"{MAX_RELATIVE_TOLERANCE:.0%}, so this check cannot tell a right result from a "
            "wrong one: compile with --calibration on representative inputs (formats fitted "
            "to their ranges), or a smaller --input-range"
        )
    return problems


def _worse(old: float | None, new: float) -> float:
    """The larger of two tolerances, NaN winning (an unknown bound is the worst news)."""
    if old is None or np.isnan(new):
        return new
    return old if np.isnan(old) else max(old, new)


def _percent(fraction: float) -> str:
    """A fraction as a percentage: one decimal, two significant digits when below 0.1% (not
    "0.0%"), or three digits when huge."""
    if 0 < abs(fraction) < 1e-3:
        return f"{fraction * 100:.2g}%"
    return f"{fraction:.1%}" if abs(fraction) < 10 else f"{fraction * 100:.3g}%"


def output_range(values: np.ndarray) -> float:
    """The range the tolerance is judged against: max - min of the reference's finite values
    (over the batch), or their largest magnitude when they are all equal."""
    wide = values[np.isfinite(values)].astype(np.float64)
    if not wide.size:
        return 0.0
    span = float(wide.max() - wide.min())
    return span if span > 0 else float(np.abs(wide).max())


def compare_original(
    report: VerifyReport, got: np.ndarray, want: np.ndarray, classifier: bool
) -> None:
    """Fold the error of ``got`` vs the original model's ``want`` (and, for a classifier, the
    top-1 agreement along the last axis) into ``report``."""
    if got.shape != want.shape:
        report.problems.append(
            f"the original model's output has shape {list(want.shape)}, the program's "
            f"{list(got.shape)}"
        )
        return
    worst = float(np.abs(got.astype(np.float64) - want).max()) if got.size else 0.0
    report.max_abs_error_vs_original = max(report.max_abs_error_vs_original or 0.0, worst)
    if classifier and got.ndim >= 1 and got.shape[-1] > 1:
        agree = float(np.mean(got.argmax(axis=-1) == want.argmax(axis=-1)))
        report.top1_agreement_vs_original = agree


def derive_tensor_map(model: onnx.ModelProto, program: Program) -> dict[str, str]:
    """ONNX tensor -> program buffer, without the compiler's ``tensor_map``.

    The compiler names each program layer after the ONNX layer it lowers
    (``eiec.frontend.layers.find_onnx_layers``); the buffer a layer's last MAC is written back
    into then holds that layer's output tensor. Buffers named exactly like a tensor of the model
    are matched too.
    """

    destination: dict[str, str] = {}
    pending: str | None = None
    for instruction in program.text:
        if isinstance(instruction, SparseColumnMac):
            pending = instruction.layer
        elif isinstance(instruction, Writeback | ReluWriteback) and pending is not None:
            destination[pending] = instruction.dst.buffer
            pending = None
    tensors = {out for node in model.graph.node for out in node.output}
    mapping = {name: name for name in program.buffers if name in tensors}
    for layer in find_onnx_layers(model):
        if layer.name in destination:
            mapping[layer.output] = destination[layer.name]
    return mapping


def _find_divergence(
    report: VerifyReport,
    runs: list[_Emulated],
    cpu: Mapping[str, np.ndarray],
    mapping: Mapping[str, str],
    sample: int,
) -> None:
    """Compare every mapped writeback of ``sample`` with the CPU; name the first over bound."""
    by_buffer: dict[str, str] = {}
    for tensor, buffer in mapping.items():
        by_buffer.setdefault(buffer, tensor)
    # The CPU holds each tensor's final value: compare the last writeback into each buffer.
    last = {record.dst.buffer: record for record in runs[sample].writebacks}
    for record in sorted(last.values(), key=runs[sample].writebacks.index):
        tensor = by_buffer.get(record.dst.buffer)
        if tensor is None or tensor not in cpu:
            continue
        want = np.asarray(cpu[tensor][sample : sample + 1], dtype=np.float64).ravel()
        got = record.values
        if want.size != got.size:
            continue
        error = np.abs(got - want)
        passed = bool((error <= record.bound).all())
        report.layers.append(
            LayerCheck(
                layer=record.layer,
                step=record.step,
                buffer=record.dst.buffer,
                tensor=tensor,
                max_abs_error=float(error.max()),
                tolerance=float(record.bound.max()),
                passed=passed,
            )
        )
        if not passed and report.diverging_layer is None:
            report.diverging_layer = record.layer
            row = int(np.argmax(error - record.bound))
            report.problems.append(
                f"sample {sample}: the emulator first diverges from the CPU in layer "
                f"'{record.layer}' (step {record.step}, buffer '{record.dst.buffer}', ONNX "
                f"tensor '{tensor}'): row {row} is {got[row]:.6g} on EIE, {want[row]:.6g} on "
                f"the CPU, error {error[row]:.3g} > bound {record.bound[row]:.3g}"
            )
    if report.diverging_layer is None:
        report.problems.append(
            f"sample {sample}: no layer output could be matched to an ONNX tensor to locate "
            "the divergence (give tensor_map, from CompileResult.tensor_map)"
            if not report.layers
            else f"sample {sample}: every mapped layer is within its bound; the divergence "
            "is after the last mapped layer"
        )
