"""The power and area model: per-event energies, per-cycle energies and areas from a JSON table.

The cycle model counts events (SRAM reads, codebook lookups, multiplies, queue accesses...);
:class:`EnergyModel` prices each count with its energy and, for every cycle of every PE, adds
the per-cycle energy (clock network, registers). Every priced part belongs to a *unit* (a
module of the PE: sparse-matrix SRAM, pointer SRAM, arithmetic, activation, activation queue,
element-wise; any other name a table gives, e.g. an off-chip memory) and to a *component*
(memory, clock, register, combinational...). Energies and areas of memories scale with the
machine's fields (``scale``), and a process (``processes``) scales the whole table. The
default table is ``energy_45nm.json`` next to this file: derived from the paper's Tables I-II,
every number with its derivation.

A table entry is ``{"pj": E, "unit": U[, "component": C][, "scale": [...]]}`` or
``{"parts": [{"pj": ..., "unit": ..., ...}, ...]}``; ``component`` defaults to the unit, a
scale is ``{"field": MACHINE_FIELD, "reference": VALUE, "exponent": X}`` (the energy times
``(machine.FIELD / VALUE) ** X``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from eiec.errors import EmulatorError
from eiec.isa.program import Machine

DEFAULT_TABLE = Path(__file__).with_name("energy_45nm.json")
#: Machine fields a scale may name (numbers of the ``.machine`` header).
_FIELDS = frozenset(item.name for item in fields(Machine))


@dataclass(frozen=True)
class Scale:
    """``(machine.field / reference) ** exponent``."""

    field: str
    reference: float
    exponent: float

    def factor(self, machine: Machine) -> float:
        """The factor for ``machine`` (1 at the reference)."""
        return (float(getattr(machine, self.field)) / self.reference) ** self.exponent


@dataclass(frozen=True)
class Part:
    """Energy (pJ) or area (um^2) charged to ``unit`` and ``component``, scaled by ``scales``."""

    value: float
    unit: str
    component: str
    scales: tuple[Scale, ...] = ()

    def at(self, machine: Machine | None) -> float:
        """The value on ``machine`` (unscaled when None)."""
        value = self.value
        if machine is not None:
            for scale in self.scales:
                value *= scale.factor(machine)
        return value


@dataclass(frozen=True)
class EventEnergy:
    """The energy of one event: ``pj`` charged to ``unit`` and ``component`` (default: the
    unit), scaled by ``scales``, and any ``more`` parts (an event spanning several units)."""

    pj: float
    unit: str
    component: str = ""
    scales: tuple[Scale, ...] = ()
    more: tuple[Part, ...] = ()

    @property
    def parts(self) -> tuple[Part, ...]:
        """Every part of the event, the first one ``pj``'s."""
        first = Part(self.pj, self.unit, self.component or self.unit, self.scales)
        return (first, *self.more)

    @property
    def total_pj(self) -> float:
        """The event's energy on the reference machine: its parts' sum."""
        return sum(part.value for part in self.parts)


@dataclass(frozen=True)
class Area:
    """A chip's area: ``pe_um2`` per PE (by part), ``pes`` of them."""

    pe_um2: Mapping[str, float]
    pes: int

    @property
    def pe_mm2(self) -> float:
        """One PE."""
        return sum(self.pe_um2.values()) / 1e6

    @property
    def chip_mm2(self) -> float:
        """The chip: N PEs."""
        return self.pe_mm2 * self.pes


#: (unit, component) -> pJ.
Priced = dict[tuple[str, str], float]


