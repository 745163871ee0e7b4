"""A picture of where the PEs' cycles went: per PE, useful / padding / pointer-only / starved,
and the broadcast stalls each PE's full queue caused; per MAC, cycles against the ideal."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np

from eiec.emulator.stats import Stats
from eiec.errors import EmulatorError
from eiec.fileio import write_atomic

#: (PeStats field, legend label, colour) of the stacked bars, bottom to top: the first four
#: rows of ``Stats.pe_table``, in order.
PE_CYCLES = (
    ("useful_macs", "useful MAC", "#2a7ab9"),
    ("padding_cycles", "padding entry", "#f2a23a"),
    ("pointer_cycles", "pointer read only", "#9c6ad3"),
    ("starved_cycles", "starved (queue empty)", "#c9c9c9"),
)


def plot_run(runs: Sequence[Stats], path: str | os.PathLike[str]) -> None:
    """Save a PNG of the PE cycle breakdown and the per-MAC timing of ``runs`` (summed)."""
    try:
        import matplotlib  # lazy: matplotlib, an optional dependency

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # lazy: matplotlib
    except ImportError as error:
        raise EmulatorError(
            "cannot plot: matplotlib is not installed",
            where=str(path),
            fix="pip install 'eiec[plot]'",
        ) from error
    first = runs[0]
    pes = np.arange(first.pes)
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6), width_ratios=(3, 2))

    bottom = np.zeros(first.pes)
    # Per PE over the runs: useful, padding, pointer-only, starved, stall cycles (Stats.pe_table).
    table = np.sum([np.asarray(run.pe_table, dtype=float) for run in runs], axis=0)
    for values, (_, label, colour) in zip(table, PE_CYCLES, strict=False):
        left.bar(pes, values, bottom=bottom, width=1.0, color=colour, label=label)
        bottom += values
    stalls = table[4]
    left.plot(pes, stalls, color="#c0392b", lw=1.2, label="broadcast stalled on its queue")
    left.set(
        xlabel="PE",
        ylabel="cycles (MAC windows)",
        title=f"Where each PE's cycles went ({len(runs)} run(s), FIFO depth {first.fifo_depth})",
        xlim=(-0.5, first.pes - 0.5),
    )
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=5)

    names = [f"{mac.layer}:{mac.step}" for mac in first.layers]
    cycles = [sum(run.layers[i].cycles for run in runs) for i in range(len(names))]
    ideal = [sum(run.layers[i].ideal_cycles for run in runs) for i in range(len(names))]
    rows = np.arange(len(names))
    right.barh(rows, cycles, color="#2a7ab9", label="emulated")
    right.barh(rows, ideal, height=0.35, color="#f2a23a", label="ideal (entries / N)")
    right.set_yticks(rows, names, fontsize=7 if len(names) > 12 else 9)
    right.invert_yaxis()
    right.set(xlabel="cycles", title="sparse-column-mac: cycles vs ideal")
    right.legend(fontsize=8)

    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    plt.close(figure)
    write_atomic(path, image.getvalue())
