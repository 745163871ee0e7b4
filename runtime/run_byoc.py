"""``eiec run`` for models with ops EIE does not run before or between its layers: the BYOC path.

A model that is not an EIE head with a CPU tail (``eiec.runtime.split.eie_split`` returns None:
convolutions in front of an FC classifier, element-wise ops between FC layers...) runs through
``eiec.byoc.run_onnx``: its FC/LSTM/GRU layers are offloaded to EIE (one program per chain of
layers), every other op runs in TVM on the CPU, and each sample runs under a profiler recording
the cycles, time and energy of every offloaded call, per function and per EIE layer.

What is checked, and against what:

- **each offloaded call vs its compressed function** (``verify_scope: "offloaded_calls"``): the
  compiler's compressed Relax module of the function (pruned, weight-shared, float32), built for
  the CPU, runs on the inputs the call received; the program, re-emulated on them while tracking
  error bounds (``eiec.runtime.verify.emulate_with_bounds``), must be within its fixed-point
  bound element by element. ``max_abs_error_vs_compressed`` and ``tolerance`` are over every
  call's outputs. This checks every EIE program, not the model's outputs: the host ops after an
  offloaded function have no error bound.
- **the model's outputs vs the CPU-only run of the original model** (TVM, no EIE):
  ``max_abs_error_vs_original`` and, for classifiers, top-1 agreement; with labels, accuracy of
  both (a compressed model on the CPU is not built on this path: ``accuracy.compressed`` is None).
"""

from __future__ import annotations

import gc
import itertools
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import onnx
import tvm
from tvm.ir import IRModule

from eiec.byoc import run_onnx
from eiec.byoc.codegen import rows_module
from eiec.byoc.cpu import cpu_vm
from eiec.byoc.offload import Offload, registered
from eiec.byoc.profile import CallRecord, CheckedRun, Profiler, profile
from eiec.compiler import CompileOptions, CompileResult, check_calibration_range
from eiec.emulator import Emulator, EmulatorConfig
from eiec.emulator.bounds import Saturation
from eiec.emulator.ports import CLAMPED_FIX, clamped_sentences, input_clamps
from eiec.errors import BackendError, InputError, UnsupportedModelError
from eiec.frontend.support import quantized_hint
from eiec.runtime import reference
from eiec.runtime.accuracy import Accuracy, Inputs, check_labels, predictions
from eiec.runtime.engines import ENGINES, Engine, open_engine
from eiec.runtime.tokens import (
    SequenceQuality,
    TokenReport,
    collapse_warning,
    sequence_output,
    sequence_quality,
    token_report,
)
from eiec.runtime.verify import (
    VerifyReport,
    compare_original,
    compare_values,
    emulate_all_with_bounds,
    is_classifier,
)


