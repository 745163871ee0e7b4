"""Where a program's weights live: on chip, or in DRAM streamed chunk by chunk (``--weights``).

``sram`` holds every layer in the PEs' SRAMs (a layer that does not fit is a CapacityError);
``dram`` streams every layer; ``auto`` (the default) holds them all on chip when they fit and
otherwise streams the layers :func:`eiec.isa.capacity.layers_to_stream` picks (the largest,
as few as leave the others within three quarters of the SRAMs). A streamed layer is cut into
chunks that fit half the SRAM the on-chip layers leave (double buffering; at least
``MIN_CHUNKS`` of them where the layer is large enough, :func:`eiec.isa.capacity.plan_chunks`),
and each of its MACs is preceded by a ``stream-chunk`` per chunk
(:func:`eiec.isa.capacity.stream_layers`).

:func:`stream_report` says, for the compile report, what streaming costs each streamed layer
when every activation is non-zero (the most work a MAC can have): its bytes, its cycles
with and without waiting for DRAM, and whether it is memory-bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from eiec.emulator.cycles import mac_costs
from eiec.emulator.layers import LayerTables
from eiec.errors import CapacityError
from eiec.isa.capacity import chunk_space, layers_to_stream, stream_layers
from eiec.isa.program import Program

WeightsMode = Literal["auto", "sram", "dram"]
WEIGHTS_MODES: tuple[str, ...] = ("auto", "sram", "dram")


def place_weights(program: Program, mode: WeightsMode) -> tuple[Program, list[str]]:
    """``program`` with its layers placed by ``mode`` (module docstring), and the names of the
    layers it streams. CapacityError when a streamed layer's single column does not fit."""
    if mode not in WEIGHTS_MODES:
        raise CapacityError(
            f"unknown weights placement {mode!r}", fix=f"use one of {', '.join(WEIGHTS_MODES)}"
        )
    layers = list(program.layers.values())
    if mode == "sram":
        return program, []
    names = (
        [layer.name for layer in layers]
        if mode == "dram"
        else layers_to_stream(program.machine, layers)
    )
    if not names:
        return program, []
    try:
        return stream_layers(program, names), names
    except ValueError as error:
        machine = program.machine
        space = chunk_space(machine, [layer for layer in layers if layer.name not in names])
        raise CapacityError(
            "cannot be streamed: one column of it does not fit half of what the on-chip "
            f"layers leave of a PE's SRAMs ({int(space.entries.min())} entries, "
            f"{space.pointer_bits // 8} bytes of pointers)",
            where=f"layer {error.args[0]}",
            fix="use more PEs or a machine with more SRAM"
            + (", or --weights dram (no layer on chip)" if len(names) < len(layers) else ""),
        ) from None


@dataclass(frozen=True)
class StreamReport:
    """A streamed layer at its densest: every activation non-zero (one MAC).

    ``chunks``: its chunk count; ``dram_bytes``: bytes one MAC streams; ``transfer_cycles``:
    their transfer times added up; ``compute_cycles``: the MAC's cycles were every chunk on
    chip; ``cycles``: with the chunks streamed; ``dram_stall_cycles``: the difference;
    ``memory_bound``: the transfers take longer than the computation.
    """

    layer: str
    chunks: int
    dram_bytes: int
    transfer_cycles: float
    compute_cycles: int
    cycles: int
    dram_stall_cycles: int
    memory_bound: bool

    def to_json(self) -> dict[str, object]:
        """The figures as JSON-ready data."""
        return asdict(self)


def stream_report(program: Program) -> list[StreamReport]:
    """A :class:`StreamReport` for each streamed layer of ``program``."""
    reports = []
    for layer in program.layers.values():
        if layer.chunks is None:
            continue
        tables = LayerTables.build(layer)
        columns = np.arange(layer.cols)
        ((timing, _),) = mac_costs(program.machine, tables, [columns], [layer.cols])
        cycles = timing.compute_cycles + timing.dram_stall_cycles
        reports.append(
            StreamReport(
                layer=layer.name,
                chunks=len(layer.chunks) - 1,
                dram_bytes=timing.dram_bytes,
                transfer_cycles=timing.transfer_cycles,
                compute_cycles=timing.compute_cycles,
                cycles=cycles,
                dram_stall_cycles=timing.dram_stall_cycles,
                memory_bound=timing.memory_bound,
            )
        )
    return reports


def stream_table(reports: list[StreamReport], machine_gbps: float) -> object:
    """A ``rich.table.Table`` of the streamed layers."""
    from rich.table import Table  # lazy: rich

    table = Table(
        title=f"Weights streamed from DRAM ({machine_gbps:g} GB/s; one MAC, every activation "
        "non-zero)"
    )
    for header in ("layer", "chunks", "MB", "transfer", "compute", "DRAM stall", "bound"):
        table.add_column(header, justify="left" if header in ("layer", "bound") else "right")
    for report in reports:
        table.add_row(
            report.layer,
            str(report.chunks),
            f"{report.dram_bytes / 1e6:.3f}",
            f"{report.transfer_cycles:,.0f}",
            f"{report.compute_cycles:,}",
            f"{report.dram_stall_cycles:,}",
            "memory" if report.memory_bound else "compute",
        )
    return table
