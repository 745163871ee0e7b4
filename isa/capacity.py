"""Per-PE memory use of a program (isa/SPEC.md §7, rule 8), computed in one place.

The verifier and the compiler both ask: walking the layers, then the buffers, in declaration
order, which is the first one whose cumulative need overflows a PE's sparse-matrix, pointer or
activation SRAM? Each words the answer for its own reader.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from eiec.isa.program import Buffer, Layer, Machine

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
    """
    entries = np.zeros(machine.pes, dtype=np.int64)
    pointer_bits = 0
    for layer in layers:
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
