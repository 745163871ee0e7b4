"""The fixed-point error bound (eiec.emulator.bounds) worked out by hand on a tiny layer."""

from __future__ import annotations

import itertools
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from eiec.codegen.tables import activation_table
from eiec.emulator import EmulatorConfig
from eiec.emulator import bounds as bounds_module
from eiec.emulator.arith import FixedArith
from eiec.emulator.batch import run_lanes
from eiec.emulator.bounds import (
    FLOAT32_U,
    RULES,
    SPREAD_SAFETY,
    ErrorBounds,
    Saturation,
    gamma,
    missing_rules,
)
from eiec.emulator.emulator import Emulator
from eiec.emulator.events import Event
from eiec.errors import EmulatorError
from eiec.isa.builder import fc_program
from eiec.isa.parser import parse
from eiec.isa.program import (
    Buffer,
    EwAdd,
    EwCopy,
    EwLut,
    EwMul,
    Halt,
    Instruction,
    Machine,
    Port,
    Program,
    SparseColumnMac,
    View,
)
from eiec.runtime.verify import emulate_with_bounds


def test_one_layer_bound_is_the_documented_sum_of_its_terms() -> None:
    # W = [[0.5, -0.25, 0], [0, -0.25, 0.5]] in a codebook of 10 fraction bits (dw = 2**-11),
    # x with 8 (0.3 -> 77/256, off by 0.2/256; -1 and 0.5 exact), y with 6 (rounding 2**-7).
    codes = np.array([[1, 2, 0], [0, 2, 1]], dtype=np.uint8)
    book = np.array([0, 512, -256], dtype=np.int16)
    machine = Machine(pes=2, spmat_sram=4096, ptr_sram=4096, act_sram=4096)
    program = fc_program([codes], [book], [10], [8, 6], machine=machine, relu=False)
    x = np.array([[0.3, -1.0, 0.5]])
    run = emulate_with_bounds(program, {"x": x})

    dw, e0, g = 2.0**-11, 0.2 / 256, gamma(4)
    a = np.array([77 / 256 + e0, 1.0, 0.5])  # |a| + e_a: the reach of the CPU's activation
    expected = np.array(
        [
            0.5 * e0 + dw * (a[0] + a[1]) + g * ((0.5 + dw) * a[0] + (0.25 + dw) * a[1]),
            dw * (a[1] + a[2]) + g * ((0.25 + dw) * a[1] + (0.5 + dw) * a[2]),
        ]
    )
    expected += 2.0**-7  # the writeback rounds 18 fraction bits to 6
    np.testing.assert_allclose(run.bounds["y"][0], expected, rtol=1e-12)
    exact = np.array([[0.5, -0.25, 0.0], [0.0, -0.25, 0.5]]) @ x[0]
    assert (np.abs(run.outputs["y"][0] - exact) <= run.bounds["y"][0]).all()

    # float32 mode: inputs only round to float32, no writeback rounding, float32 terms twice.
    real = emulate_with_bounds(program, {"x": x}, EmulatorConfig(arith="float32"))
    e0 = abs(0.3 - float(np.float32(0.3)))
    a = np.array([float(np.float32(0.3)) + e0, 1.0, 0.5])
    expected = np.array(
        [
            0.5 * e0 + dw * (a[0] + a[1]) + 2 * g * ((0.5 + dw) * a[0] + (0.25 + dw) * a[1]),
            dw * (a[1] + a[2]) + 2 * g * ((0.25 + dw) * a[1] + (0.5 + dw) * a[2]),
        ]
    )
    np.testing.assert_allclose(real.bounds["y"][0], expected, rtol=1e-12)


def test_against_the_decoded_weights_the_codebook_term_is_gone() -> None:
    # The same layer, the reference holding the program's own weights (exact_weights): the
    # bound is the documented one with dw = 0.
    program, x = _tiny()
    emulator = Emulator(program)
    probe = ErrorBounds(program, exact_weights=True)
    emulator.probes = (probe,)
    out = emulator.run({"x": x}).outputs["y"][0]
    e0, g = 0.2 / 256, gamma(4)
    a = np.array([77 / 256 + e0, 1.0, 0.5])
    expected = np.array([0.5 * e0 + g * (0.5 * a[0] + 0.25 * a[1]), g * (0.25 * a[1] + 0.5 * a[2])])
    expected += 2.0**-7
    np.testing.assert_allclose(probe.tolerance("y")[:2], expected, rtol=1e-12)
    exact = np.array([[0.5, -0.25, 0.0], [0.0, -0.25, 0.5]]) @ x[0]
    assert (np.abs(out - exact) <= expected).all()