@dataclass
class ByocReport:
    """What :func:`run_byoc` found. ``outputs``: the model's outputs (EIE + CPU), by name;
    ``offloads``: the offloaded functions by symbol, in first-call order."""

    verify: VerifyReport
    profile: Profiler
    offloads: dict[str, Offload]
    outputs: dict[str, np.ndarray]
    accuracy: Accuracy | None = None
    calibration: str = "input-range"
    tokens: TokenReport | None = None
    sequence: SequenceQuality | None = None

    @property
    def warning(self) -> str | None:
        """A line saying the model's quality collapsed against the original's, or None."""
        accuracy = self.accuracy
        return collapse_warning(
            self.sequence,
            None if accuracy is None else (accuracy.original, accuracy.emulator),
            self.verify.top1_agreement_vs_original,
        )

    @property
    def passed(self) -> bool:
        """Whether every offloaded call matched its compressed function within tolerance."""
        return self.verify.passed

    def per_inference(self) -> dict[str, float]:
        """Means over the samples of the offloaded calls' cycles, microseconds, energy (pJ)."""
        total = self.profile.total()
        count = max(self.verify.samples, 1)
        return {key: total[key] / count for key in ("cycles", "time_us", "energy_pj")}

    def to_json(self) -> dict[str, Any]:
        """The verify keys, ``path: "byoc"``, ``compile`` (each offloaded function's compression
        report, by symbol), ``emulator`` (the profile per function and per layer, its total and
        ``per_inference`` means), ``accuracy`` and ``calibration`` (:func:`calibrate`)."""
        data = self.verify.to_json()
        data["path"] = "byoc"
        data["calibration"] = self.calibration
        data["compile"] = {
            symbol: None if offload.compiled is None else offload.compiled.report.to_json()
            for symbol, offload in self.offloads.items()
        }
        profile = self.profile.to_json()
        data["emulator"] = {
            "functions": profile["functions"],
            "layers": profile["layers"],
            "total": profile["total"],
            "per_inference": self.per_inference(),
        }
        data["accuracy"] = None if self.accuracy is None else self.accuracy.to_json()
        data["tokens"] = None if self.tokens is None else self.tokens.to_json()
        data["sequence"] = None if self.sequence is None else self.sequence.to_json()
        data["warning"] = self.warning
        return data

    def tables(self) -> list[Any]:
        """The compression report (a rich table) of each offloaded function."""
        return [
            offload.compiled.report.table()
            for offload in self.offloads.values()
            if offload.compiled is not None
        ]

    def summary(self) -> str:
        """The offload profile, cycle, accuracy and verification report as text."""
        per = self.per_inference()
        lines = [
            f"BYOC: {len(self.offloads)} function(s) offloaded to EIE, every other op on the "
            "CPU (TVM)",
            self.profile.report(),
            f"EIE: {per['cycles']:.0f} cycles = {per['time_us']:.3f} us, "
            f"{per['energy_pj'] / 1e3:.3f} nJ per inference "
            f"({per['energy_pj'] / per['time_us'] / 1e3 if per['time_us'] else 0.0:.1f} mW; "
            "offloaded calls only)",
        ]
        for symbol, offload in self.offloads.items():
            if offload.compiled is not None:
                total = offload.compiled.report.to_json()["total"]
                lines.append(
                    f"compression of {symbol}: {total['stored_bytes']} bytes stored vs "
                    f"{total['dense_bytes']} dense fp32 ({total['compression_ratio']:.1f}x), "
                    f"weight density {total['weight_density']:.1%}"
                )
        if self.tokens is not None:
            lines.append(self.tokens.summary())
        if self.sequence is not None:
            lines.append(self.sequence.summary())
        elif self.accuracy is not None:
            acc = self.accuracy
            lines.append(
                f"accuracy: original (CPU) {acc.original:.2%}, EIE + CPU {acc.emulator:.2%}"
            )
        lines.append(CALIBRATION_TEXT[self.calibration])
        lines.append(self.verify.summary())
        return "\n".join(lines)


#: What set the activation formats of a run (its report's ``calibration``), in words.
CALIBRATION_TEXT = {
    "given": "formats: calibrated on the given calibration samples",
    "inputs": "formats: calibrated on this run's own inputs (no --calibration or --input-range "
    "given)",
    "input-range": "formats: from inputs assumed within +-R (--input-range), not calibrated",
}


def calibrate(
    options: CompileOptions, model: onnx.ModelProto, inputs: Inputs, on_inputs: bool
) -> tuple[CompileOptions, str]:
    """``options`` for a run of ``model`` on ``inputs``, and what sets its formats: ``"given"``
    calibration samples; with ``on_inputs``, none given and a single-input model, the run's own
    ``"inputs"`` (they become the samples); else the ``"input-range"``."""
    if options.calibration is not None:
        return options, "given"
    arrays = [inputs] if isinstance(inputs, np.ndarray) else list(dict(inputs).values())
    if not on_inputs or len(arrays) != 1 or len(reference.model_inputs(model)) != 1:
        return options, "input-range"
    check_calibration_range(arrays[0], "the inputs (which set the formats: no --calibration)")
    return replace(options, calibration=np.asarray(arrays[0])), "inputs"


