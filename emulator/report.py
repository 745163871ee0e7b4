"""Rich tables of :class:`~eiec.emulator.stats.Stats` (imported only when rendering)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table

if TYPE_CHECKING:
    from eiec.emulator.stats import Stats


def render_stats(stats: Stats) -> Group:
    """Summary, one row per MAC, energy by unit, and the PEs' totals."""
    summary = Table(title="EIE emulation", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    rows = [
        ("PEs / FIFO depth / clock", f"{stats.pes} / {stats.fifo_depth} / {stats.clock_mhz} MHz"),
        ("arithmetic", stats.arith),
        ("cycles", f"{stats.cycles:,}"),
        ("time", f"{stats.time_us:,.3f} us"),
        ("ideal (theoretical) cycles", f"{stats.ideal_cycles:,.1f}"),
        ("useful MACs", f"{stats.useful_macs:,}"),
        ("padding entries", f"{stats.padding_entries:,}"),
        ("ALU utilisation", f"{stats.alu_utilization:.1%}"),
        ("load efficiency", f"{stats.load_efficiency:.1%}"),
        ("broadcast stall cycles", f"{stats.stall_cycles:,}"),
        *(
            [
                ("DRAM bytes streamed", f"{stats.dram_bytes:,}"),
                ("DRAM stall cycles", f"{stats.dram_stall_cycles:,}"),
            ]
            if stats.dram_bytes
            else []
        ),
        ("energy", f"{stats.energy_pj / 1e3:,.3f} nJ"),
        ("average power", f"{stats.power_mw:,.1f} mW"),
        ("GOP/s (compressed) / GOP/s/W", f"{stats.gops:,.1f} / {stats.gops_per_w:,.1f}"),
        (
            f"area ({stats.process or 'chip'}): chip / PE",
            f"{stats.chip_area_mm2:,.2f} / {stats.pe_area_mm2:,.4f} mm^2",
        ),
        ("saturations", f"{stats.saturations:,}"),
    ]
    for what, value in rows:
        summary.add_row(what, value)

    macs = Table(title="sparse-column-mac (cycles; K = broadcast non-zeros)")
    headers = ("layer", "step", "cycles", "ideal", "K", "stalled", "ALU", "load", "nJ")
    for name in headers:
        macs.add_column(name, justify="left" if name == "layer" else "right", no_wrap=True)
    for mac in stats.layers:
        macs.add_row(
            mac.layer,
            str(mac.step),
            f"{mac.cycles:,}",
            f"{mac.ideal_cycles:,.0f}",
            f"{mac.broadcasts:,}",
            f"{mac.stall_cycles:,}",
            f"{mac.alu_utilization:.0%}",
            f"{mac.load_efficiency:.0%}",
            f"{mac.energy_pj / 1e3:,.1f}",
        )

    groups = [summary, macs]
    if stats.dram_bytes:
        groups.append(_streamed(stats))

    energy = Table(title="energy by unit and by component")
    energy.add_column("unit")
    energy.add_column("nJ", justify="right")
    energy.add_column("share", justify="right")
    energy.add_column("component")
    energy.add_column("nJ", justify="right")
    energy.add_column("share", justify="right")
    units = [(unit, pj) for unit, pj in stats.energy_breakdown_pj.items() if unit != "dram" or pj]
    components = [(c, pj) for c, pj in stats.energy_components_pj.items() if c != "dram" or pj]
    for row in range(max(len(units), len(components))):
        cells: list[str] = []
        for items in (units, components):
            if row < len(items):
                name, pj = items[row]
                share = pj / stats.energy_pj if stats.energy_pj else 0.0
                cells += [name, f"{pj / 1e3:,.3f}", f"{share:.1%}"]
            else:
                cells += ["", "", ""]
        energy.add_row(*cells)

    pes = Table(title="PEs (cycles in MAC windows)")
    for name in ("", "useful", "padding", "pointer", "starved", "stalled"):
        pes.add_column(name, justify="right")
    fields = ("useful_macs", "padding_cycles", "pointer_cycles", "starved_cycles", "stall_cycles")
    if stats.pe_stats:
        for label, pick in (("min", min), ("max", max)):
            pes.add_row(
                label, *(f"{pick(getattr(p, f) for p in stats.pe_stats):,}" for f in fields)
            )
        count = len(stats.pe_stats)
        pes.add_row(
            "mean", *(f"{sum(getattr(p, f) for p in stats.pe_stats) / count:,.1f}" for f in fields)
        )
    return Group(*groups, energy, pes)


def _streamed(stats: Stats) -> Table:
    """Per layer: compute- or memory-bound, bytes streamed, DRAM stall cycles."""
    table = Table(title="layers streamed from DRAM (all MACs of each)")
    headers = ("layer", "bound", "MB streamed", "transfer", "compute", "DRAM stall", "cycles")
    for name in headers:
        table.add_column(name, justify="left" if name in ("layer", "bound") else "right")
    for totals in stats.layer_totals:
        if not totals.dram_bytes:
            continue
        table.add_row(
            totals.layer,
            "memory" if totals.memory_bound else "compute",
            f"{totals.dram_bytes / 1e6:,.3f}",
            f"{totals.transfer_cycles:,.0f}",
            f"{totals.compute_cycles:,}",
            f"{totals.dram_stall_cycles:,}",
            f"{totals.cycles:,}",
        )
    return table