def _tiny() -> tuple[Program, np.ndarray]:
    codes = np.array([[1, 2, 0], [0, 2, 1]], dtype=np.uint8)
    book = np.array([0, 512, -256], dtype=np.int16)
    machine = Machine(pes=2, spmat_sram=4096, ptr_sram=4096, act_sram=4096)
    return fc_program([codes], [book], [10], [8, 6], machine=machine, relu=False), np.array(
        [[0.3, -1.0, 0.5]]
    )


def test_every_instruction_of_the_isa_has_a_bound_rule() -> None:
    assert missing_rules(RULES) == []
    partial = {cls: r for cls, r in RULES.items() if cls is not EwLut}
    assert missing_rules(partial) == ["ew-lut"]


def test_an_instruction_without_a_rule_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    program, x = _tiny()
    monkeypatch.delitem(RULES, SparseColumnMac)
    with pytest.raises(EmulatorError) as caught:
        emulate_with_bounds(program, {"x": x})
    assert str(caught.value) == (
        "eiec.emulator.bounds.RULES: no error-bound rule for 'sparse-column-mac' (add a Rule "
        "for the instruction class: how it changes each word's bound)"
    )


def test_the_bound_is_a_probe_seeing_each_instruction_before_and_after() -> None:
    program, x = _tiny()
    seen: list[str] = []

    class Recorder:
        def start(self, inputs: object, read: object) -> None:
            seen.append("start")

        def before(self, instruction: Instruction, read: object) -> None:
            seen.append(f"before {instruction.MNEMONIC}")

        def after(self, event: Event, read: object) -> None:
            seen.append(f"after {event.instruction.MNEMONIC}")

    Emulator(program, probes=[Recorder()]).run({"x": x})
    names = [ins.MNEMONIC for ins in program.text]
    assert seen == ["start"] + [f"{p} {n}" for n in names for p in ("before", "after")]


def test_a_saturated_input_taints_the_rows_that_use_it_and_nothing_else() -> None:
    # x has 8 fraction bits: |x| < 128. Column 0 feeds row 0 only.
    program, _ = _tiny()
    run = emulate_with_bounds(program, {"x": np.array([[300.0, -1.0, 0.5]])})
    assert run.saturated["y"][0].tolist() == [True, False]
    assert run.first_saturation == Saturation(None, "input 'x' (buffer 'x')", 1)


def test_a_clamping_writeback_taints_exactly_its_clamped_words() -> None:
    # With 12 fraction bits y holds |y| < 8: row 0 = 0.5 * 100 + 0.25 clamps, row 1 = 0.5 not.
    program, _ = _tiny()
    program.buffers["y"] = replace(program.buffers["y"], frac=12)  # |y| < 8
    run = emulate_with_bounds(program, {"x": np.array([[100.0, -1.0, 0.5]])})
    assert run.saturated["y"][0].tolist() == [True, False]
    assert run.first_saturation is not None
    assert run.first_saturation.where == "instruction 3 (writeback y[0]), buffer 'y'"


def test_a_wide_layer_gets_the_statistical_bound_its_terms_add_in_quadrature() -> None:
    # One row of 256 equal weights 0.25 (code 1, 14 fraction bits), x = +-0.3 alternating: the
    # worst case adds 256 input errors of 0.2/256; their known signed sum is 0. The codebook
    # rounding (shared by all entries of code 1) and the float32 terms add in quadrature, and
    # so does the writeback rounding.
    codes = np.ones((1, 256), dtype=np.uint8)
    book = np.array([0, 4096], dtype=np.int16)
    machine = Machine(pes=1, spmat_sram=4096, ptr_sram=4096, act_sram=4096)
    program = fc_program([codes], [book], [14], [8, 8], machine=machine, relu=False, bias=False)
    x = np.tile([0.3, -0.3], 128)[None]
    run = emulate_with_bounds(program, {"x": x})
    e0, dw, u = 0.2 / 256, 2.0**-15, 2.0**-24
    reach = 256 * (77 / 256 + e0)
    worst = 256 * 0.25 * e0 + dw * reach + gamma(257) * (0.25 + dw) * reach + 2.0**-9
    spread = np.hypot(dw * reach, u * np.sqrt(257) * (0.25 + dw) * reach)
    spread = np.hypot(spread, 2.0**-9)
    assert SPREAD_SAFETY * spread < worst
    np.testing.assert_allclose(run.bounds["y"][0], [SPREAD_SAFETY * spread], rtol=1e-12)
    assert abs(run.outputs["y"][0, 0]) <= run.bounds["y"][0, 0]


