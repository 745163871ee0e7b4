"""The cycle model of isa/SPEC.md §6, as an observer of executed instructions.

The heart is :func:`schedule`, the activation-queue recurrence of a ``sparse-column-mac``:
item k (the k-th non-zero activation) is broadcast at
``b_k = max(b_{k-1} + 1, max_p f[p, k - D])`` and PE p works on it from
``s[p, k] = max(b_k, f[p, k-1])`` to ``f[p, k] = s[p, k] + w[p, k]``. It loops over the K items
with numpy vectors over the PEs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eiec.emulator.config import ResolvedConfig
from eiec.emulator.events import (
    BroadcastEvent,
    CodebookEvent,
    ElementwiseEvent,
    Event,
    HaltEvent,
    MacEvent,
    MacTiming,
    Timing,
    WritebackEvent,
)
from eiec.emulator.layers import LayerTables


@dataclass(frozen=True)
class Schedule:
    """The outcome of the queue recurrence: ``finish`` = ``max_p f[p, K-1]`` (0 when K = 0),
    per-PE broadcast-stall cycles ``stall`` and the total stalled cycles ``stall_cycles``."""

    finish: int
    stall: np.ndarray
    stall_cycles: int


def schedule(work: np.ndarray, depth: int) -> Schedule:
    """Run the queue recurrence on ``work`` (K x N: cycles PE p spends on item k).

    While the broadcast of item k waits for a queue slot (cycles ``b_{k-1} + 1 .. b_k - 1``),
    PE p's queue is full exactly as long as it has not finished item ``k - D``; those cycles are
    attributed to p.
    """
    items, pes = work.shape
    stall = np.zeros(pes, dtype=np.int64)
    if items == 0:
        return Schedule(finish=0, stall=stall, stall_cycles=0)
    finish = np.empty((items, pes), dtype=np.int64)
    latest = np.empty(items, dtype=np.int64)
    previous = np.zeros(pes, dtype=np.int64)
    stall_cycles = 0
    sent = -1
    for k in range(items):
        send = sent + 1
        if k >= depth and latest[k - depth] > send:
            stall_cycles += int(latest[k - depth]) - send
            stall += np.maximum(finish[k - depth] - send, 0)
            send = int(latest[k - depth])
        current = finish[k]
        np.maximum(previous, send, out=current)
        current += work[k]
        latest[k] = current.max()
        previous = current
        sent = send
    return Schedule(finish=int(latest[-1]), stall=stall, stall_cycles=stall_cycles)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class CycleModel:
    """Times each executed instruction (isa/SPEC.md §6); instructions run back to back."""

    def __init__(self, config: ResolvedConfig) -> None:
        self.config = config
        self.now = 0

    def reset(self) -> None:
        """Start a new run at cycle 0."""
        self.now = 0

    def time(self, event: Event) -> Timing:
        """The timing of ``event``, starting where the previous instruction ended."""
        costs = self.config.costs
        pes = self.config.pes
        mac = None
        activity: dict[str, int] = {}
        match event:
            case MacEvent():
                assert event.layer is not None
                mac, activity = self._mac(event.layer, event.columns, event.stream_length)
                cycles = 0
                if mac.broadcasts:
                    cycles = costs.lnzd_latency + mac.window + costs.alu_latency
            case CodebookEvent():
                cycles = event.size * costs.codebook_entry
                activity = {"codebook_write": event.size * pes}
            case WritebackEvent():
                cycles = _ceil_div(event.rows, pes * costs.writeback_rows_per_cycle)
                activity = {"act_write": event.rows}
            case ElementwiseEvent():
                latency = costs.lut_latency if event.op == "lut" else costs.ew_latency
                cycles = _ceil_div(event.length, pes) + latency
                activity = {
                    "act_read": event.length * event.sources,
                    "act_write": event.length,
                }
                if event.op != "copy":
                    activity[f"ew_{event.op}" if event.op != "lut" else "lut"] = event.length
            case BroadcastEvent() | HaltEvent():
                cycles = 0
            case _:
                raise TypeError(f"no cycle rule for {type(event).__name__}")
        timing = Timing(start=self.now, cycles=cycles, activity=activity, mac=mac)
        self.now += cycles
        return timing

    def _mac(
        self, layer: LayerTables, columns: np.ndarray, stream_length: int
    ) -> tuple[MacTiming, dict[str, int]]:
        pes = self.config.pes
        entries = layer.entries[columns]
        real = layer.real[columns]
        work = np.maximum(entries, 1)
        plan = schedule(work, self.config.fifo_depth)
        busy = real.sum(axis=0)
        padding = entries.sum(axis=0) - busy
        pointer = np.count_nonzero(entries == 0, axis=0)
        stored = int(entries.sum())
        timing = MacTiming(
            window=plan.finish,
            broadcasts=int(columns.size),
            busy=busy,
            padding=padding,
            pointer=pointer,
            starved=plan.finish - busy - padding - pointer,
            stall=plan.stall,
            stall_cycles=plan.stall_cycles,
            ideal_cycles=stored / pes,
        )
        items = int(columns.size)
        activity = {
            "act_read": stream_length,
            "fifo_access": items * pes,
            "ptr_read": items * pes,
            "spmat_read": int(layer.spmat_words[columns].sum()),
            "codebook_lookup": stored,
            "multiply": stored,
            "accumulate": stored,
        }
        return timing, activity