#: Each compressed function's CPU build by symbol: the compile result it was built from, the
#: virtual machine and the function's name in it (:func:`_cpu_functions`), the most recently
#: used last.
_VMS: OrderedDict[str, tuple[CompileResult, Any, str]] = OrderedDict()
#: Functions kept per process.
VM_CACHE_SIZE = 64


def _cpu_functions(offloads: Sequence[Offload]) -> dict[str, Any]:
    """The compressed function of each offload (compiled in this process) built for the CPU,
    with its matmuls scheduled in their order (``eiec.byoc.cpu``), by symbol; built once per
    process. Those whose programs run row by row take any number of rows at once
    (``eiec.byoc.codegen.rows_module``) and are built together, as the functions of one
    module (one build: their kernels are shared); the others (LSTM, GRU) one module each."""
    missing = []
    for offload in offloads:
        cached = _VMS.get(offload.symbol)
        if cached is not None and cached[0] is offload.compiled:
            _VMS.move_to_end(offload.symbol)
        else:
            missing.append(offload)
    rows = {o.symbol: o for o in missing if o.rows}  # (a symbol once)
    if rows:
        vm = cpu_vm(
            IRModule(
                {
                    symbol: _cpu_module(o)["main"].with_attr("global_symbol", symbol)
                    for symbol, o in rows.items()
                }
            )
        )
        for symbol, offload in rows.items():
            _VMS[symbol] = (offload.compiled, vm, symbol)  # type: ignore[assignment]
    for offload in missing:
        if not offload.rows:
            vm = cpu_vm(_cpu_module(offload))
            _VMS[offload.symbol] = (offload.compiled, vm, "main")  # type: ignore[assignment]
    functions = {}
    for offload in offloads:
        _, vm, name = _VMS[offload.symbol]
        functions[offload.symbol] = vm[name]
    while len(_VMS) > VM_CACHE_SIZE:
        _VMS.popitem(last=False)
    return functions


def _cpu_module(offload: Offload) -> IRModule:
    """The compressed function's module, taking any number of rows when its program runs
    row by row."""
    assert offload.compiled is not None
    module = offload.compiled.module
    return rows_module(module) if offload.rows else module


def _run_rows(
    function: Any, offload: Offload, calls: Sequence[Sequence[np.ndarray]]
) -> list[np.ndarray]:
    """The compressed function (built by :func:`_cpu_functions`) on the rows of every call
    (each one's ``inputs``, split into rows as :meth:`Offload.feeds` splits them) in one run:
    per output, its values, one row per row of the calls in order."""
    params = [p.ty.shape.values for p in offload.compiled.module["main"].params]  # type: ignore[union-attr]
    rows = [
        np.concatenate(
            [
                np.asarray(inputs[index], np.float32).reshape(-1, *map(int, shape[1:]))
                for inputs in calls
            ]
        )
        for index, shape in enumerate(params)
    ]
    result = function(*(tvm.runtime.tensor(np.ascontiguousarray(x)) for x in rows))
    return [v.numpy() for v in (list(result) if len(offload.outputs) > 1 else [result])]


def _run_function(
    function: Any, offload: Offload, feed: Mapping[str, np.ndarray]
) -> list[np.ndarray]:
    result = function(*(tvm.runtime.tensor(feed[name]) for name in offload.inputs))
    values = list(result) if len(offload.outputs) > 1 else [result]
    return [value.numpy() for value in values]


