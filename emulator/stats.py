"""Run statistics: what the cycle model and the energy model observed, as a dataclass.

``StatsCollector`` is the observer that builds :class:`Stats`. Definitions:
- ``alu_utilization``: useful MACs / (N * cycles): the fraction of all PE cycles of the run
  that did a useful multiply-accumulate.
- ``load_efficiency`` (the paper's): 1 - starved / (N * window) over the MACs, window being the
  span of the PEs' entry stage, from the first cycle an entry can be read to the last PE's last
  slot (pipeline fill and drain excluded, isa/SPEC.md §6). Padding and pointer-only cycles
  count as ALU work here, starvation does not.
- ``ideal_cycles``: stored entries (padding included) of the broadcast columns / N: the paper's
  "theoretical" time, work spread evenly with no load imbalance and no overhead.
- Energy: the events' energies plus the per-cycle energy of every PE in every cycle (clock
  network, registers), by unit (``energy_breakdown_pj``) and by component
  (``energy_components_pj``); ``power_mw`` = energy / time; ``gops`` = 2 x useful MACs / time
  (the paper's GOP/s on the compressed network: a multiply and an add per stored non-zero
  weight times non-zero activation); ``gops_per_w`` = GOP/s / W; ``chip_area_mm2``: the
  machine's area (``EnergyModel.chip_area``).
- Streamed layers (weights in DRAM): ``dram_bytes`` moved, ``dram_stall_cycles`` waited for
  them, and ``memory_bound``: whether the transfers took longer than the computation would have
  with every chunk on chip (``compute_cycles``); a layer held on chip is compute-bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from eiec.emulator.config import ResolvedConfig
from eiec.emulator.events import Event, MacEvent, MacTiming, Timing


@dataclass
class PeStats:
    """One PE over the whole run (cycles of its MACs' windows, by kind)."""

    pe: int
    useful_macs: int = 0
    padding_cycles: int = 0
    pointer_cycles: int = 0
    starved_cycles: int = 0
    stall_cycles: int = 0


@dataclass
class MacStats:
    """One executed ``sparse-column-mac`` (``step``: how many MACs of this layer came before)."""

    layer: str
    step: int
    pc: int
    start_cycle: int
    cycles: int
    window: int
    broadcasts: int
    stream_length: int
    useful_macs: int
    padding_entries: int
    pointer_cycles: int
    starved_cycles: int
    stall_cycles: int
    ideal_cycles: float
    alu_utilization: float
    load_efficiency: float
    energy_pj: float
    saturations: int
    dram_bytes: int
    dram_stall_cycles: int
    transfer_cycles: float
    compute_cycles: int
    memory_bound: bool
    pe_useful_macs: list[int]
    pe_padding_cycles: list[int]
    pe_pointer_cycles: list[int]
    pe_starved_cycles: list[int]
    pe_stall_cycles: list[int]


@dataclass
class LayerTotals:
    """All MACs of one layer added up."""

    layer: str
    macs: int = 0
    cycles: int = 0
    window: int = 0
    broadcasts: int = 0
    useful_macs: int = 0
    padding_entries: int = 0
    pointer_cycles: int = 0
    starved_cycles: int = 0
    stall_cycles: int = 0
    ideal_cycles: float = 0.0
    energy_pj: float = 0.0
    dram_bytes: int = 0
    dram_stall_cycles: int = 0
    transfer_cycles: float = 0.0
    compute_cycles: int = 0
    alu_utilization: float = 0.0
    load_efficiency: float = 0.0
    #: Whether the layer's transfers took longer than its computation (streamed layers).
    memory_bound: bool = False


@dataclass
class Stats:
    """Everything measured in one run; ``to_json`` gives the documented keys."""

    pes: int
    fifo_depth: int
    clock_mhz: float
    arith: str
    cycles: int = 0
    useful_macs: int = 0
    padding_entries: int = 0
    pointer_cycles: int = 0
    starved_cycles: int = 0
    stall_cycles: int = 0
    ideal_cycles: float = 0.0
    mac_window_cycles: int = 0
    dram_bytes: int = 0
    dram_stall_cycles: int = 0
    energy_pj: float = 0.0
    energy_breakdown_pj: dict[str, float] = field(default_factory=dict)
    energy_components_pj: dict[str, float] = field(default_factory=dict)
    process: str = ""
    pe_area_mm2: float = 0.0
    chip_area_mm2: float = 0.0
    saturations: int = 0
    saturation_events: list[dict[str, Any]] = field(default_factory=list)
    activity: dict[str, int] = field(default_factory=dict)
    instructions: dict[str, dict[str, int]] = field(default_factory=dict)
    layers: list[MacStats] = field(default_factory=list)
    layer_totals: list[LayerTotals] = field(default_factory=list)
    #: Per PE over the run: useful, padding, pointer-only, starved and stall cycles (5 x N;
    #: ``pe_stats`` gives them as :class:`PeStats`).
    pe_table: list[list[int]] = field(default_factory=list, repr=False)

    @property
    def pe_stats(self) -> list[PeStats]:
        """Each PE's cycles by kind over the run."""
        return [PeStats(pe, *column) for pe, column in enumerate(zip(*self.pe_table, strict=True))]

    @property
    def time_us(self) -> float:
        """Run time at the clock."""
        return self.cycles / self.clock_mhz

    @property
    def power_mw(self) -> float:
        """Average power over the run: energy / time."""
        return _ratio(self.energy_pj, self.time_us) / 1e3

    @property
    def gops(self) -> float:
        """GOP/s on the compressed network: 2 ops per useful MAC over the run's time."""
        return _ratio(2 * self.useful_macs, self.time_us) / 1e3

    @property
    def gops_per_w(self) -> float:
        """GOP/s per watt."""
        return _ratio(self.gops, self.power_mw / 1e3)

    @property
    def alu_utilization(self) -> float:
        """Useful MACs / (N * cycles)."""
        return _ratio(self.useful_macs, self.pes * self.cycles)

    @property
    def load_efficiency(self) -> float:
        """1 - starved / (N * MAC windows)."""
        return 1.0 - _ratio(self.starved_cycles, self.pes * self.mac_window_cycles)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (keys of docs/interfaces: cycles, time_us, ..., layers, pes)."""
        data = asdict(self)
        data.pop("pe_table")
        data["time_us"] = self.time_us
        data["alu_utilization"] = self.alu_utilization
        data["load_efficiency"] = self.load_efficiency
        data["power_mw"] = self.power_mw
        data["gops"] = self.gops
        data["gops_per_w"] = self.gops_per_w
        data["pes"] = [asdict(pe) for pe in self.pe_stats]
        data["pe_count"] = self.pes
        return data

    def render(self) -> Any:
        """A rich renderable: the summary, the MACs, the energy by unit."""
        from eiec.emulator.report import render_stats  # lazy: rich

        return render_stats(self)


def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


@dataclass(frozen=True)
class LaneTotals:
    """What each lane of a lockstep batch added up to (arrays over the lanes), as its
    :class:`Stats` has them, without the rest of them (cheap for many lanes): ``cycles``,
    ``energy_pj``, ``saturations``; ``clamped``: by input port, its values clamped while
    quantised (ports with any, in port order); ``layers``: by layer in the order they first
    ran, its MACs' count, cycles and energy (``LayerTotals.macs/cycles/energy_pj``)."""

    clock_mhz: float
    cycles: np.ndarray
    energy_pj: np.ndarray
    saturations: np.ndarray
    clamped: dict[str, np.ndarray]
    layers: dict[str, tuple[int, np.ndarray, np.ndarray]]


#: The most (activity, cycles) keys a collector keeps the energy of.
_PRICES = 4096

#: The fields of a MAC's record that add up into its layer's totals, in order.
_TOTALLED = (
    "cycles",
    "window",
    "broadcasts",
    "useful_macs",
    "padding_entries",
    "pointer_cycles",
    "starved_cycles",
    "stall_cycles",
    "ideal_cycles",
    "energy_pj",
    "dram_bytes",
    "dram_stall_cycles",
    "transfer_cycles",
    "compute_cycles",
)

#: The per-PE fields of a MAC's timing, in :class:`PeStats` order.
_PER_PE = ("busy", "padding", "pointer", "starved", "stall")


@dataclass
class _MacRecord:
    """One executed MAC as observed (for a batch, every count an array over the lanes)."""

    event: MacEvent
    start: Any
    cycles: Any
    mac: MacTiming
    energy_pj: Any
    saturations: Any


class StatsCollector:
    """The observer that builds :class:`Stats` (energy priced with the config's table).

    It counts one run, or every lane of a lockstep batch at once (``reset(lanes)``): then each
    count is an array over the lanes, the events' saturation counts and a MAC's timing are per
    lane (``cycles.stack_costs``), and :meth:`finish_lanes` gives each lane's statistics, equal
    to those of the lane run alone (the same additions in the same order, lane by lane).
    """

    def __init__(self, config: ResolvedConfig, shared: StatsCollector | None = None) -> None:
        self.config = config
        if shared is None:
            area = config.energy.chip_area(config.machine)
            #: What every run on this configuration starts from: the chip's area, the
            #: energy table's units and components (computed once; a batch's lanes share it).
            self.base = (area.pe_mm2, area.chip_mm2, config.energy.units, config.energy.components)
            #: The energy of each (activity, cycles) seen, by that key: pricing is a pure
            #: function of them on this machine (a batch's lanes share one cache).
            self.prices: dict[Any, Any] = {}
        else:
            self.base, self.prices = shared.base, shared.prices
        self.reset()

    def reset(self, lanes: int | None = None) -> None:
        """Start over (for ``lanes`` lanes of a batch, or one run)."""
        _, _, units, components = self.base
        self.lanes = lanes
        lead = () if lanes is None else (lanes,)
        self._lead = lead
        # Counts are Python numbers for one run, arrays over the lanes once a lane differs.
        self._cycles: Any = 0
        self._energy: Any = 0.0
        self._units: dict[str, Any] = dict.fromkeys(units, 0.0)
        self._components: dict[str, Any] = dict.fromkeys(components, 0.0)
        self._activity: dict[str, Any] = {}
        self._instructions: dict[str, list[Any]] = {}
        self._saturations: Any = 0
        self._events: list[list[dict[str, Any]]] = [[] for _ in range(lanes or 1)]
        self._macs: list[_MacRecord] = []
        self._clamped: dict[str, np.ndarray] = {}
        # Per PE: useful, padding, pointer-only, starved, stall cycles.
        self._pe = np.zeros((*lead, 5, self.config.pes), dtype=np.int64)

    def finish(self) -> Stats:
        """The statistics of the run so far (one run)."""
        assert self.lanes is None, "a batch's statistics: finish_lanes()"
        return self._lane_stats()[0]

    def finish_lanes(self) -> list[Stats]:
        """The statistics of each lane of the batch so far."""
        assert self.lanes is not None, "one run's statistics: finish()"
        return self._lane_stats()

    def lane_totals(self) -> LaneTotals:
        """What each lane of the batch added up to so far (as ``finish_lanes`` has it)."""
        count = self.lanes or 1
        _, _, layer_totals = self._sums()
        return LaneTotals(
            clock_mhz=self.config.clock_mhz,
            cycles=np.broadcast_to(self._cycles, (count,)).astype(np.int64),
            energy_pj=np.broadcast_to(self._energy, (count,)).astype(np.float64),
            saturations=np.broadcast_to(self._saturations, (count,)).astype(np.int64),
            clamped=dict(self._clamped),
            layers={
                name: (totals["macs"], totals["cycles"], totals["energy_pj"])
                for name, totals in layer_totals.items()
            },
        )

    def add_input_saturations(self, port: str, count: Any) -> None:
        """Inputs clamped while quantising a host tensor (per lane for a batch)."""
        if np.any(count):
            self._clamped[port] = np.broadcast_to(np.asarray(count, np.int64), (self.lanes or 1,))
        self._saturated({"input": port}, count)

    def _saturated(self, entry: dict[str, Any], count: Any) -> None:
        """Add ``count`` saturations (an int: in every lane, or per lane), noted as ``entry``
        in each lane that has any."""
        if (isinstance(count, int) and not count) or not np.any(count):
            return
        counts = np.broadcast_to(np.asarray(count, dtype=np.int64), (self.lanes or 1,))
        self._saturations = self._saturations + (counts if self.lanes else int(counts[0]))
        for lane in np.flatnonzero(counts).tolist():
            self._events[lane].append({**entry, "count": int(counts[lane])})

    def observe(self, event: Event, timing: Timing) -> None:
        """Account one instruction."""
        self._cycles = timing.end
        energy = self._price(timing)
        spent = sum(energy.values())
        self._energy = self._energy + spent
        for (unit, component), pj in energy.items():
            self._units[unit] = self._units.get(unit, 0.0) + pj
            self._components[component] = self._components.get(component, 0.0) + pj
        for name, count in timing.activity.items():
            self._activity[name] = self._activity.get(name, 0) + count
        mnemonic = event.instruction.MNEMONIC
        entry = self._instructions.get(mnemonic)
        if entry is None:
            entry = self._instructions[mnemonic] = [0, 0]
        entry[0] += 1
        entry[1] = entry[1] + timing.cycles
        self._saturated({"pc": event.pc, "instruction": mnemonic}, event.saturations)
        if isinstance(event, MacEvent) and timing.mac is not None:
            fields = (timing.start, timing.cycles, spent, event.saturations)
            if self.lanes is not None:  # each an array over the lanes
                fields = tuple(np.broadcast_to(field, self._lead) for field in fields)
            start, cycles, spent, saturations = fields
            self._macs.append(_MacRecord(event, start, cycles, timing.mac, spent, saturations))
            mac = timing.mac
            self._pe += np.stack([getattr(mac, name) for name in _PER_PE], axis=-2)

    def _price(self, timing: Timing) -> dict[tuple[str, str], Any]:
        """The energy of an instruction by (unit, component) (arrays over the lanes for a
        MAC of a batch; the same in every lane otherwise)."""
        config = self.config
        pe_cycles = timing.cycles * config.pes
        if isinstance(timing.cycles, np.ndarray):  # per lane: priced with arrays of counts
            return config.energy.price(timing.activity, config.machine, pe_cycles)
        key = (tuple(timing.activity.items()), timing.cycles)
        energy = self.prices.get(key)
        if energy is None:
            energy = config.energy.price(timing.activity, config.machine, pe_cycles)
            if len(self.prices) < _PRICES:
                self.prices[key] = energy
        return energy

    def _sums(
        self,
    ) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """The observed MACs' fields that add up (:func:`_mac_fields`, one dict per MAC), and
        their sums over the run and by layer (``macs`` and the ``_TOTALLED`` fields), each an
        array over the lanes, added in the order the MACs ran."""
        count = self.lanes or 1
        fields = [_mac_fields(record, self.config.pes) for record in self._macs]
        run_totals = {name: np.zeros(count, dtype=np.int64) for name in _RUN_TOTALS}
        run_totals["ideal_cycles"] = np.zeros(count)
        layer_totals: dict[str, dict[str, Any]] = {}
        for record, summed in zip(self._macs, fields, strict=True):
            for name, field_name in _RUN_TOTALS.items():
                run_totals[name] += summed[field_name]
            layer = layer_totals.setdefault(record.event.layer.name, {"macs": 0})  # type: ignore[union-attr]
            layer["macs"] += 1
            for name in _TOTALLED:
                layer[name] = layer.get(name, 0) + summed[name]
        return fields, run_totals, layer_totals

    def _lane_stats(self) -> list[Stats]:
        """Each lane's statistics (one for one run): every count read out of its array once
        for all lanes, the MACs' totals added up over the lanes in the order they ran."""
        config = self.config
        pe_mm2, chip_mm2, _, _ = self.base
        count = self.lanes or 1
        fields, run_totals, layer_totals = self._sums()
        records = [
            _mac_stats(record, summed, config.pes)
            for record, summed in zip(self._macs, fields, strict=True)
        ]
        columns = {
            "cycles": self._cycles,
            "energy_pj": self._energy,
            "saturations": self._saturations,
            **{f"unit {unit}": pj for unit, pj in self._units.items()},
            **{f"component {part}": pj for part, pj in self._components.items()},
            **{f"activity {name}": value for name, value in self._activity.items()},
            **{f"cycles of {name}": cycles for name, (_, cycles) in self._instructions.items()},
            **run_totals,
        }
        lanes = _by_lane(columns, count)
        pe_tables = self._pe.reshape(count, 5, config.pes).tolist()
        layers = {name: _by_lane(totals, count) for name, totals in layer_totals.items()}
        runs = []
        for lane, values in enumerate(lanes):
            stats = Stats(
                pes=config.pes,
                fifo_depth=config.fifo_depth,
                clock_mhz=config.clock_mhz,
                arith=config.arith,
                cycles=values["cycles"],
                energy_pj=values["energy_pj"],
                energy_breakdown_pj={unit: values[f"unit {unit}"] for unit in self._units},
                energy_components_pj={
                    part: values[f"component {part}"] for part in self._components
                },
                process=config.energy.process,
                pe_area_mm2=pe_mm2,
                chip_area_mm2=chip_mm2,
                saturations=values["saturations"],
                saturation_events=list(self._events[lane]),
                activity={name: values[f"activity {name}"] for name in self._activity},
                instructions={
                    name: {"count": times, "cycles": values[f"cycles of {name}"]}
                    for name, (times, _) in self._instructions.items()
                },
                layers=[per_lane[lane] for per_lane in records],
                layer_totals=[
                    _layer_totals(name, totals[lane], config.pes) for name, totals in layers.items()
                ],
                pe_table=pe_tables[lane],
                **{name: values[name] for name in _RUN_TOTALS},
            )
            runs.append(stats)
        return runs


#: The run's totals of its MACs (Stats field: the MAC record's field added up).
_RUN_TOTALS = {
    "useful_macs": "useful_macs",
    "padding_entries": "padding_entries",
    "pointer_cycles": "pointer_cycles",
    "starved_cycles": "starved_cycles",
    "stall_cycles": "stall_cycles",
    "ideal_cycles": "ideal_cycles",
    "mac_window_cycles": "window",
    "dram_bytes": "dram_bytes",
    "dram_stall_cycles": "dram_stall_cycles",
}


def _by_lane(columns: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``columns`` (name -> a value or an array over the lanes) as one dict per lane of
    Python numbers."""
    names = list(columns)
    values = []
    for name in names:
        value = columns[name]
        if isinstance(value, np.ndarray | np.generic):
            listed = np.asarray(value).reshape(-1).tolist()
            values.append(listed if len(listed) == count else listed * count)
        else:  # a Python number: the same in every lane
            values.append([value] * count)
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def _layer_totals(name: str, totals: dict[str, Any], pes: int) -> LayerTotals:
    """One lane's totals of a layer's MACs."""
    layer = LayerTotals(layer=name, **totals)
    layer.memory_bound = layer.transfer_cycles > layer.compute_cycles
    layer.alu_utilization = _ratio(layer.useful_macs, pes * layer.cycles)
    layer.load_efficiency = 1.0 - _ratio(layer.starved_cycles, pes * layer.window)
    return layer


def _mac_fields(record: _MacRecord, pes: int) -> dict[str, np.ndarray]:
    """The fields of an observed MAC that add up into totals, each an array over the lanes."""
    mac = record.mac

    def lanes(value: Any) -> np.ndarray:
        return np.asarray(value).reshape(-1)

    def per_pe(name: str) -> np.ndarray:
        return np.asarray(getattr(mac, name)).reshape(-1, pes).sum(axis=1)

    return {
        "cycles": lanes(record.cycles),
        "window": lanes(mac.window),
        "broadcasts": lanes(mac.broadcasts),
        "useful_macs": per_pe("busy"),
        "padding_entries": per_pe("padding"),
        "pointer_cycles": per_pe("pointer"),
        "starved_cycles": per_pe("starved"),
        "stall_cycles": lanes(mac.stall_cycles),
        "ideal_cycles": lanes(mac.ideal_cycles).astype(np.float64),
        "energy_pj": lanes(record.energy_pj).astype(np.float64),
        "dram_bytes": lanes(mac.dram_bytes),
        "dram_stall_cycles": lanes(mac.dram_stall_cycles),
        "transfer_cycles": lanes(mac.transfer_cycles).astype(np.float64),
        "compute_cycles": lanes(mac.compute_cycles),
    }


def _mac_stats(record: _MacRecord, fields: dict[str, np.ndarray], pes: int) -> list[MacStats]:
    """The :class:`MacStats` of each lane of an observed MAC (one for one run), from its
    fields that add up (:func:`_mac_fields`)."""
    event = record.event
    assert event.layer is not None
    count = fields["cycles"].size
    extra = {"start_cycle": record.start, "saturations": record.saturations}
    per_lane = _by_lane({**fields, **extra}, count)
    per_pe = [np.asarray(getattr(record.mac, name)).reshape(-1, pes).tolist() for name in _PER_PE]
    return [
        MacStats(
            layer=event.layer.name,
            step=event.step,
            pc=event.pc,
            stream_length=event.stream_length,
            **values,
            alu_utilization=_ratio(values["useful_macs"], pes * values["cycles"]),
            load_efficiency=1.0 - _ratio(values["starved_cycles"], pes * values["window"]),
            memory_bound=values["transfer_cycles"] > values["compute_cycles"],
            pe_useful_macs=busy,
            pe_padding_cycles=padding,
            pe_pointer_cycles=pointer,
            pe_starved_cycles=starved,
            pe_stall_cycles=stall,
        )
        for values, busy, padding, pointer, starved, stall in zip(per_lane, *per_pe, strict=True)
    ]
