"""The cycle model (isa/SPEC.md §6) on tiny layers worked out by hand, and its properties."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eiec.emulator import Emulator, run_batch, schedule
from eiec.emulator.cycles import group_scan
from eiec.isa.builder import fc_program, random_codes
from eiec.isa.program import Machine

from .programs import big_machine

REPO = Path(__file__).resolve().parents[2]

BOOK = np.arange(16, dtype=np.int16) * 100  # any codebook with entry 0 = 0


def _mac_stats(codes: np.ndarray, x: np.ndarray, pes: int, depth: int, machine=None):
    machine = machine or big_machine(pes, depth)
    program = fc_program([codes], [BOOK], [8], [8, 0], machine=machine)
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


# The pipeline of isa/SPEC.md §6 with the paper's latencies (lnzd 1, queue 1, pointer 1,
# 4 ALU stages): b = broadcast cycle, t = cycle the pointer-read unit takes the item (t >= b + 1,
# freeing its queue slot for a broadcast in t + 1), entries read from t + 1 on; a MAC is
# fill 3 + window (first possible entry slot, cycle 3, to the last slot) + drain 3.


def test_depth_1_by_hand() -> None:
    # b0 = 1, t0 = [2, 2] (PE 0 then reads entries 3..5, PE 1 reads 3).
    # b1: wanted 2, both queues hold item 0 until it is taken in 2 -> 3 (1 stall cycle, both PEs);
    #     t1 = max(b1 + 1, t0 + w0) = [max(4, 5), max(4, 3)] = [5, 4].
    # b2: wanted 4, PE 0 takes item 1 only in 5 -> 6 (stalls 4, 5: PE 0 2 cycles, PE 1 1);
    #     t2 = max(7, [5 + 1, 4 + 3]) = [7, 7].
    # b3: wanted 7, both take item 2 in 7 -> 8 (1 cycle each);
    #     t3 = max(9, [7 + 3, 7 + 1]) = [10, 9].
    # Last slots: PE 0 10 + 1 = 11, PE 1 9 + 3 = 12 -> window 3..12 = 10, MAC 3 + 10 + 3 = 16.
    # Old model (slot held until its item was finished, no pointer stage): window 12, MAC 17.
    stats, mac = _mac_stats(ALTERNATING, ONES, pes=2, depth=1)
    assert mac.window == 10
    assert mac.cycles == 3 + 10 + 3
    assert mac.stall_cycles == 4
    assert mac.pe_stall_cycles == [4, 3]
    assert mac.pe_useful_macs == [8, 8]
    assert mac.pe_starved_cycles == [2, 2]
    # load-codebook (16 entries) + MAC + writeback of 6 rows on 2 PEs (3 cycles).
    assert stats.cycles == 16 + 16 + 3


def test_depth_2_by_hand() -> None:
    # b0 = 1, t0 = [2, 2]; b1 = 2, t1 = max(3, [5, 3]) = [5, 3]; b2 = 3 (item 0's slots freed in
    # 2), t2 = max(4, [6, 6]) = [6, 6]; b3: wanted 4, PE 0 holds items 1 and 2 until it takes
    # item 1 in 5 -> 6 (stalls 4, 5 on PE 0); t3 = max(7, [9, 7]) = [9, 7].
    # Last slots 9 + 1 = 10 and 7 + 3 = 10: window 3..10 = 8 = each PE's work, MAC 14.
    # Old model: the same window 8, but 1 stall cycle (item 2 waited for PE 0 to finish item 0).
    _, mac = _mac_stats(ALTERNATING, ONES, pes=2, depth=2)
    assert mac.window == 8
    assert mac.cycles == 14
    assert mac.stall_cycles == 2
    assert mac.pe_stall_cycles == [2, 0]
    assert mac.pe_starved_cycles == [0, 0]
    assert mac.load_efficiency == 1.0


def test_depth_8_by_hand() -> None:
    # No queue fills: b = 1, 2, 3, 4; t = [2, 5, 6, 9] and [2, 3, 6, 7]; window 8, MAC 14.
    _, mac = _mac_stats(ALTERNATING, ONES, pes=2, depth=8)
    assert (mac.window, mac.cycles, mac.stall_cycles) == (8, 14, 0)


def test_zero_activations_skip_their_columns_by_hand() -> None:
    # Only columns 1 and 3 are broadcast: PE 0 works 1 + 1, PE 1 3 + 3.
    # D = 1: b0 = 1, t0 = [2, 2]; b1 = 3, t1 = max(4, [3, 5]) = [4, 5]: last slot 5 + 3 = 8,
    # window 3..8 = 6, MAC 12 (old model: window 6, MAC 11).
    x = np.array([0.0, 1.0, 0.0, 2.0])
    _, mac = _mac_stats(ALTERNATING, x, pes=2, depth=1)
    assert (mac.broadcasts, mac.window, mac.cycles) == (2, 6, 12)
    assert mac.ideal_cycles == 8 / 2


def test_empty_columns_and_padding_on_one_pe_by_hand() -> None:
    # One PE, 21 rows. Column 0: row 20 only -> padding (z = 15) then (v, z = 4): 2 entries.
    # Column 1: empty -> 1 pointer-only cycle. Column 2: rows 0 and 1: 2 entries.
    # t = 2, 4, 5: window = 2 + 1 + 2 = 5; MAC = 3 + 5 + 3 = 11 (old model: 10).
    codes = np.zeros((21, 3), dtype=np.uint8)
    codes[20, 0] = 5
    codes[[0, 1], 2] = 7
    _, mac = _mac_stats(codes, np.ones(3), pes=1, depth=8)
    assert (mac.window, mac.cycles) == (5, 11)
    assert (mac.useful_macs, mac.padding_entries, mac.pointer_cycles) == (3, 1, 1)
    assert mac.starved_cycles == 0


@pytest.mark.parametrize("depth", [1, 2, 8])
def test_start_latency_by_hand(depth: int) -> None:
    # One PE, one column of 3 entries: LNZD in cycle 0, broadcast 1, pointer read 2, entries
    # read 3, 4, 5, the last accumulated 3 stages later in 8: 9 cycles at any depth.
    codes = np.zeros((3, 1), dtype=np.uint8)
    codes[:, 0] = 1
    _, mac = _mac_stats(codes, np.ones(1), pes=1, depth=depth)
    assert (mac.window, mac.cycles) == (3, 9)
    # Each stage's latency counts once: 2 more LNZD, 1 more queue, 3 more pointer cycles.
    machine = replace(big_machine(1, depth), lnzd_latency=3, queue_latency=2, ptr_latency=4)
    _, mac = _mac_stats(codes, np.ones(1), pes=1, depth=depth, machine=machine)
    assert (mac.window, mac.cycles) == (3, 9 + 2 + 1 + 3)


@pytest.mark.parametrize(("depth", "window", "stalls"), [(1, 7, 3), (2, 4, 0), (8, 4, 0)])
def test_slot_release_by_hand(depth: int, window: int, stalls: int) -> None:
    # One PE, four columns of one entry each. A slot frees when the pointer-read unit takes its
    # item (t = b + 1) and is written again from t + 1: at depth 1 the broadcasts go every other
    # cycle (b = 1, 3, 5, 7; t = 2, 4, 6, 8; entry slots 3, 5, 7, 9: window 7 with 3 idle),
    # at depth 2 every cycle (b = 1..4, t = 2..5, slots 3..6: window 4). MAC = window + 6.
    codes = np.ones((1, 4), dtype=np.uint8)
    _, mac = _mac_stats(codes, ONES, pes=1, depth=depth)
    assert (mac.window, mac.cycles, mac.stall_cycles) == (window, window + 6, stalls)
    assert mac.starved_cycles == window - 4


def test_depth_1_keeps_a_pe_busy_on_long_columns_by_hand() -> None:
    # One PE, three columns of 3 entries, depth 1: b0 = 1, t0 = 2 (slot free from 3); b1 = 3,
    # t1 = max(4, 2 + 3) = 5; b2 = 6, t2 = 8: the next item is always queued in time, so the
    # window is the 9 entries, no idle slot (the old model held the slot to the end: 9 + 2).
    codes = np.ones((3, 3), dtype=np.uint8)
    _, mac = _mac_stats(codes, np.ones(3), pes=1, depth=1)
    assert (mac.window, mac.cycles, mac.starved_cycles) == (9, 15, 0)
    assert mac.stall_cycles == 1 + 2


@pytest.mark.parametrize("depth", [1, 2, 8])
@pytest.mark.parametrize(("stages", "drain"), [(1, 0), (4, 3), (8, 7)])
def test_drain_by_hand(depth: int, stages: int, drain: int) -> None:
    # One PE, one column of 2 entries read in cycles 3, 4: the last is accumulated stages - 1
    # cycles after its read; the MAC ends after that cycle.
    codes = np.ones((2, 1), dtype=np.uint8)
    machine = replace(big_machine(1, depth), alu_stages=stages)
    _, mac = _mac_stats(codes, np.ones(1), pes=1, depth=depth, machine=machine)
    assert (mac.window, mac.cycles) == (2, 3 + 2 + drain)


def test_every_layer_drains() -> None:
    # Two chained layers of one PE: each MAC has its own fill and drain (3 + 2 + 3 = 8 cycles).
    one = np.ones((2, 2), dtype=np.uint8)
    program = fc_program([one, one], [BOOK, BOOK], [8, 8], [8, 0, 0], machine=big_machine(1, 2))
    stats = Emulator(program).run({"x": np.ones((1, 2))}).stats
    assert [(mac.window, mac.cycles) for mac in stats.layers] == [(4, 10), (4, 10)]


def test_all_zero_stream_costs_nothing() -> None:
    stats, mac = _mac_stats(ALTERNATING, np.zeros(4), pes=2, depth=4)
    assert (mac.broadcasts, mac.cycles, mac.window) == (0, 0, 0)
    assert stats.activity.get("ptr_read", 0) == 0


def test_spmat_reads_count_64_bit_words() -> None:
    # One PE, one column of 20 entries at entries 0..19: words 0, 1, 2 -> 3 reads; a second
    # column of 5 entries at 20..24: words 2, 3, of which 2 is still held -> 1 read (the read
    # unit keeps the word read last, as the authors' simulator's SpMatRead does).
    codes = np.zeros((25, 2), dtype=np.uint8)
    codes[:20, 0] = 1
    codes[20:, 1] = 1
    stats, _ = _mac_stats(codes, np.ones(2), pes=1, depth=8)
    assert stats.activity["spmat_read"] == 4
    assert stats.activity["ptr_read"] == 2
    # Column 0: entries 0..2 (word 0); column 1 (not broadcast): 3..9; column 2 empty;
    # column 3: 10..12 (word 1); column 4: 13..17 (words 1, 2). Broadcast 0, 2, 3, 4: word 0,
    # then word 1 (column 2 reads nothing and keeps word 0), word 1 held, word 2: 3 reads.
    codes = np.zeros((7, 5), dtype=np.uint8)
    codes[:3, 0] = codes[:7, 1] = codes[:3, 3] = codes[:5, 4] = 1
    stats, _ = _mac_stats(codes, np.array([1.0, 0.0, 1.0, 1.0, 1.0]), pes=1, depth=8)
    assert stats.activity["spmat_read"] == 3
    assert stats.activity["ptr_read"] == 4


@pytest.mark.fixture
def test_spmat_reads_equal_the_authors_simulator_on_fc8() -> None:
    """Sparse-matrix reads on the real AlexNet FC8 layer equal the read counts of the EIE
    authors' cycle-level simulator (its SpMatRead reads a line when the address leaves the
    line read last; measured outside the project, with the fixture at each PE count)."""
    fixture = next(
        (p for p in (b / "shared/fixtures/alexnet_fc8_eie.npz" for b in REPO.parents[:2])
         if p.exists()),
        None,
    )  # fmt: skip
    if fixture is None:
        pytest.skip("needs ../shared/fixtures/alexnet_fc8_eie.npz")
    data = np.load(fixture)
    codes = np.concatenate([data["codes"], data["bias_codes"][:, None]], axis=1)
    book = np.array([0, *range(1, 16)], dtype=np.int16)
    x = data["activations"].astype(np.float64)
    for pes, reads in ((1, 58527), (2, 59332), (4, 61000), (16, 71139), (64, 100900),
                       (256, 125580)):  # fmt: skip
        machine = Machine(pes=pes, spmat_sram=1 << 24, ptr_sram=1 << 20)
        program = fc_program([codes], [book], [12], [8, 8], machine=machine, bias=True, relu=False)
        stats = Emulator(program).run({"x": x.reshape(1, -1)}).stats
        assert stats.activity["spmat_read"] == reads, pes
        assert stats.activity["ptr_read"] == pes * 1760


@st.composite
def work_matrices(draw: st.DrawFn) -> np.ndarray:
    items = draw(st.integers(0, 40))
    pes = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.integers(1, 8, size=(items, pes))


def _by_cycles(work: np.ndarray, depth: int, lnzd: int, queue: int) -> tuple[int, list[int], int]:
    """An independent oracle: the pipeline stepped cycle by cycle, PE by PE, with explicit
    queues (window, per-PE stall cycles, stall cycles), as isa/SPEC.md §6 words it."""
    items, pes = work.shape
    queues: list[list[tuple[int, int]]] = [[] for _ in range(pes)]  # (item, broadcast cycle)
    ready = [0] * pes  # first cycle the pointer-read unit may take the next item
    last_slot = [-1] * pes
    stall, stall_cycles, sent, cycle = [0] * pes, 0, 0, 0
    while sent < items or any(queues):
        taken = [False] * pes
        for p in range(pes):  # pointer-read units: take the head pair, freeing its slot
            if queues[p] and ready[p] <= cycle and queues[p][0][1] + queue <= cycle:
                k, _ = queues[p].pop(0)
                ready[p] = cycle + int(work[k, p])
                last_slot[p] = cycle + int(work[k, p])  # entry slots cycle + 1 .. this
                taken[p] = True
        if sent < items and cycle >= lnzd:  # the CCU: one broadcast if every queue has room
            full = [len(queues[p]) + taken[p] >= depth for p in range(pes)]
            if any(full):
                stall_cycles += 1
                stall = [s + f for s, f in zip(stall, full, strict=True)]
            else:
                for q in queues:
                    q.append((sent, cycle))
                sent += 1
        cycle += 1
    if items == 0:
        return 0, stall, 0
    return max(last_slot) - (lnzd + queue + 1) + 1, stall, stall_cycles


@given(work_matrices(), st.integers(1, 12), st.integers(0, 3), st.integers(1, 3))
@settings(max_examples=150, deadline=None)
def test_schedule_equals_the_cycle_by_cycle_pipeline(
    work: np.ndarray, depth: int, lnzd: int, queue: int
) -> None:
    plan = schedule(work, depth, lnzd, queue)
    window, stall, stall_cycles = _by_cycles(work, depth, lnzd, queue)
    assert (plan.window, plan.stall.tolist(), plan.stall_cycles) == (window, stall, stall_cycles)


@given(work_matrices(), st.integers(1, 12))
@settings(max_examples=150, deadline=None)
def test_schedule_bounds(work: np.ndarray, depth: int) -> None:
    plan = schedule(work, depth)
    items = work.shape[0]
    busiest = int(work.sum(axis=0).max()) if items else 0
    # Depth 1: item k + 1 is broadcast the cycle after the last PE took item k, and taken at
    # the earliest one cycle later: at most max(2, the longest w) cycles per item.
    widest = work.max(axis=1) if items else np.zeros(0, dtype=np.int64)
    upper = int(np.maximum(widest[:-1], 2).sum() + widest[-1]) if items else 0
    assert busiest <= plan.window <= upper
    assert plan.window >= items
    if depth >= items:
        assert plan.window == busiest
        assert plan.stall_cycles == 0
    # Deeper queues never hurt.
    assert schedule(work, depth + 1).window <= plan.window


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
    assert mac.cycles == 3 + mac.window + 3
    per_pe = (
        np.array(mac.pe_useful_macs)
        + mac.pe_padding_cycles
        + mac.pe_pointer_cycles
        + mac.pe_starved_cycles
    )
    assert (per_pe == mac.window).all()
    if pes == 1 and depth >= 2:
        # Exactly the stored entries of the broadcast columns plus their empty columns.
        assert mac.window == stored + mac.pointer_cycles
    work = np.maximum(_stored_per_column(codes, pes)[:, quantized_nonzero], 1)
    assert mac.window == _by_cycles(work.T, depth, 1, 1)[0]
    if depth >= mac.broadcasts:
        assert mac.window == work.sum(axis=1).max()


def test_group_scan_delays() -> None:
    # Groups of 4 words: items at words 2, 6, 7, 10 (groups 0, 1, 1, 2). Item 0: group 0 is
    # loaded before the first broadcast; leaving group 0 after word 2 (not its last) costs a
    # cycle; word 7 is group 1's last, so group 2 loads with it.
    assert group_scan(np.array([2, 6, 7, 10]), 4).tolist() == [0, 1, 0, 0]
    # One PE: one word per group, every zero word a cycle.
    assert group_scan(np.array([2, 6]), 1).tolist() == [2, 3]
    assert group_scan(np.array([0, 1, 2]), 1).tolist() == [0, 0, 0]


def test_group_scan_delays_the_broadcast_of_a_fast_pe() -> None:
    # One PE with one entry per column takes an item per cycle: the broadcast is the
    # bottleneck, so each scanning cycle (2 before word 2, 3 between words 2 and 6) is one
    # more cycle of the MAC, and none is a stall.
    codes = np.ones((1, 8), dtype=np.uint8)
    x = np.zeros(8)
    x[[2, 6]] = 1.0
    plain = big_machine(1, 8)
    _, fast = _mac_stats(codes, x, pes=1, depth=8, machine=plain)
    stats, scanned = _mac_stats(codes, x, pes=1, depth=8, machine=replace(plain, lnzd_group_scan=1))
    assert scanned.cycles == fast.cycles + 5
    assert scanned.stall_cycles == fast.stall_cycles == 0
    # A batch schedules each sample's scan as the single runs do.
    xs = np.stack([x, np.roll(x, 1), np.ones(8)])
    program = fc_program([codes], [BOOK], [8], [8, 0], machine=replace(plain, lnzd_group_scan=1))
    batch = run_batch(program, {"x": xs})
    singles = [Emulator(program).run({"x": row[None]}).stats.cycles for row in xs]
    assert [run.cycles for run in batch.runs] == singles
    assert singles[0] == stats.cycles


@pytest.mark.parametrize("depth", [1, 3, 7, 8])
def test_long_schedule_in_blocks_equals_the_cycle_by_cycle_pipeline(depth: int) -> None:
    # More items than one gather chunk (256), in blocks of D items that do not divide it.
    work = np.random.default_rng(depth).integers(1, 9, size=(600, 3))
    plan = schedule(work, depth, 2, 1)
    assert (plan.window, plan.stall.tolist(), plan.stall_cycles) == _by_cycles(work, depth, 2, 1)


def test_a_mac_cost_is_computed_once_per_broadcast_pattern() -> None:
    from eiec.emulator.cycles import mac_costs
    from eiec.emulator.layers import LayerTables

    rng = np.random.default_rng(5)
    codes = random_codes(rng, 40, 30, 0.4)
    program = fc_program([codes], [BOOK], [8], [8, 0], machine=big_machine(4, 3))
    layer = next(iter(program.layers.values()))
    tables = LayerTables.build(layer)
    patterns = [np.flatnonzero(rng.random(30) < 0.6) for _ in range(3)]
    batch = [patterns[0], patterns[1], patterns[0], patterns[2], patterns[1]]
    cached = mac_costs(program.machine, tables, batch, [30] * 5)
    assert len(tables.costs) == 3  # one computation per distinct pattern
    assert cached[0] is cached[2] and cached[1] is cached[4]
    again = mac_costs(program.machine, tables, batch, [30] * 5)
    assert all(a is b for a, b in zip(cached, again, strict=True))  # all from the cache
    for sent, cost in zip(batch, cached, strict=True):
        (fresh,) = mac_costs(program.machine, LayerTables.build(layer), [sent], [30])
        assert cost[1] == fresh[1]
        for name in ("window", "broadcasts", "stall_cycles", "ideal_cycles"):
            assert getattr(cost[0], name) == getattr(fresh[0], name)
        for name in ("busy", "padding", "pointer", "starved", "stall"):
            assert np.array_equal(getattr(cost[0], name), getattr(fresh[0], name))