@dataclass
class CallCheck:
    """One offloaded function's calls over some samples, emulated with error bounds and run
    by its compressed function on the CPU: per output, one row per sample of the emulator's
    values, the CPU's, the bounds, the saturation taints and the bounds' centres (``None``
    when the function was loaded from a saved program: nothing to compare with); the
    saturations, the clamped host values per input port, the runs, and where the first
    saturation and unbounded bound were.
    """

    symbol: str
    emulated: dict[str, np.ndarray] | None
    cpu: dict[str, np.ndarray] = field(default_factory=dict)
    bounds: dict[str, np.ndarray] = field(default_factory=dict)
    saturated: dict[str, np.ndarray] = field(default_factory=dict)
    saturations: int = 0
    clamped: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    first_saturation: Saturation | None = None
    first_unbounded: Saturation | None = None
    centres: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def merge(cls, parts: Sequence[CallCheck]) -> CallCheck:
        """The checks of consecutive shards of the samples as one (samples in order)."""
        first = parts[0]
        if first.emulated is None or len(parts) == 1:
            return first

        def stacked(table: str) -> dict[str, np.ndarray]:
            return {
                name: np.concatenate([getattr(part, table)[name] for part in parts])
                for name in getattr(first, table)
            }

        return cls(
            symbol=first.symbol,
            emulated=stacked("emulated"),
            cpu=stacked("cpu"),
            bounds=stacked("bounds"),
            saturated=stacked("saturated"),
            saturations=sum(part.saturations for part in parts),
            clamped=_summed(part.clamped for part in parts),
            runs=sum(part.runs for part in parts),
            first_saturation=next((p.first_saturation for p in parts if p.first_saturation), None),
            first_unbounded=next((p.first_unbounded for p in parts if p.first_unbounded), None),
            centres=stacked("centres"),
        )


def emulate_calls(calls: Sequence[CallRecord], samples: int) -> list[CallCheck]:
    """Each offloaded call's runs with their error bounds (recorded by the runner when the
    profiler kept the inputs, else emulated again here) and its compressed function run on the
    CPU on the same inputs; one :class:`CallCheck` per function, in first-call order (every
    sample runs the same calls, so each function's runs are grouped per sample)."""
    by_symbol: dict[str, list[CallRecord]] = {}
    for call in calls:
        by_symbol.setdefault(call.symbol, []).append(call)
    offloads = {symbol: registered(symbol) for symbol in by_symbol}
    assert all(offloads.values()), "a recorded call comes from a registered offload"
    functions = _cpu_functions([o for o in offloads.values() if o and o.compiled is not None])
    checks = []
    for symbol, records in by_symbol.items():
        offload = offloads[symbol]
        assert offload is not None
        if offload.compiled is None:
            checks.append(CallCheck(symbol, None))
            continue
        function = functions[symbol]
        recorded = all(call.checked is not None for call in records)
        feeds = (
            []  # (not needed: the rows run at once, and the runner checked them)
            if recorded and offload.rows
            else [feed for call in records for feed in offload.feeds(call.inputs or ())]
        )
        if recorded:
            emulated = [run for call in records for run in call.checked or ()]
        else:
            emulated = [
                CheckedRun(
                    outputs=run.outputs,
                    bounds=run.bounds,
                    saturated=run.saturated,
                    saturations=run.stats.saturations,
                    clamped=input_clamps([run.stats]),
                    first_saturation=run.first_saturation,
                    first_unbounded=run.first_unbounded,
                    centres=run.centres,
                )
                for run in emulate_all_with_bounds(Emulator(offload.program), feeds)
            ]
        if offload.rows:
            cpu = _run_rows(function, offload, [call.inputs or () for call in records])
        else:
            runs = [_run_function(function, offload, feed) for feed in feeds]
            cpu = [
                _per_sample([values[index] for values in runs], samples)
                for index in range(len(offload.outputs))
            ]
        rows = {name: cpu[index].reshape(samples, -1) for index, name in enumerate(offload.outputs)}
        checks.append(_gathered(symbol, emulated, rows, offload.outputs, samples))
    return checks


