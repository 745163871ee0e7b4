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
from eiec.emulator import Emulator, EmulatorConfig, Stats
from eiec.emulator.batch import run_batch, run_lanes
from eiec.emulator.bounds import ErrorBounds
from eiec.emulator.ports import input_clamps
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
        or one per row of the flattened leading dimensions with ``rows``."""
        if len(inputs) != len(self.inputs):
            raise BackendError(
                f"{self.symbol} takes {len(self.inputs)} inputs, got {len(inputs)}",
                where=self.symbol,
            )
        if not self.rows:
            return [dict(zip(self.inputs, inputs, strict=True))]
        shapes = [_port_shape(self.program, name, False) for name in self.inputs]
        rows = [x.reshape(-1, shape[-1]) for x, shape in zip(inputs, shapes, strict=True)]
        return [
            {
                name: x[index].reshape(shape)
                for name, x, shape in zip(self.inputs, rows, shapes, strict=True)
            }
            for index in range(rows[0].shape[0])
        ]

    def stacked(self, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """The rows of :meth:`feeds` stacked along each input port's batch axis: one
        ``run_batch`` runs them all in lockstep."""
        feeds = self.feeds(inputs)
        if len(feeds) == 1:
            return feeds[0]
        axes = {port.name: port.batch_axis or 0 for port in self.program.inputs}
        return {
            name: np.concatenate([feed[name] for feed in feeds], axis=axes[name])
            for name in self.inputs
        }


def _port_shape(program: Program, name: str, outputs: bool) -> tuple[int, ...]:
    ports = program.outputs if outputs else program.inputs
    return next(port.shape for port in ports if port.name == name)


def call_record(symbol: str, runs: Sequence[Stats]) -> CallRecord:
    """The profile record of one call made of ``runs`` emulator runs."""
    layers: dict[str, list[float]] = {}
    for stats in runs:
        for totals in stats.layer_totals:
            entry = layers.setdefault(totals.layer, [0, 0, 0.0, 0.0])
            entry[0] += totals.macs
            entry[1] += totals.cycles
            entry[2] += totals.cycles / stats.clock_mhz
            entry[3] += totals.energy_pj
    return CallRecord(
        symbol=symbol,
        runs=len(runs),
        cycles=sum(stats.cycles for stats in runs),
        time_us=sum(stats.time_us for stats in runs),
        energy_pj=sum(stats.energy_pj for stats in runs),
        layers=tuple(
            LayerRecord(name, int(macs), int(cycles), float(time_us), float(pj))
            for name, (macs, cycles, time_us, pj) in layers.items()
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
        """The program's outputs for host inputs (rows split off when ``offload.rows``, and
        run in lockstep: ``eiec.emulator.batch.run_batch``)."""
        offload = self.offload
        if checking():
            return self._run_checked(inputs)
        if not offload.rows:
            result = self.emulator.run(offload.feeds(inputs)[0])
            record(call_record(offload.symbol, [result.stats]), inputs)
            return [result.outputs[name] for name in offload.outputs]
        batch = run_batch(
            offload.program, offload.stacked(inputs), self.config, tables=self.emulator.tables
        )
        record(call_record(offload.symbol, batch.runs), inputs)
        lead = inputs[0].shape[:-1]
        return [batch.outputs[name].reshape(*lead, -1) for name in offload.outputs]

    def _run_checked(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`run` with an error-bound probe on each run (in lockstep:
        ``eiec.emulator.batch.run_lanes``), recorded with the call for its check."""
        offload = self.offload
        fixed = self.emulator.config.arith == "fixed16"

        def probes() -> tuple[ErrorBounds]:
            return (ErrorBounds(offload.program, fixed_point=fixed, _weights=self._weights),)

        runs = run_lanes(self.emulator, offload.feeds(inputs), probes)
        checked = []
        for result, (bounds,) in runs:
            tolerances, taints = bounds.ports()
            checked.append(
                CheckedRun(
                    outputs=result.outputs,
                    bounds=tolerances,
                    saturated=taints,
                    saturations=result.stats.saturations,
                    clamped=input_clamps([result.stats]),
                    first_saturation=bounds.first_saturation,
                    first_unbounded=bounds.first_unbounded,
                    centres=bounds.port_centres(),
                )
            )
        record(call_record(offload.symbol, [result.stats for result, _ in runs]), inputs, checked)
        if not offload.rows:
            return [runs[0][0].outputs[name] for name in offload.outputs]
        lead = inputs[0].shape[:-1]
        axes = {port.name: port.batch_axis for port in offload.program.outputs}
        stacked = []
        for name in offload.outputs:  # as run_batch stacks them
            parts = [result.outputs[name] for result, _ in runs]
            axis = axes[name]
            value = np.stack(parts) if axis is None else np.concatenate(parts, axis=axis)
            stacked.append(value.reshape(*lead, -1))
        return stacked

    def __call__(self, *args: tvm.runtime.Tensor) -> None:
        n_in = len(self.offload.inputs)
        inputs = [np.asarray(arg.numpy(), dtype=np.float32) for arg in args[:n_in]]
        results = self.run(inputs)
        for dst, value in zip(args[n_in:], results, strict=True):
            dst.copyfrom(np.ascontiguousarray(value.reshape(dst.shape), dtype=np.float32))


def register(offload: Offload, config: EmulatorConfig | None = None) -> None:
    """Make ``offload`` callable by the VM (a global packed function named by its symbol)."""
    _OFFLOADS[offload.symbol] = offload
    tvm.register_global_func(offload.symbol, Runner(offload, config), override=True)


def registered(symbol: str) -> Offload | None:
    """The offload registered under ``symbol`` in this process, or None."""
    return _OFFLOADS.get(symbol)
