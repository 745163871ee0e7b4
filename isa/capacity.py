"""Per-PE memory use of a program (isa/SPEC.md §7, rule 8), computed in one place.

The verifier and the compiler both ask: walking the layers, then the buffers, in declaration
order, which is the first one whose cumulative need overflows a PE's sparse-matrix, pointer or
activation SRAM? Each words the answer for its own reader.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from eiec.isa.program import (
    Buffer,
    Chunk,
    Instruction,
    Layer,
    Machine,
    Program,
    SparseColumnMac,
    StreamChunk,
)

Memory = Literal["spmat_sram", "ptr_sram", "act_sram"]


@dataclass(frozen=True)
class Overflow:
    """The first item that does not fit: on PE ``pe``, the items up to and including ``name``
    need ``need`` bytes of ``memory`` (``own`` of them for ``name``), ``available`` per PE.
    Pointer and activation overflows are reported on PE 0, which needs the most."""

    memory: Memory
    name: str
    pe: int
    need: int
    own: int
    available: int


def first_overflow(
    machine: Machine, layers: Iterable[Layer], buffers: Iterable[Buffer]
) -> Overflow | None:
    """The first layer (sparse-matrix then pointer SRAM) or buffer (activation SRAM) whose
    cumulative per-PE need exceeds the machine's memories; None when everything fits.

    Entries take 1 byte each, pointers ``(cols + 1) * ptr_bits`` bits per layer (the running
    total rounded up to bytes), buffer words 2 bytes, ``ceil(size / N)`` of them on PE 0.
    Streamed layers (``Layer.chunks``) live in DRAM: :func:`chunk_overflow` checks them.
    """
    entries = np.zeros(machine.pes, dtype=np.int64)
    pointer_bits = 0
    for layer in layers:
        if layer.streamed:
            continue
        own_entries = layer.entries_per_pe
        entries = entries + own_entries
        pe = int(np.argmax(entries))
        if entries[pe] > machine.spmat_sram:
            return Overflow(
                "spmat_sram",
                layer.name,
                pe,
                int(entries[pe]),
                int(own_entries[pe]),
                machine.spmat_sram,
            )
        own_bits = (layer.cols + 1) * machine.ptr_bits
        pointer_bits += own_bits
        if pointer_bits > 8 * machine.ptr_sram:
            return Overflow(
                "ptr_sram",
                layer.name,
                0,
                math.ceil(pointer_bits / 8),
                math.ceil(own_bits / 8),
                machine.ptr_sram,
            )
    words = 0
    for buffer in buffers:
        own_words = -(-buffer.size // machine.pes)
        words += own_words
        if 2 * words > machine.act_sram:
            return Overflow("act_sram", buffer.name, 0, 2 * words, 2 * own_words, machine.act_sram)
    return None


@dataclass(frozen=True)
class ChunkSpace:
    """What one chunk of a streamed layer may use: half of what the layers held on chip leave
    of each PE's sparse-matrix SRAM (``entries``, shape ``(N,)``) and pointer SRAM
    (``pointer_bits``): the other half holds the next chunk (double buffering)."""

    entries: np.ndarray
    pointer_bits: int


def chunk_space(machine: Machine, layers: Iterable[Layer]) -> ChunkSpace:
    """The :class:`ChunkSpace` of a machine whose on-chip layers are those of ``layers``
    without ``chunks``."""
    used = np.zeros(machine.pes, dtype=np.int64)
    pointer_bits = 0
    for layer in layers:
        if not layer.streamed:
            used += layer.entries_per_pe
            pointer_bits += (layer.cols + 1) * machine.ptr_bits
    free_entries = np.maximum(machine.spmat_sram - used, 0)
    free_bits = max(8 * machine.ptr_sram - pointer_bits, 0)
    return ChunkSpace(free_entries // 2, free_bits // 2)


def chunk_overflow(machine: Machine, layers: Iterable[Layer], layer: Layer) -> str | None:
    """Why a chunk of streamed ``layer`` does not fit its :class:`ChunkSpace` (``layers``:
    all of the program's), or None (also for a layer held on chip)."""
    if not layer.streamed:
        return None
    assert layer.chunks is not None
    space = chunk_space(machine, layers)
    sizes = layer.chunk_entries()
    over = np.argwhere(sizes > space.entries[None, :])
    if over.size:
        chunk, pe = (int(i) for i in over[0])
        return (
            f"chunk {chunk} stores {int(sizes[chunk, pe])} entries on PE {pe}, more than half "
            f"({int(space.entries[pe])}) of the sparse-matrix SRAM the on-chip layers leave "
            f"(spmat_sram = {machine.spmat_sram}; double buffering holds two chunks)"
        )
    widths = np.diff(np.asarray(layer.chunks))
    too_wide = np.flatnonzero((widths + 1) * machine.ptr_bits > space.pointer_bits)
    if too_wide.size:
        chunk = int(too_wide[0])
        return (
            f"chunk {chunk} has {int(widths[chunk])} columns: its {int(widths[chunk]) + 1} "
            f"pointers need {math.ceil((widths[chunk] + 1) * machine.ptr_bits / 8)} bytes, more "
            f"than half ({space.pointer_bits // 8}) of the pointer SRAM the on-chip layers "
            f"leave (ptr_sram = {machine.ptr_sram})"
        )
    return None


#: Streamed layers are cut into at least this many chunks when they have the columns and
#: entries, so that each chunk's transfer overlaps the MACs of the one before and the first,
#: which nothing hides, is short...
MIN_CHUNKS = 8
#: ... but not into chunks of fewer entries on the busiest PE than this, whose transfers would
#: be mostly first-word latency (4 KB at a 64th of 12.8 GB/s: 16 384 cycles; latency 80).
MIN_CHUNK_ENTRIES = 4096


def plan_chunks(
    machine: Machine, ptr: np.ndarray, space: ChunkSpace, parts: int = MIN_CHUNKS
) -> tuple[int, ...] | None:
    """Cut points ``(0, ..., cols)`` of chunks taken greedily column by column, each as large
    as fits ``space`` and ``ptr_bits``-bit chunk-relative pointers, and no larger than a
    ``parts``-th of the layer's columns and of its busiest PE's entries (fewer parts when those
    would hold fewer than ``MIN_CHUNK_ENTRIES``) unless one column is
    (``ptr``: the layer's ``(N, cols + 1)`` pointers); None when one column alone does not fit
    ``space``."""
    ptr = np.asarray(ptr, dtype=np.int64)
    cols = ptr.shape[1] - 1
    busiest = int(ptr[:, -1].max(initial=0))
    parts = max(1, min(parts, busiest // MIN_CHUNK_ENTRIES))
    hard = np.minimum(space.entries, (1 << machine.ptr_bits) - 1)
    soft = np.minimum(hard, -(-busiest // parts))
    max_cols = space.pointer_bits // machine.ptr_bits - 1
    if max_cols < 1:
        return None
    max_cols_soft = min(max_cols, -(-cols // parts))
    cuts = [0]
    while cuts[-1] < cols:
        start = cuts[-1]
        count = _columns_within(ptr, start, min(cols, start + max_cols_soft), soft)
        if count == 0:
            count = _columns_within(ptr, start, min(cols, start + max_cols), hard)
        if count == 0:
            return None
        cuts.append(start + count)
    return tuple(cuts)


def _columns_within(ptr: np.ndarray, start: int, stop: int, limit: np.ndarray) -> int:
    """How many columns from ``start`` (up to ``stop``) every PE's entries stay within
    ``limit`` (per PE) for."""
    fits = (ptr[:, start + 1 : stop + 1] - ptr[:, start : start + 1]) <= limit[:, None]
    together = np.all(fits, axis=0)
    return int(np.argmin(together)) if not together.all() else stop - start


def stream_layers(
    program: Program,
    names: Iterable[str],
    chunks: Mapping[str, tuple[int, ...]] | None = None,
) -> Program:
    """``program`` with layers ``names`` held in DRAM: each cut into ``chunks[name]`` (default:
    :func:`plan_chunks` in the :func:`chunk_space` the other layers leave), and every
    ``sparse-column-mac`` of it preceded by the ``stream-chunk`` of each chunk. Raises
    ValueError(name) when a single column of layer ``name`` does not fit its chunk space."""
    names = set(names)
    layers = dict(program.layers)
    for name in names:
        layers[name] = replace(layers[name], chunks=(0, layers[name].cols))  # streamed
    space = chunk_space(program.machine, layers.values())
    for name in program.layers:
        if name not in names:
            continue
        layer = layers[name]
        cuts = (chunks or {}).get(name) or plan_chunks(program.machine, layer.ptr, space)
        if cuts is None:
            raise ValueError(name)
        layers[name] = replace(layer, chunks=tuple(int(c) for c in cuts))
    text: list[Instruction] = []
    for instruction in program.text:
        if isinstance(instruction, SparseColumnMac) and instruction.layer in names:
            count = len(layers[instruction.layer].chunks or ()) - 1
            text += [StreamChunk(Chunk(instruction.layer, index)) for index in range(count)]
        text.append(instruction)
    return replace(program, layers=layers, text=text)


def layers_to_stream(machine: Machine, layers: Iterable[Layer]) -> list[str]:
    """The layers to hold in DRAM when ``layers`` do not all fit the SRAMs (none when they do),
    in declaration order: the largest (by the larger of their shares of the sparse-matrix and
    the pointer SRAM), as few as leave the others within three quarters of each SRAM (the rest,
    in two halves, holds the streamed chunks) with every streamed layer's chunks planned;
    all of them when no fewer do."""
    layers = list(layers)
    if first_overflow(machine, layers, ()) is None:
        return []
    kept_budget = replace(
        machine, spmat_sram=machine.spmat_sram * 3 // 4, ptr_sram=machine.ptr_sram * 3 // 4
    )

    def share(layer: Layer) -> float:
        pointers = (layer.cols + 1) * machine.ptr_bits / 8 / machine.ptr_sram
        return max(int(layer.entries_per_pe.max(initial=0)) / machine.spmat_sram, pointers)

    order = sorted(layers, key=share, reverse=True)
    for count in range(1, len(order) + 1):
        names = {layer.name for layer in order[:count]}
        kept = [layer for layer in layers if layer.name not in names]
        if first_overflow(kept_budget, kept, ()) is not None:
            continue
        space = chunk_space(machine, kept)
        if all(plan_chunks(machine, layer.ptr, space) is not None for layer in order[:count]):
            return [layer.name for layer in layers if layer.name in names]
    return [layer.name for layer in layers]