def _gathered(
    symbol: str,
    runs: Sequence[CheckedRun],
    cpu: dict[str, np.ndarray],
    names: Sequence[str],
    samples: int,
) -> CallCheck:
    """The :class:`CallCheck` of one function's emulated ``runs`` (in one pass over them) and
    its ``cpu`` outputs: each output's values, bounds, saturation taints and centres one row
    per sample, the saturations and clamped values added up, the first saturation and
    unbounded bound."""
    tables: dict[str, dict[str, list[np.ndarray]]] = {
        table: {name: [] for name in names}
        for table in ("outputs", "bounds", "saturated", "centres")
    }
    saturations = 0
    clamped = []
    first_saturation = first_unbounded = None
    for run in runs:
        for table, columns in tables.items():
            values = getattr(run, table)
            for name, column in columns.items():
                column.append(values[name])
        saturations += run.saturations
        if run.clamped:
            clamped.append(run.clamped)
        if first_saturation is None and run.first_saturation:
            first_saturation = run.first_saturation
        if first_unbounded is None and run.first_unbounded:
            first_unbounded = run.first_unbounded
    rows = {
        table: {name: _per_sample(column, samples) for name, column in columns.items()}
        for table, columns in tables.items()
    }
    return CallCheck(
        symbol,
        emulated=rows["outputs"],
        cpu=cpu,
        bounds=rows["bounds"],
        saturated=rows["saturated"],
        saturations=saturations,
        clamped=_summed(clamped),
        runs=len(runs),
        first_saturation=first_saturation,
        first_unbounded=first_unbounded,
        centres=rows["centres"],
    )