@dataclass(frozen=True)
class EnergyModel:
    """Per-event energies (``events``), per-PE per-cycle energies (``per_cycle``), per-PE areas
    (``area``, with ``filler`` the fraction of filler cells added) and the process factors
    (``process``, ``energy_factor``, ``area_factor``, ``processes`` known); ``order``: the
    components in the order reports list them."""

    name: str
    events: Mapping[str, EventEnergy]
    per_cycle: Mapping[str, Part] = field(default_factory=dict)
    area: Mapping[str, Part] = field(default_factory=dict)
    filler: float = 0.0
    processes: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    process: str = ""
    energy_factor: float = 1.0
    area_factor: float = 1.0
    order: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, path: str | Path, process: str | None = None) -> EnergyModel:
        """Read a table like ``energy_45nm.json`` (at ``process``: one of its ``processes``)."""
        where = str(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            model = _model(data, str(data.get("name", Path(path).stem)))
        except OSError as error:
            raise EmulatorError(
                f"cannot read the energy table: {error.strerror}",
                where=where,
                fix="give a readable JSON file like emulator/energy_45nm.json",
            ) from error
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise EmulatorError(
                f"malformed energy table ({error!r})",
                where=where,
                fix='write {"events": {"NAME": {"pj": NUMBER, "unit": "UNIT"}, ...}} (see '
                "emulator/energy_45nm.json)",
            ) from error
        return model.at_process(process) if process else model

    @classmethod
    def default(cls, process: str | None = None) -> EnergyModel:
        """The table of the paper's chip (45 nm; ``process`` "28nm" for Table V's)."""
        return _default_model(process)

    def with_event(self, name: str, event: EventEnergy) -> EnergyModel:
        """This table with event ``name`` added (or replaced)."""
        return replace(self, events={**self.events, name: event})

    def at_process(self, process: str) -> EnergyModel:
        """This table scaled to ``process`` (a key of its ``processes``)."""
        if process not in self.processes:
            known = ", ".join(self.processes) or "none"
            raise EmulatorError(
                f"the energy table {self.name!r} has no process {process!r}",
                where="energy model",
                fix=f"use one of its processes ({known})",
            )
        energy, area = self.processes[process]
        return replace(self, process=process, energy_factor=energy, area_factor=area)

    @property
    def units(self) -> tuple[str, ...]:
        """The units energy is charged to, in table order, without repeats."""
        parts = [p for e in self.events.values() for p in e.parts] + list(self.per_cycle.values())
        return tuple(dict.fromkeys(part.unit for part in parts))

    @property
    def components(self) -> tuple[str, ...]:
        """The components energy is charged to: the table's ``components`` order first, then
        the others in table order, without repeats."""
        parts = [p for e in self.events.values() for p in e.parts] + list(self.per_cycle.values())
        return tuple(dict.fromkeys([*self.order, *(part.component for part in parts)]))

    def price(
        self, activity: Mapping[str, int], machine: Machine | None = None, pe_cycles: int = 0
    ) -> Priced:
        """pJ per (unit, component) of the given event counts and ``pe_cycles`` (cycles times
        PEs) on ``machine`` (events missing from the table are errors). Counts may be arrays
        (a batch's lanes): each lane's energies are then those of its own counts (a count of 0
        in some lanes adds exactly 0.0 there)."""
        priced: Priced = {}
        for name, count in activity.items():
            if not np.any(count):
                continue
            event = self.events.get(name)
            if event is None:
                raise EmulatorError(
                    f"the energy table {self.name!r} has no entry for event {name!r}",
                    where="energy model",
                    fix="add the event to the table (see emulator/energy_45nm.json)",
                )
            for part in event.parts:
                key = (part.unit, part.component)
                priced[key] = priced.get(key, 0.0) + part.at(machine) * count * self.energy_factor
        if np.any(pe_cycles):
            for part in self.per_cycle.values():
                key = (part.unit, part.component)
                energy = part.at(machine) * pe_cycles * self.energy_factor
                priced[key] = priced.get(key, 0.0) + energy
        return priced

    def chip_area(self, machine: Machine) -> Area:
        """The area of ``machine``: each part scaled to its memories, filler cells added, at
        the process."""
        parts = {name: part.at(machine) * self.area_factor for name, part in self.area.items()}
        if parts and self.filler:
            parts["filler"] = sum(parts.values()) * self.filler
        return Area(pe_um2=parts, pes=machine.pes)


def _scales(entry: Mapping[str, Any]) -> tuple[Scale, ...]:
    scales = []
    for item in entry.get("scale", ()):
        name = str(item["field"])
        if name not in _FIELDS:
            raise ValueError(f"scale field {name!r} is not a machine field")
        scales.append(Scale(name, float(item["reference"]), float(item.get("exponent", 1.0))))
    return tuple(scales)


def _part(entry: Mapping[str, Any], key: str = "pj", unit: str | None = None) -> Part:
    unit = str(entry["unit"]) if unit is None else unit
    return Part(
        value=float(entry[key]),
        unit=unit,
        component=str(entry.get("component", unit)),
        scales=_scales(entry),
    )


def _model(data: Mapping[str, Any], name: str) -> EnergyModel:
    events = {}
    for event, entry in data["events"].items():
        first, *more = (_part(part) for part in entry.get("parts", [entry]))
        events[event] = EventEnergy(
            first.value, first.unit, first.component, first.scales, tuple(more)
        )
    per_cycle = {key: _part(entry) for key, entry in data.get("per_cycle", {}).items()}
    area_data = dict(data.get("area", {}))
    filler = float(area_data.pop("filler_fraction", 0.0))
    area = {key: _part(entry, "um2", unit=key) for key, entry in area_data.items()}
    processes = {
        key: (float(entry["energy"]), float(entry["area"]))
        for key, entry in data.get("processes", {}).items()
    }
    return EnergyModel(
        name=name,
        events=events,
        per_cycle=per_cycle,
        area=area,
        filler=filler,
        processes=processes,
        process=next(iter(processes), ""),
        order=tuple(str(name) for name in data.get("components", ())),
    )


@cache
def _default_model(process: str | None) -> EnergyModel:
    return EnergyModel.from_json(DEFAULT_TABLE, process)
