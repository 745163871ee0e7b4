"""The cycle model (isa/SPEC.md §6) on tiny layers worked out by hand, and its properties."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from eiec.emulator import Emulator, schedule
from eiec.isa.builder import fc_program, random_codes

from .programs import big_machine

BOOK = np.arange(16, dtype=np.int16) * 100  # any codebook with entry 0 = 0


def _mac_stats(codes: np.ndarray, x: np.ndarray, pes: int, depth: int):
    program = fc_program([codes], [BOOK], [8], [8, 0], machine=big_machine(pes, depth))
    result = Emulator(program).run({"x": x.reshape(1, -1)})
    return result.stats, result.stats.layers[0]


# Two PEs; PE 0 owns rows 0, 2, 4 and PE 1 rows 1, 3, 5. Entries per column:
#   column:      0  1  2  3
#   PE 0:        3  1  3  1
#   PE 1:        1  3  1  3
ALTERNATING = np.zeros((6, 4), dtype=np.uint8)
ALTERNATING[[0, 2, 4, 1], 0] = 1
ALTERNATING[[0, 1, 3, 5], 1] = 2
ALTERNATING[[0, 2, 4, 1], 2] = 3
ALTERNATING[[0, 1, 3, 5], 3] = 4
ONES = np.ones(4)


def test_depth_1_is_lockstep_by_hand() -> None:
    # D = 1: b0 = 0, f = [3, 1]; b1 = max(1, 3) = 3, f = [4, 6]; b2 = max(4, 6) = 6,
    # f = [9, 7]; b3 = max(7, 9) = 9, f = [10, 12]. Window 12 = 3 + 3 + 3 + 3.
    # Stalls: item 1 waits cycles 1..2 (PE 0 busy until 3): 2 cycles, PE 0;
    # item 2 waits 4..5 on PE 1 (f = 6): 2 cycles; item 3 waits 7..8 on PE 0 (f = 9): 2.
    stats, mac = _mac_stats(ALTERNATING, ONES, pes=2, depth=1)
    assert mac.window == 12
    assert mac.cycles == 1 + 12 + 4
    assert mac.stall_cycles == 6
    assert mac.pe_stall_cycles == [4, 2]
    assert mac.pe_useful_macs == [8, 8]
    assert mac.pe_starved_cycles == [4, 4]
    # load-codebook (16 entries) + MAC + writeback of 6 rows on 2 PEs (3 cycles).
    assert stats.cycles == 16 + 17 + 3


def test_depth_2_overlaps_by_hand() -> None:
    # D = 2: b0 = 0, f = [3, 1]; b1 = 1, f = [4, 4]; b2 = max(2, max f[:, 0] = 3) = 3,
    # f = [max(4, 3) + 3, max(4, 3) + 1] = [7, 5]; b3 = max(4, max f[:, 1] = 4) = 4,
    # f = [7 + 1, max(5, 4) + 3] = [8, 8]. Window 8 = each PE's total work.
    # Stall: item 2 waits cycle 2 on PE 0 (f[0, 0] = 3): 1 cycle.
    _, mac = _mac_stats(ALTERNATING, ONES, pes=2, depth=2)
    assert mac.window == 8
    assert mac.stall_cycles == 1
    assert mac.pe_stall_cycles == [1, 0]
    assert mac.pe_starved_cycles == [0, 0]
    assert mac.load_efficiency == 1.0


def test_zero_activations_skip_their_columns_by_hand() -> None:
    # Only columns 1 and 3 are broadcast: PE 0 works 1 + 1, PE 1 3 + 3.
    # D = 1: b0 = 0, f = [1, 3]; b1 = 3, f = [4, 6]: window 6, K = 2.
    x = np.array([0.0, 1.0, 0.0, 2.0])
    _, mac = _mac_stats(ALTERNATING, x, pes=2, depth=1)
    assert (mac.broadcasts, mac.window, mac.cycles) == (2, 6, 11)
    assert mac.ideal_cycles == 8 / 2


def test_empty_columns_and_padding_on_one_pe_by_hand() -> None:
    # One PE, 21 rows. Column 0: row 20 only -> padding (z = 15) then (v, z = 4): 2 entries.
    # Column 1: empty -> 1 pointer-only cycle. Column 2: rows 0 and 1: 2 entries.
    # Window = 2 + 1 + 2 = 5; MAC = 1 + 5 + 4 = 10.
    codes = np.zeros((21, 3), dtype=np.uint8)
    codes[20, 0] = 5
    codes[[0, 1], 2] = 7
    _, mac = _mac_stats(codes, np.ones(3), pes=1, depth=8)
    assert (mac.window, mac.cycles) == (5, 10)
    assert (mac.useful_macs, mac.padding_entries, mac.pointer_cycles) == (3, 1, 1)
    assert mac.starved_cycles == 0


def test_all_zero_stream_costs_nothing() -> None:
    stats, mac = _mac_stats(ALTERNATING, np.zeros(4), pes=2, depth=4)
    assert (mac.broadcasts, mac.cycles, mac.window) == (0, 0, 0)
    assert stats.activity.get("ptr_read", 0) == 0


def test_spmat_reads_count_64_bit_words() -> None:
    # One PE, one column of 20 entries at entries 0..19: words 0, 1, 2 -> 3 reads;
    # a second column of 5 entries at 20..24: words 2, 3 -> 2 reads (no reuse across columns).
    codes = np.zeros((25, 2), dtype=np.uint8)
    codes[:20, 0] = 1
    codes[20:, 1] = 1
    stats, _ = _mac_stats(codes, np.ones(2), pes=1, depth=8)
    assert stats.activity["spmat_read"] == 5
    assert stats.activity["ptr_read"] == 2


@st.composite
def work_matrices(draw: st.DrawFn) -> np.ndarray:
    items = draw(st.integers(0, 40))
    pes = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.integers(1, 8, size=(items, pes))


@given(work_matrices(), st.integers(1, 12))
@settings(max_examples=150, deadline=None)
def test_schedule_bounds(work: np.ndarray, depth: int) -> None:
    plan = schedule(work, depth)
    items = work.shape[0]
    busiest = int(work.sum(axis=0).max()) if items else 0
    lockstep = int(work.max(axis=1).sum()) if items else 0
    assert busiest <= plan.finish <= lockstep
    assert plan.finish >= items
    if depth == 1:
        assert plan.finish == lockstep
    if depth >= items:
        assert plan.finish == busiest
        assert plan.stall_cycles == 0
    # Deeper queues never hurt.
    assert schedule(work, depth + 1).finish <= plan.finish


@st.composite
def layers(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows, cols = draw(st.integers(1, 60)), draw(st.integers(1, 30))
    codes = random_codes(rng, rows, cols, draw(st.floats(0.0, 0.6)))
    x = np.where(rng.random(cols) < draw(st.floats(0.0, 1.0)), rng.random(cols), 0.0)
    return codes, x, draw(st.integers(1, 8)), draw(st.integers(1, 10))


def _stored_per_column(codes: np.ndarray, pes: int) -> np.ndarray:
    """n[p, j] from the dense codes, independently of the CSC encoder: one entry per non-zero
    plus one padding entry per full 16 zero rows before it (PE-local rows)."""
    rows, cols = codes.shape
    n = np.zeros((pes, cols), dtype=np.int64)
    for p in range(pes):
        for j in range(cols):
            previous = -1
            for local, r in enumerate(range(p, rows, pes)):
                if codes[r, j]:
                    n[p, j] += (local - previous - 1) // 16 + 1
                    previous = local
    return n


@given(layers())
@settings(max_examples=60, deadline=None)
def test_mac_cycle_properties(case: tuple[np.ndarray, np.ndarray, int, int]) -> None:
    codes, x, pes, depth = case
    _, mac = _mac_stats(codes, x, pes, depth)
    quantized_nonzero = np.floor(x * 256 + 0.5) != 0
    assert mac.broadcasts == int(quantized_nonzero.sum())
    stored = mac.useful_macs + mac.padding_entries
    if mac.broadcasts == 0:
        assert mac.cycles == 0
        return
    assert mac.window >= stored / pes
    assert mac.window >= mac.broadcasts
    assert mac.cycles == 1 + mac.window + 4
    per_pe = (
        np.array(mac.pe_useful_macs)
        + mac.pe_padding_cycles
        + mac.pe_pointer_cycles
        + mac.pe_starved_cycles
    )
    assert (per_pe == mac.window).all()
    if pes == 1:
        # Exactly the stored entries of the broadcast columns plus their empty columns.
        assert mac.window == stored + mac.pointer_cycles
    work = np.maximum(_stored_per_column(codes, pes)[:, quantized_nonzero], 1)
    if depth == 1:
        assert mac.window == work.max(axis=0).sum()
    if depth >= mac.broadcasts:
        assert mac.window == work.sum(axis=1).max()