def _summed(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Per-port counts added up (clamped host values of several runs or shards)."""
    total: Counter[str] = Counter()
    for part in counts:
        total.update(part)
    return dict(total)


def compare_calls(report: VerifyReport, checks: Sequence[CallCheck]) -> dict[str, Offload]:
    """Fold each function's :class:`CallCheck` into ``report``: its outputs within the
    program's error bounds (module doc); a problem names the function, the output and the
    failing samples. Returns the offloads by symbol."""
    offloads = {}
    for check in checks:
        offload = registered(check.symbol)
        assert offload is not None, "a checked call comes from a registered offload"
        offloads[check.symbol] = offload
        if check.emulated is None:
            report.problems.append(
                f"{check.symbol} was loaded from a saved program: without its compressed "
                "function its calls cannot be checked"
            )
            continue
        report.saturations += check.saturations
        for sentence in clamped_sentences(offload.program, check.clamped, check.runs):
            report.problems.append(f"{sentence}: {CLAMPED_FIX}")
        for name in offload.outputs:
            compare_values(
                report,
                f"{check.symbol}/{name}",
                check.emulated[name],
                check.cpu[name],
                check.bounds[name],
                axis=0,
                saturated=check.saturated[name],
                first_saturation=check.first_saturation,
                first_unbounded=check.first_unbounded,
                centre=check.centres[name],
            )
    return offloads


def check_calls(report: VerifyReport, calls: Sequence[CallRecord]) -> dict[str, Offload]:
    """Compare every offloaded call (recorded with its inputs) with its compressed function on
    the CPU, within the program's error bounds (:func:`emulate_calls`, :func:`compare_calls`);
    returns the offloads by symbol."""
    return compare_calls(report, emulate_calls(calls, report.samples))


def _per_sample(values: Sequence[np.ndarray], samples: int) -> np.ndarray:
    """One function's results of every run, flattened, one row per sample (in run order)."""
    return np.concatenate(values, axis=None).reshape(samples, -1)


def _byoc_options(options: CompileOptions) -> dict[str, Any]:
    """``partition_for_eie`` keyword arguments: calibration samples keep a batch axis of 1
    (each sample runs alone)."""
    values = {f.name: getattr(options, f.name) for f in fields(options) if f.name != "progress"}
    if options.calibration is not None:
        values["calibration"] = np.asarray(options.calibration)[:, None]
    return values


@dataclass
class SampleRun:
    """The per-sample part of :func:`run_byoc` over some samples: the model's outputs (EIE +
    CPU) and the original model's (CPU), the profile's call records, and the offloaded calls'
    checks (:func:`emulate_calls`)."""

    outputs: dict[str, np.ndarray]
    original: dict[str, np.ndarray]
    calls: list[CallRecord]
    checks: list[CallCheck]


def run_samples(
    model: onnx.ModelProto | bytes, named: Mapping[str, np.ndarray], options: CompileOptions
) -> SampleRun:
    """Compile ``model`` (a proto or its serialised bytes: a task's argument) with its layers
    offloaded, run every sample of ``named`` (input name -> array, samples first), and emulate
    and run each offloaded call for its check (a pure function of its arguments)."""
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load_from_string(model)
    with rarer_collections():
        with profile(keep_inputs=True) as recorder:
            run = run_onnx(proto, named, **_byoc_options(options))
        if not recorder.calls:
            raise UnsupportedModelError(
                "no layer of the model runs on EIE: BYOC offloaded nothing",
                where=f"graph '{proto.graph.name}'",
                fix=quantized_hint(proto)
                or "EIE runs FC layers (MatMul/Gemm with constant weights), LSTMs and GRUs",
            )
        samples = len(next(iter(named.values())))
        return SampleRun(
            outputs=run.outputs,
            original=reference.run_rows(proto, named),
            calls=list(run.profile.calls),
            checks=emulate_calls(recorder.calls, samples),
        )


#: Allocations between two collections of the youngest generation during :func:`run_samples`
#: (Python's default: 700).
GC_THRESHOLD = 10_000


@contextmanager
def rarer_collections(threshold: int = GC_THRESHOLD) -> Iterator[None]:
    """Python's cyclic garbage collector runs less often inside (its youngest generation every
    ``threshold`` allocations of container objects, not every 700; the older ones as set).

    A run keeps every offloaded row's inputs, outputs and bounds until its check, hundreds of
    thousands of small objects that each full collection walks again: on the example GPT over
    100 windows (``eiec.byoc.run_onnx``, keeping its calls) the collector took 11.5 s of 57
    (82 full collections), and 0.4 s of 45.5 with this (one); the peak memory is the same
    (what it frees is rarely a cycle)."""
    old = gc.get_threshold()
    gc.set_threshold(max(threshold, old[0]), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _run_shards(
    model: onnx.ModelProto,
    named: Mapping[str, np.ndarray],
    options: CompileOptions,
    samples: int,
    engine: Engine,
    workers: int,
    address: str | None,
) -> list[SampleRun]:
    """:func:`run_samples` over consecutive shards of the samples: the first here (its
    offloads registered in this process, for the report), the others on ``engine``."""
    if engine not in ENGINES:  # before any compile
        raise InputError(f"unknown engine {engine!r}", fix="use --engine local or --engine ray")
    cuts = np.linspace(0, samples, min(workers, samples) + 1).round().astype(int)
    shards = [
        {name: array[start:stop] for name, array in named.items()}
        for start, stop in itertools.pairwise(cuts)
    ]
    if len(shards) == 1:
        return [run_samples(model, named, options)]
    blob = model.SerializeToString()
    runner = open_engine(engine, len(shards) - 1, address, task="run")
    aborted = True
    try:
        pending = [runner.submit(run_samples, blob, shard, options) for shard in shards[1:]]
        results = [run_samples(model, shards[0], options)]
        results += [runner.result(handle) for handle in pending]
        aborted = False
    finally:
        runner.close(abort=aborted)
    symbols = [[check.symbol for check in result.checks] for result in results]
    if any(found != symbols[0] for found in symbols):
        raise BackendError(
            "the shards of the samples offloaded different functions",
            where="eiec run --workers",
            fix="run with --workers 1 and report this model",
        )
    return results


def run_byoc(
    model: onnx.ModelProto,
    inputs: Inputs,
    *,
    labels: np.ndarray | None = None,
    options: CompileOptions | None = None,
    config: EmulatorConfig | None = None,
    calibrate_on_inputs: bool = False,
    engine: Engine = "local",
    workers: int = 1,
    address: str | None = None,
) -> ByocReport:
    """Run ``model`` with its FC/LSTM/GRU layers on EIE and the rest on the CPU; check and report
    (module doc). ``inputs``: one array (samples along the first axis) or name -> array;
    ``calibrate_on_inputs``: without calibration samples, calibrate on them (:func:`calibrate`).
    ``workers`` > 1 splits the samples into that many consecutive shards, one run here and the
    others on ``engine`` (``eiec.runtime.engines``: a local process pool, or Ray at
    ``address``); the report is made from their per-sample results in order, the same as one
    process's.
    """
    if config is not None and (config.arith, config.fifo_depth, config.clock_mhz) != (
        "fixed16",
        None,
        None,
    ):
        raise InputError(
            "emulator settings (arith, FIFO depth, clock) apply to models EIE runs whole or "
            "with a CPU tail; this model runs through BYOC, whose programs run in fixed16 on "
            "the machine they were compiled for",
            where="eiec run",
            fix="keep --arith fixed16 (config=None); set the FIFO depth as a compile option",
        )
    names = [info.name for info in reference.model_inputs(model)]
    arrays = {names[0]: inputs} if isinstance(inputs, np.ndarray) else dict(inputs)
    feeds = reference.build(model).feeds(arrays)
    named = dict(zip(names, feeds, strict=True))
    samples = len(feeds[0])
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 2:
            labels = labels.reshape(-1)
        if labels.shape[0] != samples:
            raise InputError(
                f"{labels.shape[0]} labels for {samples} samples",
                where="labels",
                fix="give one label per sample, or one target per token ([samples, T])",
            )
    options, source = calibrate(options or CompileOptions(), model, named, calibrate_on_inputs)
    results = _run_shards(model, named, options, samples, engine, workers, address)
    outputs = {
        name: np.concatenate([r.outputs[name] for r in results]) for name in results[0].outputs
    }
    original = {
        name: np.concatenate([r.original[name] for r in results]) for name in results[0].original
    }
    checks = [CallCheck.merge(parts) for parts in zip(*(r.checks for r in results), strict=True)]
    report = VerifyReport(samples=samples, outputs=list(outputs), scope="offloaded_calls")
    report.emulator_outputs = outputs
    report.cpu_feeds = named
    offloads = compare_calls(report, checks)
    profiled = Profiler(calls=[call for r in results for call in r.calls])
    classifier = labels is not None or is_classifier(model)
    for name, got in outputs.items():
        if got.dtype.kind == "f":
            compare_original(report, got, original[name], classifier)
    accuracy, sequence = None, None
    target_output = None if labels is None or labels.ndim != 2 else sequence_output(outputs, labels)
    if labels is not None and labels.ndim == 2 and target_output is None:
        raise InputError(
            f"per-token labels of shape {list(labels.shape)} match no output of shape "
            f"{[*labels.shape, 'V']}",
            where="labels",
            fix="give one target per token of the sequence output, or one label per sample",
        )
    if target_output is not None:
        sequence = sequence_quality(outputs[target_output], original[target_output], labels)
        accuracy = Accuracy(sequence.original_accuracy, None, sequence.accuracy)
    elif labels is not None:
        check_labels(labels, outputs, "labels")
        accuracy = Accuracy(
            original=float(np.mean(predictions(original) == labels)),
            compressed=None,
            emulator=float(np.mean(predictions(outputs) == labels)),
        )
    return ByocReport(
        verify=report,
        profile=profiled,
        offloads=offloads,
        outputs=outputs,
        accuracy=accuracy,
        calibration=source,
        tokens=token_report(model, profiled, samples),
        sequence=sequence,
    )
