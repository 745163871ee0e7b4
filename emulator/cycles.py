"""The cycle model of isa/SPEC.md §6, as an observer of executed instructions.

The heart is :func:`schedule`, the EIE pipeline of a ``sparse-column-mac`` (paper section IV):
the CCU broadcasts item k (the k-th non-zero activation) into every PE's queue in cycle
``b_k = max(b_{k-1} + 1, max_p t[p, k - D] + 1)`` (``b_0 = lnzd_latency``; a queue of depth D
holds D items, a slot freeing when the pointer-read unit takes its item); PE p's pointer-read
unit takes item k in cycle ``t[p, k] = max(b_k + queue_latency, t[p, k-1] + w[p, k-1])``, and
its entries are read one per cycle from ``t[p, k] + ptr_latency`` on (the next pointer read
overlapping the last entry). It loops over the K items with numpy vectors over the PEs.
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
from eiec.isa.program import Machine


@dataclass(frozen=True)
class Schedule:
    """The outcome of the pipeline recurrence.

    ``window``: the span of the PEs' entry stage, from the first cycle an entry can be read
    (``lnzd_latency + queue_latency + ptr_latency``) to the last PE's last slot (0 when K = 0);
    ``stall``: per-PE broadcast-stall cycles; ``stall_cycles``: cycles the broadcast stalled.
    """

    window: int
    stall: np.ndarray
    stall_cycles: int


def schedule(
    work: np.ndarray, depth: int, lnzd_latency: int = 1, queue_latency: int = 1
) -> Schedule:
    """Run the pipeline recurrence on ``work`` (K x N: entry-stage cycles, ``max(1, n)``, PE p
    spends on item k) with queues of ``depth`` items.

    While the broadcast of item k waits for a queue slot (cycles ``b_{k-1} + 1 .. b_k - 1``),
    PE p's queue is full for as long as it has not taken item ``k - D`` (cycles up to
    ``t[p, k-D]``); those cycles are attributed to p.
    """
    items, pes = work.shape
    stall = np.zeros(pes, dtype=np.int64)
    if items == 0:
        return Schedule(window=0, stall=stall, stall_cycles=0)
    take = np.empty((items, pes), dtype=np.int64)
    last_take = np.empty(items, dtype=np.int64)
    free = np.full(pes, np.iinfo(np.int64).min // 2, dtype=np.int64)
    stall_cycles = 0
    sent = lnzd_latency - 1
    for k in range(items):
        send = sent + 1
        if k >= depth and last_take[k - depth] >= send:
            released = int(last_take[k - depth]) + 1
            stall_cycles += released - send
            stall += np.maximum(take[k - depth] - sent, 0)
            send = released
        current = take[k]
        np.maximum(free, send + queue_latency, out=current)
        last_take[k] = current.max()
        free = current + work[k]
        sent = send
    window = int(free.max()) - lnzd_latency - queue_latency
    return Schedule(window=window, stall=stall, stall_cycles=stall_cycles)


def mac_latency(machine: Machine) -> int:
    """A MAC's cycles beyond its entry-stage window: the fill (LNZD, queue, pointer read) and
    the arithmetic pipeline's drain after the last entry is read."""
    fill = machine.lnzd_latency + machine.queue_latency + machine.ptr_latency
    return fill + machine.alu_stages - 1


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
        machine = self.config.machine
        pes = machine.pes
        mac = None
        activity: dict[str, int] = {}
        match event:
            case MacEvent():
                assert event.layer is not None
                mac, activity = self._mac(event.layer, event.columns, event.stream_length)
                cycles = 0
                if mac.broadcasts:
                    cycles = mac.window + mac_latency(machine)
            case CodebookEvent():
                cycles = event.size * machine.codebook_cycles
                activity = {"codebook_write": event.size * pes}
            case WritebackEvent():
                cycles = _ceil_div(event.rows, pes * machine.writeback_rows)
                activity = {"act_write": event.rows}
            case ElementwiseEvent():
                latency = machine.lut_latency if event.op == "lut" else machine.ew_latency
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
        machine = self.config.machine
        pes = machine.pes
        entries = layer.entries[columns]
        real = layer.real[columns]
        work = np.maximum(entries, 1)
        plan = schedule(work, machine.fifo_depth, machine.lnzd_latency, machine.queue_latency)
        busy = real.sum(axis=0)
        padding = entries.sum(axis=0) - busy
        pointer = np.count_nonzero(entries == 0, axis=0)
        stored = int(entries.sum())
        timing = MacTiming(
            window=plan.window,
            broadcasts=int(columns.size),
            busy=busy,
            padding=padding,
            pointer=pointer,
            starved=plan.window - busy - padding - pointer,
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