def test_coherent_input_errors_are_bounded_by_their_known_sum() -> None:
    # The same row with x = 0.3 everywhere: all 256 errors have one sign and add up to 0.05,
    # which a root sum of squares (0.003) would not cover; the known sum does.
    codes = np.ones((1, 256), dtype=np.uint8)
    book = np.array([0, 4096], dtype=np.int16)
    machine = Machine(pes=1, spmat_sram=4096, ptr_sram=4096, act_sram=4096)
    program = fc_program([codes], [book], [14], [8, 8], machine=machine, relu=False, bias=False)
    run = emulate_with_bounds(program, {"x": np.full((1, 256), 0.3)})
    error = abs(run.outputs["y"][0, 0] - 0.25 * 256 * 0.3)
    assert error == pytest.approx(256 * 0.25 * 0.2 / 256, rel=1e-4)
    assert error <= run.bounds["y"][0, 0]


def _sigmoid_after_copy(copy_frac: int) -> Program:
    """x (``copy_frac + 4`` fraction bits) -> ew-copy to g (``copy_frac``: rounds by
    ``2**-(copy_frac+1)``) -> ew-lut sigmoid (the LSTM's table) -> d (14 bits)."""
    buffers = {
        "x": Buffer("x", rows=1, cols=4, pitch=4, frac=copy_frac + 4),
        "g": Buffer("g", rows=1, cols=4, pitch=4, frac=copy_frac),
        "d": Buffer("d", rows=1, cols=4, pitch=4, frac=14),
    }
    return Program(
        machine=Machine(pes=4),
        buffers=buffers,
        inputs=[Port("x", "x", (4,))],
        outputs=[Port("d", "d", (4,))],
        tables={"sigmoid": activation_table("sigmoid")},
        text=[EwCopy(View("g"), View("x")), EwLut(View("d"), View("g"), "sigmoid"), Halt()],
    )


def test_a_table_passes_its_input_error_by_its_slope_around_the_runs_value() -> None:
    # g = x rounded to 6 fraction bits: off by at most e = 2**-7. sigmoid passes e on by its
    # steepest slope over [g - e, g + e] (at 6: 0.0025, not the global 1/4), plus the table's
    # own error at g (the correct table's: this program's is correct, so the emulator's).
    program = _sigmoid_after_copy(6)
    x = np.array([0.0, 6.0, -3.0, 20.0])  # on g's grid: D = lut(x)
    probe = ErrorBounds(program)
    out = Emulator(program, probes=(probe,)).run({"x": x}).outputs["d"]
    e = 2.0**-7
    sigmoid = 1 / (1 + np.exp(-x))
    nearest = np.clip(0.0, x - e, x + e)
    slope = np.exp(-nearest) / (1 + np.exp(-nearest)) ** 2
    expected = np.abs(out - sigmoid) + FLOAT32_U * sigmoid + slope * e
    np.testing.assert_allclose(probe.words["d"], expected, rtol=1e-9)
    assert probe.words["d"][1] < 0.05 * 0.25 * e  # 1% of e, plus the table's own error


def test_a_table_output_error_is_capped_by_the_functions_range() -> None:
    # g with -2 fraction bits (off by up to 2): sigmoid(g_ref) is in [0, 1] whatever g_ref is.
    program = _sigmoid_after_copy(-2)
    probe = ErrorBounds(program)
    out = Emulator(program, probes=(probe,)).run({"x": np.array([0.0, 4.0, -4.0, 8.0])})
    d = out.outputs["d"]
    assert probe.words["d"][0] == 0.5  # sigmoid(0) = 0.5: within 0.5 of [0, 1]
    assert (probe.words["d"] <= np.maximum(d, 1 - d)).all()


