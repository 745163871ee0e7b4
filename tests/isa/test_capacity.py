"""first_overflow: the one per-PE capacity rule the verifier and the compiler share."""

from __future__ import annotations

import numpy as np

from eiec.isa.builder import make_layer
from eiec.isa.capacity import Overflow, first_overflow
from eiec.isa.program import Buffer, Layer, Machine

BOOK = np.array([0, 100], dtype=np.int16)
# 4 x 3 codes over 2 PEs: PE 0 owns rows 0 and 2 (4 entries), PE 1 rows 1 and 3 (1 entry).
CODES = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0]], dtype=np.uint8)


def _layer(name: str) -> Layer:
    return make_layer(name, CODES, BOOK, 8, pes=2)


def test_everything_fits() -> None:
    machine = Machine(pes=2, spmat_sram=8, ptr_sram=16, act_sram=8)
    buffers = [Buffer("x", 1, 3, 4, 8), Buffer("y", 1, 4, 4, 8)]  # 2 + 2 words on PE 0
    assert first_overflow(machine, [_layer("a"), _layer("b")], buffers) is None


def test_sparse_matrix_sram_counts_earlier_layers_on_the_busiest_pe() -> None:
    machine = Machine(pes=2, spmat_sram=7, ptr_sram=1024, act_sram=1024)
    assert first_overflow(machine, [_layer("a"), _layer("b")], []) == Overflow(
        "spmat_sram", "b", pe=0, need=8, own=4, available=7
    )


def test_pointer_sram_rounds_the_running_total_of_bits_up() -> None:
    # 12-bit pointers: 4 per layer = 48 bits = 6 bytes; two layers need 12 bytes.
    machine = Machine(pes=2, spmat_sram=1024, ptr_sram=11, act_sram=1024, ptr_bits=12)
    assert first_overflow(machine, [_layer("a"), _layer("b")], []) == Overflow(
        "ptr_sram", "b", pe=0, need=12, own=6, available=11
    )


def test_activation_sram_is_checked_after_the_layers_on_pe_0() -> None:
    machine = Machine(pes=2, spmat_sram=1024, ptr_sram=1024, act_sram=6)
    buffers = [Buffer("x", 1, 3, 3, 8), Buffer("y", 1, 4, 4, 8)]  # ceil(3/2) + ceil(4/2) words
    assert first_overflow(machine, [_layer("a")], buffers) == Overflow(
        "act_sram", "y", pe=0, need=8, own=4, available=6
    )
