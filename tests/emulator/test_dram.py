"""Weights streamed from DRAM (isa/SPEC.md §3.6, §6): outputs as from SRAM, the cycle model's
invariants, the DRAM energy, and the compile mode that places layers."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eiec.codegen.streaming import place_weights, stream_report
from eiec.emulator import Emulator, EmulatorConfig, run_batch
from eiec.emulator.cycles import chunk_slices, transfer_cycles
from eiec.emulator.layers import LayerTables
from eiec.errors import CapacityError, EmulatorError
from eiec.isa import format_program, parse, verify
from eiec.isa.builder import fc_program, random_codes
from eiec.isa.capacity import chunk_space, layers_to_stream, plan_chunks, stream_layers
from eiec.isa.program import Chunk, Machine, Program, StreamChunk

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "valid"
BOOK = np.array([0, *range(-7, 8)], dtype=np.int16) * 300
UNBOUNDED = EmulatorConfig(dram_gbps=math.inf, dram_latency_ns=0.0)


def _program(
    seed: int, pes: int, sizes: list[int], density: float, machine: Machine | None = None
) -> Program:
    rng = np.random.default_rng(seed)
    codes = [random_codes(rng, rows, cols, density) for cols, rows in itertools.pairwise(sizes)]
    machine = machine or Machine(pes=pes)
    return fc_program(
        codes, [BOOK] * len(codes), [12] * len(codes), [10] * len(sizes), machine=machine
    )


def _cuts(draw: st.DrawFn, cols: int) -> tuple[int, ...]:
    inner = (
        draw(st.sets(st.integers(1, cols - 1), max_size=min(6, cols - 1))) if cols > 1 else set()
    )
    return (0, *sorted(inner), cols)


@st.composite
def streamed_cases(draw: st.DrawFn) -> tuple[Program, Program, np.ndarray]:
    """A random chain of 1-2 FC layers, the same program with a random subset streamed in
    random chunks, and a batch of inputs with some zero activations."""
    pes = draw(st.integers(1, 6))
    sizes = draw(st.lists(st.integers(1, 40), min_size=2, max_size=3))
    density = draw(st.sampled_from([0.05, 0.3, 0.8]))
    program = _program(draw(st.integers(0, 2**16)), pes, sizes, density)
    names = draw(st.sets(st.sampled_from(list(program.layers)), min_size=1))
    chunks = {name: _cuts(draw, program.layers[name].cols) for name in names}
    streamed = stream_layers(program, names, chunks)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.normal(size=(draw(st.integers(1, 3)), sizes[0]))
    x[rng.random(x.shape) < 0.4] = 0.0
    return program, streamed, x


@settings(max_examples=60, deadline=None)
@given(streamed_cases())
def test_streaming_changes_no_output_and_costs_nothing_at_unbounded_bandwidth(
    case: tuple[Program, Program, np.ndarray],
) -> None:
    program, streamed, x = case
    assert parse(format_program(streamed)) == streamed
    for arith in ("fixed16", "float32"):
        on_chip = run_batch(program, {"x": x}, EmulatorConfig(arith=arith))
        free = run_batch(streamed, {"x": x}, replace(UNBOUNDED, arith=arith))
        for a, b in zip(on_chip.outputs.values(), free.outputs.values(), strict=True):
            assert np.array_equal(a, b)
        for a, b in zip(on_chip.runs, free.runs, strict=True):
            assert b.cycles == a.cycles and b.dram_stall_cycles == 0
            assert b.dram_bytes > 0 and a.dram_bytes == 0


@settings(max_examples=60, deadline=None)
@given(streamed_cases(), st.sampled_from([0.05, 0.8, 12.8, 200.0]), st.sampled_from([0.0, 100.0]))
def test_cycles_are_never_below_bytes_over_bandwidth(
    case: tuple[Program, Program, np.ndarray], gbps: float, latency: float
) -> None:
    program, streamed, x = case
    config = EmulatorConfig(dram_gbps=gbps, dram_latency_ns=latency)
    on_chip = run_batch(program, {"x": x}).runs
    batch = run_batch(streamed, {"x": x}, config)
    bytes_per_cycle = gbps * 1000.0 / 800.0
    for sample, (stats, base) in enumerate(zip(batch.runs, on_chip, strict=True)):
        assert stats.cycles >= stats.dram_bytes / bytes_per_cycle
        assert stats.cycles == base.cycles + stats.dram_stall_cycles
        assert stats.dram_stall_cycles >= 0
        for mac in stats.layers:
            assert mac.cycles >= mac.dram_bytes / bytes_per_cycle
            assert mac.memory_bound == (mac.transfer_cycles > mac.compute_cycles)
        # the lockstep batch times each sample as a run of its own
        alone = Emulator(streamed, config).run({"x": x[sample : sample + 1]}).stats
        assert alone.cycles == stats.cycles


def test_a_fitting_program_is_unchanged() -> None:
    program = _program(1, 4, [30, 20, 10], 0.3)
    placed, names = place_weights(program, "auto")
    assert names == [] and placed is program
    assert "dram" not in format_program(program) and "stream" not in format_program(program)
    stats = Emulator(program).run({"x": np.ones((1, 30))}).stats
    assert stats.dram_bytes == 0 and stats.energy_breakdown_pj["dram"] == 0.0


def test_the_golden_streamed_layer_matches_its_on_chip_twin() -> None:
    streamed = parse((GOLDEN / "fc_streamed.eie").read_text(encoding="utf-8"))
    on_chip = parse((GOLDEN / "fc_bias_relu.eie").read_text(encoding="utf-8"))
    x = np.array([[0.5, -1.0, 2.0]])
    a = Emulator(streamed).run({"x": x})
    b = Emulator(on_chip).run({"x": x})
    assert np.array_equal(a.outputs["y"], b.outputs["y"])
    # each chunk: 4 entries (2 + 2, 3 + 1) and 3 pointers of 2 bytes on each of 2 PEs
    assert a.stats.dram_bytes == 16 + 16
    assert a.stats.activity["dram_bit"] == 8 * 32
    assert a.stats.energy_breakdown_pj["dram"] == pytest.approx(8 * 32 * 20.0)


def test_transfer_time_and_stall_by_hand() -> None:
    """One chunk, one broadcast item: the broadcast waits for the whole transfer."""
    machine = Machine(pes=1, dram_gbps=1.6, dram_latency_ns=10.0)  # 2 bytes/cycle, 8 cycles
    codes = np.array([[1], [0], [2], [3]], dtype=np.uint8)
    program = fc_program([codes], [BOOK], [12], [10, 10], machine=machine)
    streamed = stream_layers(program, ["fc0"], {"fc0": (0, 1)})
    tables = LayerTables.build(streamed.layers["fc0"])
    # 3 entries + 2 pointers of 2 bytes = 7 bytes: 8 + 3.5 cycles, ready in cycle 12
    assert chunk_slices(machine, tables).tolist() == [[7]]
    assert transfer_cycles(machine, np.array([7])).tolist() == [11.5]
    base = Emulator(program).run({"x": np.ones((1, 1))}).stats
    stats = Emulator(streamed).run({"x": np.ones((1, 1))}).stats
    # the PE would take the item in cycle lnzd_latency + queue_latency = 2; it takes it in 12
    assert stats.dram_stall_cycles == 12 - 2
    assert stats.cycles == base.cycles + 10
    zero = Emulator(streamed).run({"x": np.zeros((1, 1))}).stats
    assert zero.layers[0].cycles == 12  # no broadcast: the MAC still waits for its transfer


def test_chunks_arrive_one_after_the_other() -> None:
    """Three one-column chunks of 48 entries, DRAM of unbounded bandwidth and 80 cycles of
    latency: chunk c arrives in cycle 80 (c + 1), after the PE has done chunk c - 1."""
    machine = Machine(pes=1, fifo_depth=1, dram_gbps=math.inf, dram_latency_ns=100.0)
    codes = np.ones((48, 3), dtype=np.uint8)
    program = fc_program([codes], [BOOK], [12], [10, 10], machine=machine)
    streamed = stream_layers(program, ["fc0"], {"fc0": (0, 1, 2, 3)})
    mac = Emulator(streamed).run({"x": np.ones((1, 3))}).stats.layers[0]
    base = Emulator(program).run({"x": np.ones((1, 3))}).stats.layers[0]
    # on chip: the PE takes the items in cycles 2, 50, 98; its last slot ends in 146
    assert base.cycles == 146 + 1 + 3  # + ptr_latency + the ALU's drain
    # streamed: takes in 80, 160 (chunk 1 arrives 80 after chunk 0), 240; the last slot ends
    # in 288
    assert mac.cycles == 288 + 1 + 3
    assert mac.dram_stall_cycles == mac.cycles - base.cycles
    assert mac.memory_bound  # 3 x 80 cycles of transfers, 150 of computation


def test_plan_chunks_fits_half_the_free_sram() -> None:
    program = _program(3, 4, [300, 64], 0.5, Machine(pes=4, spmat_sram=2048, ptr_sram=256))
    layer = program.layers["fc0"]
    space = chunk_space(program.machine, [replace(layer, chunks=(0, layer.cols))])
    cuts = plan_chunks(program.machine, layer.ptr, space)
    assert cuts is not None and cuts[0] == 0 and cuts[-1] == layer.cols
    streamed = stream_layers(program, ["fc0"])
    assert streamed.layers["fc0"].chunks == cuts
    verify(streamed)
    sizes = streamed.layers["fc0"].chunk_entries()
    assert sizes.max() <= 1024 and max(np.diff(cuts)) + 1 <= 256 * 8 // 16 // 2
    text = [i for i in streamed.text if isinstance(i, StreamChunk)]
    assert [i.chunk for i in text] == [Chunk("fc0", k) for k in range(len(cuts) - 1)]


def test_auto_streams_only_what_does_not_fit() -> None:
    machine = Machine(pes=4, spmat_sram=3000, ptr_sram=1024)
    program = _program(4, 4, [200, 150, 10], 0.5, machine)  # fc0: ~3750 entries per PE
    assert layers_to_stream(machine, program.layers.values()) == ["fc0"]
    placed, names = place_weights(program, "auto")
    assert names == ["fc0"] and placed.layers["fc1"].chunks is None
    verify(placed)
    with pytest.raises(CapacityError, match="cannot be streamed"):
        place_weights(_program(4, 1, [4, 400], 1.0, Machine(pes=1, spmat_sram=300)), "dram")
    (report,) = stream_report(placed)
    assert report.layer == "fc0" and report.dram_stall_cycles == report.cycles - (
        report.compute_cycles
    )


def test_chunks_out_of_order_are_refused_by_the_emulator() -> None:
    program = stream_layers(_program(5, 2, [10, 6], 0.5), ["fc0"], {"fc0": (0, 4, 10)})
    text = list(program.text)
    first = next(i for i, ins in enumerate(text) if isinstance(ins, StreamChunk))
    text[first], text[first + 1] = text[first + 1], text[first]
    with pytest.raises(EmulatorError, match="not the next chunk"):
        Emulator(replace(program, text=text)).run({"x": np.ones((1, 10))})


def test_a_streamed_recurrent_layer_is_streamed_at_every_time_step() -> None:
    """The LSTM of the golden program runs its one layer at two time steps: streamed, each
    MAC moves all of the layer's chunks again (nothing stays on chip between MACs)."""
    program = parse((GOLDEN / "lstm_two_steps.eie").read_text(encoding="utf-8"))
    cols = program.layers["lstm"].cols
    streamed = stream_layers(program, ["lstm"], {"lstm": (0, cols // 2, cols)})
    x = np.array([[[0.5, -0.25], [1.0, 0.75]]])
    on_chip = Emulator(program).run({"x": x})
    stats = Emulator(streamed, UNBOUNDED).run({"x": x}).stats
    layer = LayerTables.build(streamed.layers["lstm"])
    once = int(chunk_slices(streamed.machine, layer).sum())
    macs = [step for step in stats.layers if step.layer == "lstm"]
    assert len(macs) == 2
    assert [mac.dram_bytes for mac in macs] == [once, once]
    assert stats.dram_bytes == 2 * once
    assert stats.cycles == on_chip.stats.cycles


def test_a_word_is_not_shared_across_chunks() -> None:
    # One PE, two columns of 3 entries (entries 0..2 and 3..5: both in word 0). On chip the
    # second column reads nothing new; streamed in one chunk per column, its chunk sits in the
    # other half of the SRAM, word 0 of that half: one more read.
    codes = np.zeros((3, 2), dtype=np.uint8)
    codes[:, :] = 1
    program = fc_program([codes], [BOOK], [12], [10, 10], machine=Machine(pes=1))
    x = np.ones((1, 2))
    on_chip = Emulator(program).run({"x": x}).stats.activity["spmat_read"]
    one_chunk = stream_layers(program, ["fc0"], {"fc0": (0, 2)})
    two_chunks = stream_layers(program, ["fc0"], {"fc0": (0, 1, 2)})
    assert on_chip == 1
    assert Emulator(one_chunk, UNBOUNDED).run({"x": x}).stats.activity["spmat_read"] == 1
    assert Emulator(two_chunks, UNBOUNDED).run({"x": x}).stats.activity["spmat_read"] == 2