def test_a_wrong_table_entry_is_not_absorbed_into_the_bound() -> None:
    # The bound takes the correct table's error at the input, not the program's own: a
    # sample off by 0.03 makes the output err beyond its bound.
    program = _sigmoid_after_copy(6)
    table = program.tables["sigmoid"]
    values = table.values.copy()
    values[192] += 500  # the sample at x = 0
    program.tables["sigmoid"] = replace(table, values=values)
    probe = ErrorBounds(program)
    out = Emulator(program, probes=(probe,)).run({"x": np.zeros(4)}).outputs["d"]
    assert (np.abs(out - 0.5) > probe.tolerance("d")).all()


def _cell_carry(steps: int) -> Program:
    """x (8 fraction bits) -> c = f * c + x, ``steps`` times (f and c in 14 and 6 bits): a
    cell state carried by a forget gate, rounding twice a step to c's 6 bits."""
    buffers = {
        "x": Buffer("x", rows=1, cols=4, pitch=4, frac=8),
        "f": Buffer("f", rows=1, cols=4, pitch=4, frac=14, init=np.full(4, 15565, np.int16)),
        "c": Buffer("c", rows=1, cols=4, pitch=4, frac=6),
    }
    step = [EwMul(View("c"), View("f"), View("c")), EwAdd(View("c"), View("c"), View("x"))]
    return Program(
        machine=Machine(pes=4),
        buffers=buffers,
        inputs=[Port("x", "x", (4,))],
        outputs=[Port("c", "c", (4,))],
        text=[*step * steps, Halt()],
    )


def test_element_wise_roundings_are_carried_with_their_signs() -> None:
    # c <- 0.95 c + x: the emulator's roundings (twice a step, up to 2**-7 each) are known to
    # the probe with their signs (its result less the exact one of its operands), so the
    # tolerance of c is the carried sum of what was rounded (plus six times the float32
    # reference's tiny spread), not six times the sum of the roundings' bounds.
    steps = 20
    program = _cell_carry(steps)
    x = np.array([0.3, -0.71, 0.123, 0.5])
    probe = ErrorBounds(program)
    out = Emulator(program, probes=(probe,)).run({"x": x}).outputs["c"]
    f = 15565 / 2**14
    exact = np.zeros(4)
    for _ in range(steps):
        exact = f * exact + x
    error = out - exact
    known = probe.known["c"]
    # The known part is the whole error but the float32 reference's rounding.
    np.testing.assert_allclose(known, error, atol=1e-6)
    tolerance = probe.tolerance("c")
    assert (np.abs(error) <= tolerance).all()
    assert (tolerance < np.abs(known) + 1e-4).all()
    # A constant input is the cell's fixed point: the roundings repeat, and add up to about
    # r / (1 - f), as the error shows; still below the worst case, the sum of their bounds.
    assert (tolerance < 0.5 * probe.words["c"]).all()


def test_a_wrong_element_wise_result_is_not_taken_for_a_rounding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An ew-mul off by 4 LSBs of its destination (no rounding does that): only half an LSB
    # of it is taken as known, and the result errs beyond its tolerance.
    program = _cell_carry(1)
    x = np.array([0.3, -0.71, 0.123, 0.5])
    mul = FixedArith.mul

    def wrong(self: FixedArith, *args: object, **kwargs: object) -> tuple[np.ndarray, int]:
        words, saturations = mul(self, *args, **kwargs)
        return words + 4, saturations

    monkeypatch.setattr(FixedArith, "mul", wrong)
    probe = ErrorBounds(program)
    out = Emulator(program, probes=(probe,)).run({"x": x}).outputs["c"]
    exact = 0.0 * 15565 / 2**14 + x  # c starts at 0
    assert (np.abs(out - exact) > probe.tolerance("c")).all()


def _random_fc(seed: int) -> Program:
    """Three FC layers (37 -> 50 -> 23 -> 9) with random codes, 40% dense, on 4 PEs."""
    rng = np.random.default_rng(seed)
    sizes = [37, 50, 23, 9]
    codes = [
        (rng.integers(0, 16, (rows, cols)) * (rng.random((rows, cols)) < 0.4)).astype(np.uint8)
        for cols, rows in itertools.pairwise(sizes)
    ]
    books = [np.concatenate([[0], rng.integers(-3000, 3000, 15)]).astype(np.int16)] * 3
    machine = Machine(pes=4, spmat_sram=1 << 16, ptr_sram=1 << 16, act_sram=1 << 16)
    return fc_program(codes, books, [12, 11, 13], [6, 7, 8, 9], machine=machine, relu=True)


