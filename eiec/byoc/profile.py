"""Cycles, time and energy of the offloaded calls a model made: ``with profile() as prof``.

Every call of an offloaded function (one EIE program) appends one :class:`CallRecord` to each
active profiler; :meth:`Profiler.report` tables them per offloaded function and per EIE layer,
with the total, and :meth:`Profiler.to_json` gives the same figures as plain data. A profiler
made with ``profile(keep_inputs=True)`` also keeps each call's input arrays (to check the call
against a reference afterwards, as ``eiec run`` does).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eiec.emulator.bounds import Saturation

_ACTIVE: list[Profiler] = []


@dataclass(frozen=True)
class LayerRecord:
    """One EIE layer's share of a call: summed over its executions (LSTM steps, batch rows)."""

    layer: str
    executions: int
    cycles: int
    time_us: float
    energy_pj: float


@dataclass(frozen=True)
class CheckedRun:
    """One emulator run of a call with what checking it needs (kept when a profiler keeps the
    calls' inputs, so the check does not emulate again): the outputs, each output element's
    error bound and saturation taint (``ErrorBounds.ports``), the saturations, the clamped host
    values per input port, where the first saturation and unbounded bound were, and each output
    element's centre (``ErrorBounds.port_centres``: the check is centred on it)."""

    outputs: dict[str, np.ndarray]
    bounds: dict[str, np.ndarray]
    saturated: dict[str, np.ndarray]
    saturations: int
    clamped: dict[str, int]
    first_saturation: Saturation | None
    first_unbounded: Saturation | None
    centres: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class CallRecord:
    """One call of an offloaded function: ``runs`` emulator runs (one per batch row).
    ``inputs``: the call's host inputs, and ``checked``: its runs with their error bounds,
    kept only by ``profile(keep_inputs=True)``."""

    symbol: str
    runs: int
    cycles: int
    time_us: float
    energy_pj: float
    layers: tuple[LayerRecord, ...]
    inputs: tuple[np.ndarray, ...] | None = field(default=None, compare=False, repr=False)
    checked: tuple[CheckedRun, ...] | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "symbol": self.symbol,
            "runs": self.runs,
            "cycles": self.cycles,
            "time_us": self.time_us,
            "energy_pj": self.energy_pj,
            "layers": [vars(layer) for layer in self.layers],
        }


@dataclass
class Profiler:
    """The offloaded calls made while it was active (see :func:`profile`)."""

    calls: list[CallRecord] = field(default_factory=list)
    keep_inputs: bool = False

    def per_function(self) -> dict[str, dict[str, float]]:
        """Calls, cycles, time and energy summed per offloaded function, in first-call order."""
        table: dict[str, dict[str, float]] = {}
        for call in self.calls:
            row = table.setdefault(
                call.symbol, {"calls": 0, "runs": 0, "cycles": 0, "time_us": 0.0, "energy_pj": 0.0}
            )
            row["calls"] += 1
            row["runs"] += call.runs
            row["cycles"] += call.cycles
            row["time_us"] += call.time_us
            row["energy_pj"] += call.energy_pj
        return table

    def per_layer(self) -> dict[tuple[str, str], dict[str, float]]:
        """Executions, cycles and energy summed per (offloaded function, EIE layer)."""
        table: dict[tuple[str, str], dict[str, float]] = {}
        for call in self.calls:
            for layer in call.layers:
                row = table.setdefault(
                    (call.symbol, layer.layer),
                    {"executions": 0, "cycles": 0, "time_us": 0.0, "energy_pj": 0.0},
                )
                row["executions"] += layer.executions
                row["cycles"] += layer.cycles
                row["time_us"] += layer.time_us
                row["energy_pj"] += layer.energy_pj
        return table

    def total(self) -> dict[str, float]:
        """Calls, cycles, time and energy of every offloaded call together."""
        return {
            "calls": len(self.calls),
            "cycles": sum(call.cycles for call in self.calls),
            "time_us": sum(call.time_us for call in self.calls),
            "energy_pj": sum(call.energy_pj for call in self.calls),
        }

    def to_json(self) -> dict[str, Any]:
        """Every figure as plain data: calls, per function, per layer, total."""
        return {
            "calls": [call.to_json() for call in self.calls],
            "functions": self.per_function(),
            "layers": [
                {"symbol": symbol, "layer": layer, **row}
                for (symbol, layer), row in self.per_layer().items()
            ],
            "total": self.total(),
        }

    def report(self) -> str:
        """A text table: each offloaded function (calls, emulator runs: one per batch row), its
        EIE layers below it (runs: executions of the layer's MAC), and the total. A function's
        cycles include its codebook loads and write-backs besides its layers' MACs."""
        header = (
            f"{'function / layer':<36} {'calls':>6} {'runs':>6} {'cycles':>12} "
            f"{'time us':>10} {'energy nJ':>11}"
        )
        lines = [header]

        def line(name: str, calls: object, runs: object, row: dict[str, float]) -> str:
            return (
                f"{name:<36} {calls!s:>6} {runs!s:>6} {int(row['cycles']):>12} "
                f"{row['time_us']:>10.2f} {row['energy_pj'] / 1e3:>11.3f}"
            )

        layers = self.per_layer()
        for symbol, row in self.per_function().items():
            lines.append(line(symbol, int(row["calls"]), int(row["runs"]), row))
            for (owner, layer), lrow in layers.items():
                if owner == symbol:
                    lines.append(line(f"  {layer}", "", int(lrow["executions"]), lrow))
        total = self.total()
        lines.append(line("total", int(total["calls"]), "", total))
        return "\n".join(lines)


@contextlib.contextmanager
def profile(keep_inputs: bool = False) -> Iterator[Profiler]:
    """Collect the offloaded calls made inside the block (profilers nest); with
    ``keep_inputs``, each record also holds the call's input arrays."""
    profiler = Profiler(keep_inputs=keep_inputs)
    _ACTIVE.append(profiler)
    try:
        yield profiler
    finally:
        _ACTIVE.remove(profiler)


def checking() -> bool:
    """Whether an active profiler keeps the calls' inputs (to check them afterwards): the
    runners then also track each run's error bounds (:class:`CheckedRun`)."""
    return any(profiler.keep_inputs for profiler in _ACTIVE)


def record(
    call: CallRecord,
    inputs: Sequence[np.ndarray] = (),
    checked: Sequence[CheckedRun] | None = None,
) -> None:
    """Give one offloaded call (made on ``inputs``; ``checked``: its runs with their error
    bounds) to every active profiler (called by the runners)."""
    kept = dataclasses.replace(
        call, inputs=tuple(inputs), checked=None if checked is None else tuple(checked)
    )
    for profiler in _ACTIVE:
        profiler.calls.append(kept if profiler.keep_inputs else call)
