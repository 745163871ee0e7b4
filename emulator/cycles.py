"""The cycle model of isa/SPEC.md §6, as an observer of executed instructions.

The heart is :func:`schedule`, the EIE pipeline of a ``sparse-column-mac`` (paper section IV):
the CCU broadcasts item k (the k-th non-zero activation) into every PE's queue in cycle
``b_k = max(b_{k-1} + 1, max_p t[p, k - D] + 1)`` (``b_0 = lnzd_latency``; a queue of depth D
holds D items, a slot freeing when the pointer-read unit takes its item); PE p's pointer-read
unit takes item k in cycle ``t[p, k] = max(b_k + queue_latency, t[p, k-1] + w[p, k-1])``, and
its entries are read one per cycle from ``t[p, k] + ptr_latency`` on (the next pointer read
overlapping the last entry). :func:`schedules` runs it for a batch of samples at once, one
loop over the K items with numpy over samples x PEs; :func:`schedule` is its one-sample case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from eiec.emulator.config import DRAM_EVENT, ResolvedConfig
from eiec.emulator.events import (
    BroadcastEvent,
    CodebookEvent,
    ElementwiseEvent,
    Event,
    HaltEvent,
    MacEvent,
    MacTiming,
    StreamEvent,
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


@dataclass(frozen=True)
class Schedules:
    """The recurrence of B samples: ``window`` (B,), ``stall`` (B x N), ``stall_cycles`` (B,),
    each row as :class:`Schedule` has it."""

    window: np.ndarray
    stall: np.ndarray
    stall_cycles: np.ndarray

    def __getitem__(self, sample: int) -> Schedule:
        """The schedule of one sample."""
        return Schedule(
            window=int(self.window[sample]),
            stall=self.stall[sample],
            stall_cycles=int(self.stall_cycles[sample]),
        )


def schedule(
    work: np.ndarray,
    depth: int,
    lnzd_latency: int = 1,
    queue_latency: int = 1,
    gate: DramGate | None = None,
    scan: np.ndarray | None = None,
) -> Schedule:
    """Run the pipeline recurrence on ``work`` (K x N: entry-stage cycles, ``max(1, n)``, PE p
    spends on item k) with queues of ``depth`` items (:func:`schedules` of one sample)."""
    items = np.arange(work.shape[0], dtype=np.int64)[:, None]
    counts = np.array([work.shape[0]], dtype=np.int64)
    scans = None if scan is None else scan[:, None]
    return schedules(work, items, counts, depth, lnzd_latency, queue_latency, gate, scans)[0]


def schedules(
    table: np.ndarray,
    items: np.ndarray,
    counts: np.ndarray,
    depth: int,
    lnzd_latency: int = 1,
    queue_latency: int = 1,
    gate: DramGate | None = None,
    scan: np.ndarray | None = None,
) -> Schedules:
    """Run the pipeline recurrence of B samples at once: one loop over the items, numpy over
    (samples x PEs). With ``gate`` (one sample only: a streamed layer's MAC), PE p also takes
    item k no earlier than its chunk has arrived in p's SRAMs (``DramGate``), which it is told
    when each chunk's items are done. With ``scan`` (K_max x B), the detector spends
    ``scan[k, b]`` more cycles before it can broadcast item k (:func:`group_scan`):
    ``b_k >= b_{k-1} + 1 + scan[k]``, cycles in which it has no item to send (not stalls).

    Sample b broadcasts ``counts[b]`` items; its item k costs PE p ``table[items[k, b], p]``
    entry-stage cycles (``table``: C x N; ``items``: K_max x B row indices, those past a
    sample's count any valid row: they are run and ignored). With ``b_k`` the broadcast cycle of
    item k and ``t[p, k]`` the cycle PE p takes it (module docstring), ``b_k = max(b_{k-1},
    max_p t[p, k-D]) + 1``; while the broadcast of item k waits for a queue slot (cycles
    ``b_{k-1} + 1 .. b_k - 1``), PE p's queue is full until it takes item ``k - D``: ``max(t[p,
    k-D] - b_{k-1}, 0)`` stall cycles of p (0 when the broadcast does not wait), and the
    broadcast stalled ``b_{K-1} - b_{-1} - K`` cycles in all.
    """
    count, pes = counts.size, table.shape[1]
    counts = np.asarray(counts, dtype=np.int64)
    longest = int(counts.max(initial=0))
    window = np.zeros(count, dtype=np.int64)
    if longest == 0:
        return Schedules(window, np.zeros((count, pes), dtype=np.int64), window.copy())
    items = items[:longest]
    depth = min(depth, longest)  # queues deeper than the items never fill: the same schedule
    scanned = 0  # the scan delays every later cycle by at most its sum
    if scan is not None:
        scan = np.asarray(scan[:longest], dtype=np.int64)[:, :, None]  # K x B x 1
        scanned = int(scan.sum(axis=0).max())
    dtype = _cycle_dtype(table, items, depth, lnzd_latency + scanned, queue_latency)
    if gate is not None:  # waiting for DRAM has no bound from the work alone
        assert count == 1, "a DRAM gate times one sample"
        dtype = np.int64
    if scan is not None:
        scan = scan.astype(dtype)
    # Cycles are kept relative to the item index k (t* = t - k, r* = b + queue - k), which
    # leaves one max per item for the broadcast: r*_k = max(r*_{k-1}, max_p t*[p, k-D] + c)
    # with c = queue + 1 - D (r*_k = r*_{k-1} for k < D), t*[:, k] = max(f, r*_k), and the
    # PEs' next free cycles f = t*[:, k] + w[:, k] - 1.
    offset = queue_latency + 1 - depth
    work_less_one = table.astype(dtype) - 1
    high = np.iinfo(dtype).max // 2
    ready = np.full((count, 1), lnzd_latency + queue_latency, dtype=dtype)  # r*_{first-1}
    last_ready = np.zeros(count, dtype=np.int64)  # r* of each sample's last item
    free = np.full((count, pes), np.iinfo(dtype).min // 2, dtype=dtype)
    stall = np.zeros((count, pes), dtype=np.int64)
    ends = _group_ends(counts)
    stops = sorted(ends)
    shortest = int(counts.min())
    # t* and max_p t* + c of the D items before a chunk, carried into the next one.
    tail = np.zeros((depth, count, pes), dtype=dtype)
    tail_most = np.zeros((depth, count, 1), dtype=dtype)
    # Blocks of D items (one item with a DRAM gate, whose arrivals depend on the items just
    # done): r*_k of a block needs t* of items k - D only, all in the blocks before it.
    size = 1 if gate is not None else depth
    gather = max(_ITEMS_PER_GATHER - _ITEMS_PER_GATHER % size, size)  # whole blocks
    for first in range(0, longest, gather):
        cost = work_less_one[items[first : first + gather]]  # (n, B, N): w - 1 of each item
        n = cost.shape[0]
        take = np.empty((depth + n, count, pes), dtype=dtype)  # t* of items first - D ..
        take[:depth] = tail
        most = np.empty((depth + n, count, 1), dtype=dtype)  # max_p t* + c, same rows
        most[:depth] = tail_most
        rows = np.empty((n + 1, count, 1), dtype=dtype)  # r*_{k-1} in row k - first
        rows[0] = ready
        for start in range(0, n, size):
            k, stop = first + start, min(start + size, n)
            # r*_k = max(r*_{k-1} + s_k, max_p t*[p, k-D] + c), the max taken for k >= D
            # only: with S_k the scan's running sum over the block, r*_k - S_k is a running max.
            delays = None if scan is None else np.cumsum(scan[k : first + stop], axis=0)
            if k >= depth:
                block = most[start:stop] if delays is None else most[start:stop] - delays
                block = np.maximum(block, rows[start])
                np.maximum.accumulate(block, axis=0, out=rows[start + 1 : stop + 1])
            else:
                rows[start + 1 : stop + 1] = rows[start]
            if delays is not None:
                rows[start + 1 : stop + 1] += delays
            # t*[:, k] = max(f, r*_k), f = t*[:, k-1] + w[:, k-1] - 1 (one row at a time:
            # numpy's accumulate along the items is slower than this for wide batches).
            now = take[depth + start : depth + stop]
            np.maximum(free, rows[start + 1], out=now[0])
            if gate is not None:  # t*[p, k] >= arrival of item k's chunk on PE p, less k
                np.maximum(now[0, 0], gate.arrival(k) - k, out=now[0, 0])
            for i in range(1, stop - start):
                np.add(now[i - 1], cost[start + i - 1], out=now[i])
                np.maximum(now[i], rows[start + i + 1], out=now[i])
            free = now[-1] + cost[stop - 1]
            np.add(now.max(axis=2, keepdims=True), offset, out=most[depth + start : depth + stop])
            if gate is not None:  # f + k + 1: each PE's cycle after its last slot for item k
                gate.done(k, free[0] + (k + 1))
            while stops and stops[0] < first + stop:  # samples whose last item is here
                last = stops.pop(0)
                done, at = ends[last], last - first
                after = take[depth + at, done] + cost[at, done]  # f: each PE's next cycle
                window[done] = after.max(axis=1) + last + 1
                last_ready[done] = rows[at + 1, done, 0]
        # Stall terms of items j >= D: t*[p, j-D] + j-D - b_{j-1} = t*[p, j-D] - (r*_{j-1} - c).
        skip = max(depth - first, 0)
        if skip < n:
            before = rows[skip:n] - offset
            if scan is not None:  # the queue waits from b_{j-1} + s_j on
                before += scan[first + skip : first + n]
            if first + n > shortest:  # items past a sample's count add nothing
                past = np.arange(first + skip, first + n)[:, None] >= counts[None, :]
                before[past] = high
            part = take[skip:n] - before
            np.maximum(part, 0, out=part)
            stall += part.sum(axis=0, dtype=np.int64)
        tail = take[n : n + depth]
        tail_most = most[n : n + depth]
        ready = rows[n]
    window -= lnzd_latency + queue_latency
    window[counts == 0] = 0
    # b_{K-1} = r*_{K-1} + K - 1 - queue; the broadcast stalled b_{K-1} - b_{-1} - K cycles.
    stall_cycles = last_ready - queue_latency - lnzd_latency
    if scan is not None:  # scanning cycles are not stalls
        stall_cycles -= (scan[:, :, 0] * (np.arange(longest)[:, None] < counts)).sum(axis=0)
    stall_cycles[counts == 0] = 0
    return Schedules(window, stall, stall_cycles)


#: Items whose work rows are gathered at once (bounds the memory of a big batch).
_ITEMS_PER_GATHER = 256


def _group_ends(counts: np.ndarray) -> dict[int, np.ndarray]:
    """The samples whose last item is k, by k (samples with no items left out)."""
    order = np.argsort(counts, kind="stable")
    last = counts[order] - 1
    cuts = np.flatnonzero(np.diff(last)) + 1
    return {
        int(last[start]): order[start:stop]
        for start, stop in zip([0, *cuts], [*cuts, counts.size], strict=True)
        if last[start] >= 0
    }


def _cycle_dtype(table: np.ndarray, items: np.ndarray, depth: int, lnzd: int, queue: int) -> type:
    """The narrowest integer type that holds every cycle of the recurrence exactly.

    t[p, k] grows by at most ``max(max_p w[p, k-1], 1 + queue)`` per item from ``lnzd +
    queue``, ``b_k`` stays below it, a PE's stall cycles are distinct cycles of the span, and
    the relative cycles of :func:`schedules` differ from these by at most ``depth``.
    """
    step = np.maximum(table.max(axis=1, initial=0), 1 + queue)
    span = int(step[items].sum(axis=0).max())
    bound = lnzd + queue + span + int(step.max()) + depth
    for dtype in (np.int16, np.int32):
        if bound < np.iinfo(dtype).max // 2:
            return dtype
    return np.int64


def group_scan(columns: np.ndarray, pes: int) -> np.ndarray:
    """Cycles the authors' simulator's detector spends before each broadcast item beyond the
    one that sends it (isa/SPEC.md §6, ``lnzd_group_scan``): it holds one group of N stream
    words (word j in group j // N) and sends one non-zero of it per cycle; a group whose last
    non-zero is not its last word, or that has none, costs one cycle more to leave (loading the
    next group), and the first group is loaded in the cycle before the first broadcast. Item k
    at column c_k waits ``g_k - g_{k-1} - [c_{k-1} mod N == N - 1]`` such cycles (the item
    before the first as if at word -1)."""
    group = columns // pes
    previous = np.concatenate(([-1], columns[:-1]))
    last = previous % pes == pes - 1
    return group - np.concatenate(([-1], group[:-1])) - last


def mac_latency(machine: Machine) -> int:
    """A MAC's cycles beyond its entry-stage window: the fill (LNZD, queue, pointer read) and
    the arithmetic pipeline's drain after the last entry is read."""
    fill = machine.lnzd_latency + machine.queue_latency + machine.ptr_latency
    return fill + machine.alu_stages - 1


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


#: A MAC's timing and its activity counts (named as in the energy table).
MacCost = tuple[MacTiming, dict[str, int]]


def mac_costs(
    machine: Machine,
    layer: LayerTables,
    columns: Sequence[np.ndarray],
    stream_lengths: Sequence[int],
) -> list[MacCost]:
    """The timing and activity of one ``sparse-column-mac`` of ``layer`` on each of B samples
    (sample b broadcasts ``columns[b]`` from a stream of ``stream_lengths[b]`` words): the
    pipeline recurrence of all of them at once (:func:`schedules`), once per distinct
    (columns, stream length): they decide the MAC's cost, which ``layer.costs`` keeps for the
    next MACs broadcasting the same columns (dense activations broadcast every column, every
    time; the cache holds ``COST_PATTERNS`` patterns per layer and machine at most)."""
    keys = [
        (machine, int(n), np.asarray(c, dtype=np.int64).tobytes())
        for c, n in zip(columns, stream_lengths, strict=True)
    ]
    todo = {key: index for index, key in enumerate(keys) if key not in layer.costs}
    if todo:
        indices = list(todo.values())
        found = _mac_costs(
            machine, layer, [columns[i] for i in indices], [stream_lengths[i] for i in indices]
        )
        fresh = dict(zip(todo, found, strict=True))
        for key, cost in fresh.items():
            if len(layer.costs) < COST_PATTERNS:
                layer.costs[key] = cost
        return [fresh[key] if key in fresh else layer.costs[key] for key in keys]
    return [layer.costs[key] for key in keys]


#: Distinct (machine, stream length, columns) a layer's tables keep the MAC cost of.
COST_PATTERNS = 64


def _mac_costs(
    machine: Machine,
    layer: LayerTables,
    columns: Sequence[np.ndarray],
    stream_lengths: Sequence[int],
) -> list[MacCost]:
    """:func:`mac_costs` of each sample, computed."""
    pes = machine.pes
    counts = np.array([c.size for c in columns], dtype=np.int64)
    if len(columns) == 1:  # the work of the broadcast columns only
        work = np.maximum(layer.entries[columns[0]], 1)
        items = np.arange(columns[0].size)[:, None]
    else:
        work = np.maximum(layer.entries, 1)
        items = np.zeros((int(counts.max(initial=0)), counts.size), dtype=np.int64)
        for sample, broadcast in enumerate(columns):
            items[: broadcast.size, sample] = broadcast
    scan = None
    if machine.lnzd_group_scan:
        scan = np.zeros(items.shape, dtype=np.int64)
        for sample, broadcast in enumerate(columns):
            scan[: broadcast.size, sample] = group_scan(broadcast, pes)
    plans = schedules(
        work, items, counts, machine.fifo_depth, machine.lnzd_latency, machine.queue_latency,
        scan=scan,
    )  # fmt: skip
    streamed = layer.chunks is not None
    busy, stored, pointer, spmat = _column_totals(layer, columns)
    costs = []
    for sample, items_sent in enumerate(counts.tolist()):
        window = int(plans.window[sample])
        stall, stall_cycles = plans.stall[sample], int(plans.stall_cycles[sample])
        dram: dict[str, int | float] = {}
        if streamed:  # the recurrence again, each PE's items waiting for their chunks
            gate = DramGate(machine, layer, columns[sample])
            compute = window + mac_latency(machine) if items_sent else 0
            if items_sent:
                gated = schedule(
                    np.maximum(layer.entries[columns[sample]], 1),
                    machine.fifo_depth,
                    machine.lnzd_latency,
                    machine.queue_latency,
                    gate,
                    None if scan is None else scan[: columns[sample].size, sample],
                )
                window, stall, stall_cycles = gated.window, gated.stall, gated.stall_cycles
            cycles = max(window + mac_latency(machine) if items_sent else 0, gate.end())
            dram = {
                "dram_bytes": gate.bytes,
                "transfer_cycles": gate.transfer_cycles,
                "compute_cycles": compute,
                "dram_stall_cycles": cycles - compute,
            }
        entries = int(stored[sample].sum())
        padding = stored[sample] - busy[sample]
        timing = MacTiming(
            window=window,
            broadcasts=items_sent,
            busy=busy[sample],
            padding=padding,
            pointer=pointer[sample],
            starved=window - busy[sample] - padding - pointer[sample],
            stall=stall,
            stall_cycles=stall_cycles,
            ideal_cycles=entries / pes,
            **dram,  # type: ignore[arg-type]
        )
        activity = {
            "act_read": int(stream_lengths[sample]),
            "fifo_access": items_sent * pes,
            "ptr_read": items_sent * pes,
            "spmat_read": int(spmat[sample]),
            "codebook_lookup": entries,
            "multiply": entries,
            "accumulate": entries,
        }
        if streamed:
            activity[DRAM_EVENT] = 8 * timing.dram_bytes
        costs.append((timing, activity))
    return costs


def chunk_slices(machine: Machine, layer: LayerTables) -> np.ndarray:
    """Bytes of each PE's slice of each chunk of a streamed layer, ``(chunks, N)``: its entries
    (1 byte each) and its ``cols + 1`` chunk-relative pointers (``ptr_bits`` each, rounded up
    to bytes)."""
    assert layer.chunks is not None
    cuts = np.asarray(layer.chunks, dtype=np.int64)
    entries = np.add.reduceat(layer.entries.astype(np.int64), cuts[:-1], axis=0)
    pointer_bytes = -(-((np.diff(cuts) + 1) * machine.ptr_bits) // 8)
    return entries + pointer_bytes[:, None]


def transfer_cycles(machine: Machine, size: np.ndarray) -> np.ndarray:
    """Cycles (real) the DRAM takes for transfers of ``size`` bytes: the first-word latency
    plus the bytes at the bandwidth, at the machine's clock."""
    latency = machine.dram_latency_ns * machine.clock_mhz / 1000.0
    bytes_per_cycle = machine.dram_gbps * 1000.0 / machine.clock_mhz
    return latency + np.asarray(size, dtype=np.float64) / bytes_per_cycle


class DramGate:
    """When each chunk of a streamed layer reaches each PE during one MAC (isa/SPEC.md §6).

    Choice: the DRAM bandwidth is split evenly over the PEs, each streaming its own slice of
    every chunk (its entries and pointers) into its own two SRAM halves at ``dram_gbps / N``,
    one chunk after the other, paying the first-word latency per chunk. PE p's slice of chunk
    c starts when p's slice of chunk c - 1 has arrived and p is done with chunk c - 2 (its
    half is free from the cycle after p's last pointer-read slot for chunk c - 2; the entry
    reads trailing it by ``ptr_latency`` cycles stay ahead of the transfer, which writes the
    pointers first), and arrives ``latency + bytes / (bandwidth / N)`` cycles later. A chunk
    without broadcast items is done on p once it has arrived and p is done with the chunk
    before. PE p takes an item (reads its pointers) no earlier than the cycle its chunk has
    arrived in (rounded up). The MAC lasts at least until the last chunk has arrived.
    """

    def __init__(self, machine: Machine, layer: LayerTables, columns: np.ndarray) -> None:
        assert layer.chunks is not None
        cuts = np.asarray(layer.chunks, dtype=np.int64)
        self.machine = machine
        size = chunk_slices(machine, layer)  # (chunks, N) bytes
        self.bytes = int(size.sum())
        self.took = transfer_cycles(replace(machine, dram_gbps=machine.dram_gbps / layer.pes), size)
        #: The busiest PE's transfers added up (real cycles).
        self.transfer_cycles = float(self.took.sum(axis=0).max())
        self.chunk_of = np.searchsorted(cuts, columns, side="right") - 1
        self.count = cuts.size - 1
        pes = layer.pes
        self.arrived = np.zeros((self.count, pes))  # real cycles, known up to self.known
        self.free = np.zeros((self.count, pes), dtype=np.int64)
        self.known = -1
        self._last = np.r_[self.chunk_of[1:] != self.chunk_of[:-1], True]

    def _arrive(self, upto: int) -> None:
        """Compute the arrivals of chunks ``known + 1 .. upto`` (chunks before them done)."""
        for chunk in range(self.known + 1, upto + 1):
            previous = self.arrived[chunk - 1] if chunk else 0.0
            before = self.free[chunk - 2] if chunk >= 2 else 0
            self.arrived[chunk] = np.maximum(previous, before) + self.took[chunk]
            if chunk < upto or not np.any(self.chunk_of == chunk):  # no items: done on arrival
                done_before = self.free[chunk - 1] if chunk else 0
                self.free[chunk] = np.maximum(np.ceil(self.arrived[chunk]), done_before)
            self.known = chunk

    def arrival(self, k: int) -> np.ndarray:
        """Per PE, the first cycle item k's chunk is in its SRAMs."""
        chunk = int(self.chunk_of[k])
        if chunk > self.known:
            self._arrive(chunk)
        return np.ceil(self.arrived[chunk]).astype(np.int64)

    def done(self, k: int, finish: np.ndarray) -> None:
        """Item k's slots end on each PE in the cycles before ``finish``."""
        if self._last[k]:
            self.free[int(self.chunk_of[k])] = finish

    def end(self) -> int:
        """The cycle after the last chunk has arrived on every PE."""
        self._arrive(self.count - 1)
        return math.ceil(float(self.arrived[-1].max()))


def _column_totals(
    layer: LayerTables, columns: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sample, sums over its broadcast columns of the real and the stored entries (B x N),
    of the PEs with no entry in a column (B x N) and of the sparse-matrix words (B,).

    One sample gathers its columns; a batch multiplies the 0/1 matrix of broadcast columns
    by the per-column counts, in float32 when every sum is below 2**24 (then exact, as
    float64 is for sums below 2**53).
    """
    pes = layer.pes
    if len(columns) == 1:
        (broadcast,) = columns
        entries = layer.entries[broadcast]
        return (
            layer.real[broadcast].sum(axis=0)[None],
            entries.sum(axis=0)[None],
            np.count_nonzero(entries == 0, axis=0)[None],
            np.array([layer.spmat_reads(broadcast)]),
        )
    counts = np.concatenate((layer.entries, layer.real, layer.entries == 0), axis=1, dtype=np.int64)
    largest = int(counts.sum(axis=0).max())  # the sum over all columns bounds any subset's
    dtype = np.float32 if largest < 1 << 24 else np.float64
    sent = np.zeros((len(columns), layer.cols), dtype=dtype)
    for sample, broadcast in enumerate(columns):
        sent[sample, broadcast] = 1.0
    totals = np.rint(sent @ counts.astype(dtype)).astype(np.int64)
    return (
        totals[:, pes : 2 * pes],
        totals[:, :pes],
        totals[:, 2 * pes : 3 * pes],
        np.array([layer.spmat_reads(broadcast) for broadcast in columns], dtype=np.int64),
    )


def stack_costs(costs: Sequence[MacCost]) -> MacCost:
    """The costs of one MAC on each lane of a batch as one: every field of the timing and
    every activity count an array over the lanes (per-PE fields: lanes x N)."""
    timings = [timing for timing, _ in costs]
    fields = {
        name: np.array([getattr(timing, name) for timing in timings])
        for name in MacTiming.__dataclass_fields__
    }
    activity = {name: np.array([counts[name] for _, counts in costs]) for name in costs[0][1]}
    return MacTiming(**fields), activity


class CycleModel:
    """Times each executed instruction (isa/SPEC.md §6); instructions run back to back.

    With ``lanes`` (a lockstep batch), each lane has its own clock: ``now`` and a timing's
    ``start`` are arrays over the lanes, and so are a MAC's cycles, activity and per-PE
    accounting (:func:`stack_costs`); other instructions take the same cycles in every lane.
    """

    def __init__(self, config: ResolvedConfig) -> None:
        self.config = config
        self.now: Any = 0

    def reset(self, lanes: int | None = None) -> None:
        """Start a new run (of ``lanes`` lanes) at cycle 0."""
        self.now = 0 if lanes is None else np.zeros(lanes, dtype=np.int64)

    def time(self, event: Event) -> Timing:
        """The timing of ``event``, starting where the previous instruction ended (a batch's
        MAC: every lane's at once, :func:`mac_costs` and :func:`stack_costs`)."""
        machine = self.config.machine
        pes = machine.pes
        mac = None
        activity: dict[str, Any] = {}
        match event:
            case MacEvent():
                assert event.layer is not None
                if isinstance(event.columns, list):  # a batch's lanes
                    lanes = event.columns
                    lengths = [event.stream_length] * len(lanes)
                    mac, activity = stack_costs(mac_costs(machine, event.layer, lanes, lengths))
                else:
                    ((mac, activity),) = mac_costs(
                        machine, event.layer, [event.columns], [event.stream_length]
                    )
                cycles = _mac_cycles(machine, mac)
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
            case BroadcastEvent() | HaltEvent() | StreamEvent():
                cycles = 0
            case _:
                raise TypeError(f"no cycle rule for {type(event).__name__}")
        timing = Timing(start=self.now, cycles=cycles, activity=activity, mac=mac)
        self.now = self.now + cycles
        return timing


def _mac_cycles(machine: Machine, mac: MacTiming) -> Any:
    """A MAC's cycles: its window and pipeline latency, or for a streamed layer (weights in
    DRAM) its computation and the cycles it waited for DRAM; 0 with nothing broadcast
    (arrays over a batch's lanes for a stacked timing)."""
    if np.ndim(mac.window):
        return np.where(
            mac.dram_bytes > 0,
            mac.compute_cycles + mac.dram_stall_cycles,
            np.where(mac.broadcasts > 0, mac.window + mac_latency(machine), 0),
        ).astype(np.int64)
    if mac.dram_bytes:  # a streamed layer: its window waited for DRAM
        return mac.compute_cycles + mac.dram_stall_cycles
    if mac.broadcasts:
        return mac.window + mac_latency(machine)
    return 0
