"""Energy estimate: per-event energies (pJ) from a JSON config, priced per activity count.

The cycle model counts events (SRAM reads, codebook lookups, multiplies, queue accesses...);
:class:`EnergyModel` multiplies each count by its energy and groups the result by unit
(sparse-matrix SRAM, pointer SRAM, arithmetic, activation queue, activation, element-wise).
The default table is ``energy_45nm.json`` next to this file; each entry documents how it is
derived from the 45 nm figures of the design doc.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from eiec.errors import EmulatorError

DEFAULT_TABLE = Path(__file__).with_name("energy_45nm.json")


@dataclass(frozen=True)
class EventEnergy:
    """The energy of one event and the unit it is charged to."""

    pj: float
    unit: str


@dataclass(frozen=True)
class EnergyModel:
    """Per-event energies. ``price`` turns activity counts into pJ per unit."""

    name: str
    events: Mapping[str, EventEnergy]

    @classmethod
    def from_json(cls, path: str | Path) -> EnergyModel:
        """Read a table like ``energy_45nm.json``."""
        where = str(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            events = {
                name: EventEnergy(pj=float(entry["pj"]), unit=str(entry["unit"]))
                for name, entry in data["events"].items()
            }
            return cls(name=str(data.get("name", Path(path).stem)), events=events)
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
                fix='write {"events": {"NAME": {"pj": NUMBER, "unit": "UNIT"}, ...}}',
            ) from error

    @classmethod
    def default(cls) -> EnergyModel:
        """The 45 nm table of the paper's chip."""
        return _default_model()

    @property
    def units(self) -> tuple[str, ...]:
        """The units energy is charged to, in table order, without repeats."""
        return tuple(dict.fromkeys(event.unit for event in self.events.values()))

    def with_event(self, name: str, event: EventEnergy) -> EnergyModel:
        """This table with event ``name`` added (or replaced), e.g. the machine's DRAM bit."""
        return EnergyModel(self.name, {**self.events, name: event})

    def price(self, activity: Mapping[str, int]) -> dict[str, float]:
        """pJ per unit for the given event counts (events missing from the table are errors)."""
        breakdown = dict.fromkeys(self.units, 0.0)
        for name, count in activity.items():
            if not count:
                continue
            event = self.events.get(name)
            if event is None:
                raise EmulatorError(
                    f"the energy table {self.name!r} has no entry for event {name!r}",
                    where="energy model",
                    fix="add the event to the table (see emulator/energy_45nm.json)",
                )
            breakdown[event.unit] += event.pj * count
        return breakdown


@cache
def _default_model() -> EnergyModel:
    return EnergyModel.from_json(DEFAULT_TABLE)
