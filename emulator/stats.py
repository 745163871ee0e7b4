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

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from eiec.emulator.config import ResolvedConfig
from eiec.emulator.events import Event, MacEvent, Timing


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
    pe_stats: list[PeStats] = field(default_factory=list)

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
        data.pop("pe_stats")
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


#: The most (activity, cycles) keys a collector keeps the energy of.
_PRICES = 4096


class StatsCollector:
    """The observer that builds :class:`Stats` (energy priced with the config's table)."""

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

    def _fresh(self) -> Stats:
        config = self.config
        pe_mm2, chip_mm2, units, components = self.base
        return Stats(
            pes=config.pes,
            fifo_depth=config.fifo_depth,
            clock_mhz=config.clock_mhz,
            arith=config.arith,
            energy_breakdown_pj=dict.fromkeys(units, 0.0),
            energy_components_pj=dict.fromkeys(components, 0.0),
            process=config.energy.process,
            pe_area_mm2=pe_mm2,
            chip_area_mm2=chip_mm2,
        )

    def reset(self) -> None:
        """Start over."""
        self.stats = self._fresh()
        self._totals: dict[str, LayerTotals] = {}
        self._activity: Counter[str] = Counter()
        # Per PE: useful, padding, pointer-only, starved, stall cycles.
        self._pe = np.zeros((5, self.config.pes), dtype=np.int64)

    def finish(self) -> Stats:
        """The statistics of the run so far."""
        self.stats.pe_stats = [
            PeStats(pe, *column) for pe, column in enumerate(self._pe.T.tolist())
        ]
        return self.stats

    def add_input_saturations(self, port: str, count: int) -> None:
        """Inputs clamped while quantising a host tensor."""
        if count:
            self.stats.saturations += count
            self.stats.saturation_events.append({"input": port, "count": count})

    def observe(self, event: Event, timing: Timing) -> None:
        """Account one instruction."""
        stats = self.stats
        stats.cycles = timing.end
        config = self.config
        key = (tuple(timing.activity.items()), timing.cycles)
        energy = self.prices.get(key)
        if energy is None:
            pe_cycles = timing.cycles * config.pes
            energy = config.energy.price(timing.activity, config.machine, pe_cycles)
            if len(self.prices) < _PRICES:
                self.prices[key] = energy
        spent = sum(energy.values())
        stats.energy_pj += spent
        for (unit, component), pj in energy.items():
            stats.energy_breakdown_pj[unit] = stats.energy_breakdown_pj.get(unit, 0.0) + pj
            parts = stats.energy_components_pj
            parts[component] = parts.get(component, 0.0) + pj
        self._activity.update(timing.activity)
        stats.activity = dict(self._activity)
        mnemonic = event.instruction.MNEMONIC
        entry = stats.instructions.setdefault(mnemonic, {"count": 0, "cycles": 0})
        entry["count"] += 1
        entry["cycles"] += timing.cycles
        if event.saturations:
            stats.saturations += event.saturations
            stats.saturation_events.append(
                {"pc": event.pc, "instruction": mnemonic, "count": event.saturations}
            )
        if isinstance(event, MacEvent) and timing.mac is not None:
            self._mac(event, timing, spent)

    def _mac(self, event: MacEvent, timing: Timing, energy_pj: float) -> None:
        assert event.layer is not None and timing.mac is not None
        mac, stats, pes = timing.mac, self.stats, self.config.pes
        record = MacStats(
            layer=event.layer.name,
            step=event.step,
            pc=event.pc,
            start_cycle=timing.start,
            cycles=timing.cycles,
            window=mac.window,
            broadcasts=mac.broadcasts,
            stream_length=event.stream_length,
            useful_macs=int(mac.busy.sum()),
            padding_entries=int(mac.padding.sum()),
            pointer_cycles=int(mac.pointer.sum()),
            starved_cycles=int(mac.starved.sum()),
            stall_cycles=mac.stall_cycles,
            ideal_cycles=mac.ideal_cycles,
            alu_utilization=_ratio(mac.busy.sum(), pes * timing.cycles),
            load_efficiency=1.0 - _ratio(mac.starved.sum(), pes * mac.window),
            energy_pj=energy_pj,
            saturations=event.saturations,
            dram_bytes=mac.dram_bytes,
            dram_stall_cycles=mac.dram_stall_cycles,
            transfer_cycles=mac.transfer_cycles,
            compute_cycles=mac.compute_cycles,
            memory_bound=mac.memory_bound,
            pe_useful_macs=mac.busy.tolist(),
            pe_padding_cycles=mac.padding.tolist(),
            pe_pointer_cycles=mac.pointer.tolist(),
            pe_starved_cycles=mac.starved.tolist(),
            pe_stall_cycles=mac.stall.tolist(),
        )
        stats.layers.append(record)
        stats.useful_macs += record.useful_macs
        stats.padding_entries += record.padding_entries
        stats.pointer_cycles += record.pointer_cycles
        stats.starved_cycles += record.starved_cycles
        stats.stall_cycles += record.stall_cycles
        stats.ideal_cycles += record.ideal_cycles
        stats.mac_window_cycles += record.window
        stats.dram_bytes += record.dram_bytes
        stats.dram_stall_cycles += record.dram_stall_cycles
        self._pe += np.stack((mac.busy, mac.padding, mac.pointer, mac.starved, mac.stall))
        totals = self._totals.get(record.layer)
        if totals is None:
            totals = self._totals[record.layer] = LayerTotals(layer=record.layer)
            stats.layer_totals.append(totals)
        totals.macs += 1
        for name in (
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
        ):
            setattr(totals, name, getattr(totals, name) + getattr(record, name))
        totals.memory_bound = totals.transfer_cycles > totals.compute_cycles
        totals.alu_utilization = _ratio(totals.useful_macs, pes * totals.cycles)
        totals.load_efficiency = 1.0 - _ratio(totals.starved_cycles, pes * totals.window)
