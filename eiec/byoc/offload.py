"""Compiled offloaded functions and the packed functions the Relax VM calls to run them.

An :class:`Offload` is one EIE program with how the VM's tensors map to its ports. Its runner,
registered as a global packed function under the function's symbol, follows the
destination-passing style of ``R.call_dps_packed``: the inputs, then the output tensors, which
it fills. FC chains compute each row independently, so a runner splits the inputs' leading
(batch) dimensions into rows and runs the program (compiled for one row) once per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import tvm

from eiec.byoc.profile import CallRecord, CheckedRun, LayerRecord, checking, record
from eiec.emulator import Emulator, EmulatorConfig
from eiec.emulator.batch import LaneChunk, run_chunks
from eiec.emulator.bounds import ErrorBounds
from eiec.emulator.stats import LaneTotals
from eiec.errors import BackendError
from eiec.isa.program import Program

if TYPE_CHECKING:
    from eiec.compiler import CompileResult

#: Every offload registered in this process, by symbol.
_OFFLOADS: dict[str, Offload] = {}


@dataclass(frozen=True)
class Offload:
    """One offloaded function compiled to an EIE program.

    ``inputs`` / ``outputs`` name the program's ports in the order of the function's parameters
    and results. With ``rows`` set, the program takes one row of each input (its last
    dimension) and the runner repeats it over the flattened leading dimensions. ``compiled``
    is the compiler's result (report, compressed Relax module) when compiled in this process,
    None when loaded from a saved program.
    """

    symbol: str
    program: Program
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    rows: bool
    compiled: CompileResult | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The mapping part (the program is saved as text beside it)."""
        return {"inputs": list(self.inputs), "outputs": list(self.outputs), "rows": self.rows}

    def feeds(self, inputs: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """The program's inputs (port -> array) of each emulator run one call makes: one run,
        or one per row of the flattened leading dimensions with ``rows`` (:meth:`lanes`, a
        run at a time)."""
        lanes = self.lanes(inputs)
        count = len(next(iter(lanes.values())))
        return [{name: array[index] for name, array in lanes.items()} for index in range(count)]

    def lanes(self, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """The program's inputs of the emulator runs one call makes, stacked as lockstep
        lanes: by input port, runs x the port's shape (one run, or one per row of the
        flattened leading dimensions with ``rows``)."""
        if len(inputs) != len(self.inputs):
            raise BackendError(
                f"{self.symbol} takes {len(self.inputs)} inputs, got {len(inputs)}",
                where=self.symbol,
            )
        if not self.rows:
            return {name: np.asarray(x)[None] for name, x in zip(self.inputs, inputs, strict=True)}
        return {
            name: np.asarray(x).reshape(-1, *_port_shape(self.program, name, False))
            for name, x in zip(self.inputs, inputs, strict=True)
        }


def _port_shape(program: Program, name: str, outputs: bool) -> tuple[int, ...]:
    ports = program.outputs if outputs else program.inputs
    return next(port.shape for port in ports if port.name == name)


def call_record(symbol: str, lanes: Sequence[LaneTotals]) -> CallRecord:
    """The profile record of one call made of the runs of ``lanes`` (lockstep chunks of them,
    in order): each lane's figures added up one run after the other."""
    layers: dict[str, list[float]] = {}
    runs, cycles, time_us, energy_pj = 0, 0, 0.0, 0.0
    for totals in lanes:
        clock = totals.clock_mhz
        per_layer = [
            (layers.setdefault(name, [0, 0, 0.0, 0.0]), macs, spent.tolist(), pj.tolist())
            for name, (macs, spent, pj) in totals.layers.items()
        ]
        for lane, (run_cycles, run_pj) in enumerate(
            zip(totals.cycles.tolist(), totals.energy_pj.tolist(), strict=True)
        ):
            runs += 1
            cycles += run_cycles
            time_us += run_cycles / clock
            energy_pj += run_pj
            for entry, macs, spent, pj in per_layer:
                entry[0] += macs
                entry[1] += spent[lane]
                entry[2] += spent[lane] / clock
                entry[3] += pj[lane]
    return CallRecord(
        symbol=symbol,
        runs=runs,
        cycles=cycles,
        time_us=time_us,
        energy_pj=energy_pj,
        layers=tuple(
            LayerRecord(name, int(macs), int(spent), float(time), float(pj))
            for name, (macs, spent, time, pj) in layers.items()
        ),
    )


class Runner:
    """The packed function of one offload: ``runner(*inputs, *outputs)``."""

    def __init__(self, offload: Offload, config: EmulatorConfig | None = None) -> None:
        self.offload = offload
        self.config = config
        self.emulator = Emulator(offload.program, config)  # builds the layer tables once
        self._weights: dict = {}  # the error bounds' stored weights of the layers, built once

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The program's outputs for host inputs: one run, or one per row when
        ``offload.rows``, run in lockstep (``eiec.emulator.batch.run_chunks``); while a
        profiler checks (``checking()``), every run with its error bounds, recorded with the
        call for its check."""
        offload = self.offload
        checked = checking()
        chunks = run_chunks(
            self.emulator, offload.lanes(inputs), self._bounds if checked else lambda lanes: ()
        )
        runs = _checked_runs(chunks) if checked else None
        record(call_record(offload.symbol, [chunk.totals for chunk in chunks]), inputs, runs)
        if not offload.rows:
            return [chunks[0].outputs[name][0] for name in offload.outputs]
        lead = inputs[0].shape[:-1]
        axes = {port.name: port.batch_axis for port in offload.program.outputs}
        stacked = []
        for name in offload.outputs:  # as run_batch stacks them
            parts = [lane for chunk in chunks for lane in chunk.outputs[name]]
            axis = axes[name]
            value = np.stack(parts) if axis is None else np.concatenate(parts, axis=axis)
            stacked.append(value.reshape(*lead, -1))
        return stacked

    def _bounds(self, lanes: int) -> tuple[ErrorBounds]:
        """The error-bound probe of ``lanes`` lockstep runs."""
        fixed = self.emulator.config.arith == "fixed16"
        program = self.offload.program
        return (ErrorBounds(program, fixed_point=fixed, lanes=lanes, _weights=self._weights),)

    def __call__(self, *args: tvm.runtime.Tensor) -> None:
        n_in = len(self.offload.inputs)
        inputs = [np.asarray(arg.numpy(), dtype=np.float32) for arg in args[:n_in]]
        results = self.run(inputs)
        for dst, value in zip(args[n_in:], results, strict=True):
            dst.copyfrom(np.ascontiguousarray(value.reshape(dst.shape), dtype=np.float32))


def _checked_runs(chunks: Sequence[LaneChunk]) -> list[CheckedRun]:
    """Each lane's run of ``chunks`` with what checking it needs, from its chunk's outputs,
    totals and error-bound probe (``ErrorBounds`` of all the chunk's lanes)."""
    checked = []
    for chunk in chunks:
        (bounds,) = chunk.probes
        tolerances, taints = bounds.ports()  # type: ignore[attr-defined]
        centres = bounds.port_centres()  # type: ignore[attr-defined]
        totals = chunk.totals
        clamped = {port: counts.tolist() for port, counts in totals.clamped.items()}
        tables = [_lane_rows(table) for table in (chunk.outputs, tolerances, taints, centres)]
        for lane, (count, outputs, bound, taint, centre) in enumerate(
            zip(totals.saturations.tolist(), *tables, strict=True)
        ):
            checked.append(
                CheckedRun(
                    outputs=outputs,
                    bounds=bound,
                    saturated=taint,
                    saturations=count,
                    clamped={port: per[lane] for port, per in clamped.items() if per[lane]},
                    first_saturation=bounds.first_saturation[lane],  # type: ignore[attr-defined]
                    first_unbounded=bounds.first_unbounded[lane],  # type: ignore[attr-defined]
                    centres=centre,
                )
            )
    return checked


def _lane_rows(tables: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Tables of lanes (by name, lanes x ...) as one dict of views per lane."""
    names = list(tables)
    return [dict(zip(names, rows, strict=True)) for rows in zip(*tables.values(), strict=True)]


def register(offload: Offload, config: EmulatorConfig | None = None) -> None:
    """Make ``offload`` callable by the VM (a global packed function named by its symbol)."""
    _OFFLOADS[offload.symbol] = offload
    tvm.register_global_func(offload.symbol, Runner(offload, config), override=True)


def registered(symbol: str) -> Offload | None:
    """The offload registered under ``symbol`` in this process, or None."""
    return _OFFLOADS.get(symbol)