def test_a_rows_sums_over_its_entries_are_bincounts_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The MAC rule's sums are sparse products for all lanes at once: each must add a row's
    # products in the entries' order, as a per-run np.bincount over the entries does.
    program = _random_fc(5)
    bounds = ErrorBounds(program)
    rng = np.random.default_rng(6)
    monkeypatch.setattr(bounds_module, "CODE_BLOCK", 16 * 7 * 5)  # blocks of 5 rows at 7 lanes
    for name in program.layers:
        w = bounds.layer(name)
        values = rng.normal(size=(w.cols, 7)) * 10.0 ** rng.integers(-9, 3, (w.cols, 7))
        for factor, per_entry in (("weight", w.weight), ("signed", w.signed), ("one", 1.0)):
            got = w.sums(factor, values)
            for lane in range(7):
                want = np.bincount(w.row, per_entry * values[w.col, lane], minlength=w.rows)
                assert got[:, lane].tobytes() == want.tobytes()
        squares = w.code_square_sums(values)
        for lane in range(7):
            flat = np.bincount(w.row * 16 + w.code, values[w.col, lane], minlength=w.rows * 16)
            # Each row's 16 squares added as numpy adds 16 contiguous values.
            want = (flat.reshape(w.rows, 16) ** 2).sum(axis=1)
            assert squares[:, lane].tobytes() == want.tobytes()
            alone = w.code_square_sums(np.ascontiguousarray(values[:, lane : lane + 1]))
            assert alone[:, 0].tobytes() == want.tobytes()


def test_lockstep_lanes_get_the_bounds_of_their_own_runs() -> None:
    # run_lanes probes its lanes with one ErrorBounds(lanes=B); each lane's
    # bounds, taints and saturations are those of its sample run alone, bit for bit.
    program = _random_fc(3)
    rng = np.random.default_rng(4)
    name = program.inputs[0].name
    samples = [{name: rng.normal(size=(1, 37)) * (40.0 if k % 7 == 3 else 3.0)} for k in range(12)]
    for fixed in (True, False):
        lanes = run_lanes(
            Emulator(program),
            samples,
            partial(lambda f, lanes: (ErrorBounds(program, fixed_point=f, lanes=lanes),), fixed),
        )
        saturated = 0
        for sample, (result, (batched,)) in zip(samples, lanes, strict=True):
            alone = ErrorBounds(program, fixed_point=fixed)
            Emulator(program, probes=[alone]).run(sample)
            for table in ("words", "spreads", "saturated", "known"):
                for buffer, words in getattr(alone, table).items():
                    assert getattr(batched, table)[buffer].tobytes() == words.tobytes()
            assert [w.bound.tobytes() for w in batched.writebacks] == [
                w.bound.tobytes() for w in alone.writebacks
            ]
            assert batched.first_saturation == alone.first_saturation
            saturated += result.stats.saturations
        assert saturated > 0  # the large samples clamp: taints are compared too


GOLDEN = Path(__file__).resolve().parents[1] / "golden"


class _LastEvent:
    """A probe keeping the event of the instruction that ran last."""

    event: Event

    def start(self, inputs: object, read: object) -> None:
        pass

    def before(self, instruction: Instruction, read: object) -> None:
        pass

    def after(self, event: Event, read: object) -> None:
        self.event = event


def _alone_and_together(
    program: Program,
    samples: list[dict[str, np.ndarray]],
    config: EmulatorConfig | None = None,
    strided: bool = False,
    **settings: object,
) -> tuple[list[ErrorBounds], ErrorBounds, int]:
    """Each sample's run in lockstep on a sibling emulator with its own probe, and one
    ``ErrorBounds(lanes=B)`` driven beside them with the lanes' reads stacked (``strided``:
    as a view that is not contiguous, as a slice of a lanes x words state would be) and one
    event (lane 0's with every lane's saturations): the per-lane probes, the lane probe and
    the saturations of all runs."""
    base = Emulator(program, config)
    lanes = [base.sibling() for _ in samples]
    alone = [ErrorBounds(program, **settings) for _ in samples]  # type: ignore[arg-type]
    last = [_LastEvent() for _ in samples]
    together = ErrorBounds(program, lanes=len(samples), **settings)  # type: ignore[arg-type]
    for lane, probe, events, sample in zip(lanes, alone, last, samples, strict=True):
        lane.probes = (probe, events)
        lane.reset(sample)

    def read(view: View) -> np.ndarray:
        if strided:
            return np.stack([lane.values(view) for lane in lanes], axis=1).T
        return np.stack([lane.values(view) for lane in lanes])

    stacked = {name: np.stack([np.asarray(s[name]) for s in samples]) for name in samples[0]}
    together.start(stacked, read)
    while (instruction := lanes[0].next_instruction()) is not None:
        together.before(instruction, read)  # before any lane's handler runs
        for lane in lanes:
            lane.step()
        counts = np.array([events.event.saturations for events in last], dtype=np.int64)
        saturations = counts if counts.any() else 0  # an int: every lane's count
        together.after(replace(last[0].event, saturations=saturations), read)
    clamps = sum(lane.result().stats.saturations for lane in lanes)
    return alone, together, clamps


def _assert_lanes_are_their_runs(alone: list[ErrorBounds], together: ErrorBounds) -> None:
    """Bit for bit: every table, writeback, first saturation and first unbounded word of
    each lane, and the stacked port tables."""
    tolerances, taints = together.ports()
    centres = together.port_centres()
    for index, probe in enumerate(alone):
        lane = together.lane(index)
        for table in ("words", "spreads", "saturated", "known", "exact"):
            mine, theirs = getattr(lane, table), getattr(probe, table)
            assert mine.keys() == theirs.keys(), table
            for buffer, words in theirs.items():
                assert mine[buffer].dtype == words.dtype, (table, buffer)
                assert mine[buffer].tobytes() == words.tobytes(), (table, buffer, index)
        assert len(lane.writebacks) == len(probe.writebacks)
        for mine_wb, theirs_wb in zip(lane.writebacks, probe.writebacks, strict=True):
            assert (mine_wb.layer, mine_wb.step, mine_wb.dst) == (
                theirs_wb.layer,
                theirs_wb.step,
                theirs_wb.dst,
            )
            for part in ("values", "bound", "saturated"):
                mine_part, theirs_part = getattr(mine_wb, part), getattr(theirs_wb, part)
                assert mine_part.tobytes() == theirs_part.tobytes(), (part, index)
        assert lane.first_saturation == probe.first_saturation, index
        assert lane.first_unbounded == probe.first_unbounded, index
        (want_tol, want_taint), want_centres = probe.ports(), probe.port_centres()
        for name in want_tol:
            assert tolerances[name][index].tobytes() == want_tol[name].tobytes()
            assert taints[name][index].tobytes() == want_taint[name].tobytes()
            assert centres[name][index].tobytes() == want_centres[name].tobytes()
            assert lane.ports()[0][name].tobytes() == want_tol[name].tobytes()


def _samples(program: Program, scales: list[float], seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {port.name: rng.normal(size=port.shape) * scale for port in program.inputs}
        for scale in scales
    ]


@pytest.mark.parametrize("fixed", [True, False])
def test_the_lanes_probe_gives_each_lane_the_bounds_of_its_run_alone_fc(fixed: bool) -> None:
    # Three FC layers; the large samples clamp their inputs and writebacks, the others not.
    program = _random_fc(3)
    config = EmulatorConfig(arith="fixed16" if fixed else "float32")
    scales = [3.0, 40.0, 0.5, 3.0, 300.0, 1.0, 0.0]
    for settings in ({}, {"exact_weights": True, "reference_u": 2.0**-11}):
        samples = _samples(program, scales, 4)
        alone, together, clamps = _alone_and_together(
            program, samples, config, bool(settings), fixed_point=fixed, **settings
        )
        _assert_lanes_are_their_runs(alone, together)
        if fixed:
            assert clamps > 0
            hit = [probe.first_saturation is not None for probe in alone]
            assert any(hit) and not all(hit)  # lanes that clamp and lanes that do not
        # One lane.
        alone, together, _ = _alone_and_together(program, samples[1:2], config, fixed_point=fixed)
        _assert_lanes_are_their_runs(alone, together)


def test_the_lanes_probe_taints_the_lanes_whose_accumulators_overflow() -> None:
    # 20-bit accumulators: the large samples overflow them, the small ones do not.
    program = _random_fc(7)
    program = replace(program, machine=replace(program.machine, acc_bits=20))
    samples = _samples(program, [0.01, 8.0, 0.02, 16.0], 8)
    alone, together, _ = _alone_and_together(program, samples)
    _assert_lanes_are_their_runs(alone, together)
    firsts = [probe.first_saturation for probe in alone]
    assert any(first is not None and first.accumulator for first in firsts)
    assert any(first is None for first in firsts)


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # float32 mode's sigmoid
@pytest.mark.parametrize("name", ["lstm_head", "gru_head"])
@pytest.mark.parametrize("fixed", [True, False])
def test_the_lanes_probe_gives_each_lane_the_bounds_of_its_run_alone_recurrent(
    name: str, fixed: bool
) -> None:
    # Recurrent programs: ew-mul, ew-add, ew-lut (sigmoid, tanh) and ew-copy on every lane.
    program = parse((GOLDEN / "compile" / f"{name}.eie").read_text(encoding="utf-8"))
    config = EmulatorConfig(arith="fixed16" if fixed else "float32")
    samples = _samples(program, [1.0, 3.0, 0.1, 1000.0, 0.0, 2.0], 9)
    for settings in ({}, {"exact_weights": True, "reference_u": 2.0**-11}):
        alone, together, _ = _alone_and_together(
            program, samples, config, bool(settings), fixed_point=fixed, **settings
        )
        _assert_lanes_are_their_runs(alone, together)
    if fixed:
        hit = [probe.first_saturation is not None for probe in alone]
        assert any(hit) and not all(hit)


@pytest.mark.parametrize(
    "program", [_cell_carry(20), _sigmoid_after_copy(6), _sigmoid_after_copy(-2)]
)
def test_the_lanes_probe_carries_each_lanes_known_roundings(program: Program) -> None:
    samples = _samples(program, [0.3, 1.0, 4.0, 0.0, 30.0], 10)
    for strided in (False, True):
        alone, together, _ = _alone_and_together(program, samples, strided=strided)
        _assert_lanes_are_their_runs(alone, together)


def test_the_lanes_probe_notes_each_lanes_first_unbounded_word() -> None:
    # c = x * x, then c = c * c six times, in -16 fraction bits: a lane with x != 0 has bounds
    # that square at each step and overflow; a lane of zeros stays bounded.
    buffers = {
        "x": Buffer("x", rows=1, cols=4, pitch=4, frac=-16),
        "c": Buffer("c", rows=1, cols=4, pitch=4, frac=-16),
    }
    square = EwMul(View("c"), View("c"), View("c"))
    program = Program(
        machine=Machine(pes=4),
        buffers=buffers,
        inputs=[Port("x", "x", (4,))],
        outputs=[Port("c", "c", (4,))],
        text=[EwMul(View("c"), View("x"), View("x")), *[square] * 6, Halt()],
    )
    samples = [
        {"x": np.array([3e4, 0.0, 5e5, 0.0])},
        {"x": np.zeros(4)},
        {"x": np.array([0.0, 7e4, 1e3, 2e4])},
    ]
    alone, together, _ = _alone_and_together(program, samples)
    _assert_lanes_are_their_runs(alone, together)
    unbounded = [probe.first_unbounded for probe in alone]
    assert unbounded[0] is not None and unbounded[1] is None and unbounded[2] is not None


def test_lane_of_the_bounds_of_one_run_is_an_error() -> None:
    program, _ = _tiny()
    with pytest.raises(ValueError, match="lanes=None"):
        ErrorBounds(program).lane(0)


def test_the_lanes_probe_takes_rail_words_as_clamped_only_in_lanes_that_clamped() -> None:
    # g = x + y in 10 fraction bits (|g| < 32): lane 0 clamps, lane 1 lands exactly on the
    # rail (32767 / 1024) without clamping, lane 2 neither.
    buffers = {name: Buffer(name, rows=1, cols=2, pitch=2, frac=10) for name in "xyg"}
    program = Program(
        machine=Machine(pes=2),
        buffers=buffers,
        inputs=[Port("x", "x", (2,)), Port("y", "y", (2,))],
        outputs=[Port("g", "g", (2,))],
        text=[EwAdd(View("g"), View("x"), View("y")), Halt()],
    )
    samples = [
        {"x": np.array([31.0, 1.0]), "y": np.array([5.0, 1.0])},
        {"x": np.array([31.0, 1.0]), "y": np.array([1023 / 1024, 1.0])},
        {"x": np.array([1.0, 1.0]), "y": np.array([1.0, 1.0])},
    ]
    alone, together, _ = _alone_and_together(program, samples)
    _assert_lanes_are_their_runs(alone, together)
    assert [probe.saturated["g"].tolist() for probe in alone] == [[True, False]] + [[False] * 2] * 2
