"""Functional semantics (isa/SPEC.md §4, §5) against plain numpy references written from the
SPEC, bit for bit in fixed16 and to 1e-5 in float32."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eiec.emulator import Emulator, EmulatorConfig
from eiec.emulator.semantics import HANDLERS
from eiec.isa.builder import fc_program, random_codes
from eiec.isa.program import (
    INSTRUCTIONS,
    Buffer,
    EwAdd,
    EwCopy,
    EwLut,
    EwMul,
    Halt,
    Machine,
    Port,
    Program,
    Table,
    View,
)

from .programs import big_machine

WORD_MIN, WORD_MAX = -32768, 32767


def ref_quantize(x: np.ndarray, frac: int) -> np.ndarray:
    """Round half up to ``frac`` fraction bits, saturate to 16 bits (SPEC §3.4)."""
    return np.clip(np.floor(x * 2.0**frac + 0.5), WORD_MIN, WORD_MAX).astype(np.int64)


def ref_narrow(x: np.ndarray, shift: int) -> np.ndarray:
    """``sat(round_shift(x, shift))`` (SPEC §4), written out."""
    x = np.asarray(x, dtype=np.int64)
    shifted = (x + (1 << (shift - 1))) >> shift if shift > 0 else x << -shift
    return np.clip(shifted, WORD_MIN, WORD_MAX)


def ref_fc_chain(codes, books, book_fracs, fracs, x, *, bias, relu):
    """Dense reference: a_q -> sat(round((W_q @ [a_q; 1]) >> s)) layer after layer."""
    a = ref_quantize(x, fracs[0])
    for i, c in enumerate(codes):
        w = np.asarray(books[i], dtype=np.int64)[c]
        if bias:
            a = np.append(a, min(1 << fracs[i], WORD_MAX))
        acc = w @ a
        if relu or i < len(codes) - 1:
            acc = np.maximum(acc, 0)
        a = ref_narrow(acc, book_fracs[i] + fracs[i] - fracs[i + 1])
    return a


@st.composite
def chains(draw: st.DrawFn):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    depth = draw(st.integers(1, 3))
    widths = [draw(st.integers(1, 40)) for _ in range(depth + 1)]
    bias = draw(st.booleans())
    codes = [
        random_codes(rng, widths[i + 1], widths[i] + bias, draw(st.floats(0.05, 0.7)))
        for i in range(depth)
    ]
    books = []
    for _ in range(depth):
        book = rng.integers(-20000, 20000, size=draw(st.integers(2, 16)))
        book[0] = 0
        books.append(book.astype(np.int16))
        codes[len(books) - 1] %= np.uint8(book.size)
    book_fracs = [draw(st.integers(10, 16)) for _ in range(depth)]
    fracs = [draw(st.integers(4, 14)) for _ in range(depth + 1)]
    x = rng.normal(0, 2, size=widths[0]) * (rng.random(widths[0]) < 0.6)
    return codes, books, book_fracs, fracs, x, bias, draw(st.booleans()), draw(st.integers(1, 9))


@given(chains())
@settings(max_examples=80, deadline=None)
def test_fixed16_equals_reference_bit_for_bit(case) -> None:
    codes, books, book_fracs, fracs, x, bias, relu, pes = case
    program = fc_program(
        codes, books, book_fracs, fracs, machine=big_machine(pes), bias=bias, relu=relu
    )
    result = Emulator(program).run({"x": x.reshape(1, -1)})
    expected = ref_fc_chain(codes, books, book_fracs, fracs, x, bias=bias, relu=relu)
    np.testing.assert_array_equal(result.outputs["y"][0], expected * 2.0 ** -fracs[-1])


def test_saturations_are_counted() -> None:
    # y = 1.0 * 20000/2**8 * x with x = [0.5, 8, -8]: 39.06, 625, -625; y has frac 8 so it
    # holds up to 127.99: two outputs clamp (relu off).
    codes = np.eye(3, dtype=np.uint8)
    book = np.array([0, 20000], dtype=np.int16)
    program = fc_program([codes], [book], [8], [8, 8], machine=big_machine(2), relu=False)
    result = Emulator(program).run({"x": np.array([[0.5, 8.0, -8.0]])})
    assert result.outputs["y"].tolist() == [[39.0625, WORD_MAX / 256, WORD_MIN / 256]]
    assert result.stats.saturations == 2
    assert result.stats.saturation_events == [{"pc": 3, "instruction": "writeback", "count": 2}]


def test_relu_writeback_clamps_before_rounding_so_negative_sums_never_saturate() -> None:
    # As test_saturations_are_counted with relu on: -625 becomes 0 before narrowing (SPEC,
    # relu-writeback), so only 625 saturates. ReLU after narrowing gives the same words but
    # counts -625's clamp too.
    codes = np.eye(3, dtype=np.uint8)
    book = np.array([0, 20000], dtype=np.int16)
    program = fc_program([codes], [book], [8], [8, 8], machine=big_machine(2), relu=True)
    result = Emulator(program).run({"x": np.array([[0.5, 8.0, -8.0]])})
    assert result.outputs["y"].tolist() == [[39.0625, WORD_MAX / 256, 0.0]]
    assert result.stats.saturation_events == [
        {"pc": 3, "instruction": "relu-writeback", "count": 1}
    ]


def test_input_saturations_are_counted() -> None:
    codes = np.eye(2, dtype=np.uint8)
    program = fc_program(
        [codes], [np.array([0, 256], np.int16)], [8], [12, 12], machine=big_machine(1)
    )
    result = Emulator(program).run({"x": np.array([[100.0, 1.0]])})
    assert result.stats.saturation_events[0] == {"input": "x", "count": 1}
    assert result.outputs["y"].tolist() == [[WORD_MAX / 4096, 1.0]]


def test_float64_accumulation_fallback_is_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    codes = [random_codes(rng, 30, 25, 0.4)]
    books = [np.array([0, *rng.integers(-30000, 30000, 15)], dtype=np.int16)]
    program = fc_program(codes, books, [15], [10, 6], machine=big_machine(3), relu=False)
    x = {"x": rng.normal(0, 4, (1, 25))}
    fast = Emulator(program).run(x).outputs["y"]
    monkeypatch.setattr("eiec.emulator.layers.FLOAT64_EXACT", 0)
    emulator = Emulator(program)
    assert not emulator.tables["fc0"].exact_in_float64
    np.testing.assert_array_equal(emulator.run(x).outputs["y"], fast)


def test_accumulator_overflow_saturates_and_counts() -> None:
    # acc_bits = 17: accumulators hold -65536..65535. 3 * (200 * 200) = 120000 clamps to 65535.
    codes = np.ones((1, 3), dtype=np.uint8)
    program = fc_program(
        [codes], [np.array([0, 200], np.int16)], [0], [0, 0], machine=big_machine(1)
    )
    program.machine = dataclasses.replace(program.machine, acc_bits=17)
    result = Emulator(program).run({"x": np.full((1, 3), 200.0)})
    assert result.stats.saturation_events[0] == {
        "pc": 2,
        "instruction": "sparse-column-mac",
        "count": 1,
    }
    # 65535 then saturates to 16 bits at the writeback (a second event).
    assert result.outputs["y"].tolist() == [[WORD_MAX]]


@given(chains())
@settings(max_examples=40, deadline=None)
def test_float32_equals_dense_product(case) -> None:
    codes, books, book_fracs, fracs, x, bias, relu, pes = case
    program = fc_program(
        codes, books, book_fracs, fracs, machine=big_machine(pes), bias=bias, relu=relu
    )
    config = EmulatorConfig(arith="float32")
    y = Emulator(program, config).run({"x": x.reshape(1, -1)}).outputs["y"][0]
    a = x.astype(np.float32).astype(np.float64)
    for i, c in enumerate(codes):
        w = (np.asarray(books[i], np.float64) * 2.0 ** -book_fracs[i])[c]
        a = w @ (np.append(a, 1.0) if bias else a)
        if relu or i < len(codes) - 1:
            a = np.maximum(a, 0)
        a = a.astype(np.float32).astype(np.float64)
    scale = max(float(np.abs(a).max(initial=0.0)), 1e-30)
    np.testing.assert_allclose(y, a, rtol=1e-5, atol=1e-6 * scale)


def _elementwise_program(instructions, tables=()) -> Program:
    buffers = {
        "a": Buffer("a", rows=1, cols=6, pitch=8, frac=10),
        "b": Buffer("b", rows=1, cols=6, pitch=8, frac=6),
        "d": Buffer("d", rows=1, cols=6, pitch=8, frac=8),
    }
    return Program(
        machine=Machine(pes=4),
        buffers=buffers,
        inputs=[Port("a", "a", (6,)), Port("b", "b", (6,))],
        outputs=[Port("d", "d", (6,))],
        tables={t.name: t for t in tables},
        text=[*instructions, Halt()],
    )


A = np.array([1.5, -2.25, 30.0, 0.001, -31.9, 7.0])
B = np.array([0.5, 3.0, 100.0, -1.0, -400.0, 0.015625])
ROW = (View("d", 0), View("a", 0))


def _run(program: Program, arith: str = "fixed16") -> tuple[np.ndarray, int]:
    result = Emulator(program, EmulatorConfig(arith=arith)).run({"a": A, "b": B})
    return result.outputs["d"], result.stats.saturations


def test_ew_add() -> None:
    # G = max(10, 6) = 10: a + (b << 4), narrowed 10 -> 8 bits.
    out, sat = _run(_elementwise_program([EwAdd(*ROW, View("b", 0))]))
    a, b = ref_quantize(A, 10), ref_quantize(B, 6)
    expected = ref_narrow(a + (b << 4), 2)
    assert out.tolist() == (expected / 256).tolist()
    raw = (a + (b << 4) + 2) >> 2
    assert sat == int(np.count_nonzero((raw > WORD_MAX) | (raw < WORD_MIN))) == 2
    assert _run(_elementwise_program([EwAdd(*ROW, View("b", 0))]), "float32")[0].tolist() == (
        (A.astype(np.float32) + B.astype(np.float32)).astype(np.float32).tolist()
    )


def test_ew_mul_and_copy() -> None:
    out, _ = _run(_elementwise_program([EwMul(*ROW, View("b", 0))]))
    expected = ref_narrow(ref_quantize(A, 10) * ref_quantize(B, 6), 10 + 6 - 8)
    assert out.tolist() == (expected / 256).tolist()
    out, _ = _run(_elementwise_program([EwCopy(*ROW)]))
    assert out.tolist() == (ref_narrow(ref_quantize(A, 10), 2) / 256).tolist()


def test_ew_whole_buffer_views_include_padding() -> None:
    # Whole-buffer views cover rows * pitch = 8 words; padding words stay 0.
    out, _ = _run(_elementwise_program([EwCopy(View("d"), View("a"))]))
    assert out.tolist() == (ref_narrow(ref_quantize(A, 10), 2) / 256).tolist()


def ref_lut(q: int, a_frac: int, table: Table) -> int:
    """lut(T, q) of SPEC §5 for one word, returned in table.frac + max(s, 0) bits."""
    t = [int(v) for v in table.values]
    s = a_frac + table.step_log2
    d = q - int(table.lo * 2**a_frac)
    i, r = (d >> s, d - ((d >> s) << s)) if s > 0 else (d << -s, 0)
    bits = max(s, 0)
    if i < 0:
        return t[0] << bits
    if i >= len(t) - 1:
        return t[-1] << bits
    return (t[i] << bits) + (t[i + 1] - t[i]) * r


@pytest.mark.parametrize("step_log2", [-2, 1, -12])
def test_ew_lut_interpolates(step_log2: int) -> None:
    xs = -4.0 + np.arange(12) * 2.0**step_log2
    table = Table(
        "sig",
        "sigmoid",
        lo=-4.0,
        step_log2=step_log2,
        frac=14,
        values=ref_quantize(1 / (1 + np.exp(-xs)), 14).astype(np.int16),
    )
    out, _ = _run(_elementwise_program([EwLut(*ROW, "sig")], [table]))
    bits = max(10 + step_log2, 0)
    expected = [
        int(ref_narrow(np.array([ref_lut(int(q), 10, table)]), 14 + bits - 8)[0])
        for q in ref_quantize(A, 10)
    ]
    assert out.tolist() == (np.array(expected) / 256).tolist()
    exact, _ = _run(_elementwise_program([EwLut(*ROW, "sig")], [table]), "float32")
    np.testing.assert_allclose(exact, 1 / (1 + np.exp(-A.astype(np.float32))), rtol=1e-6)


def test_every_instruction_has_a_handler() -> None:
    assert set(HANDLERS) == set(INSTRUCTIONS.values())


def test_buffers_are_returned_dequantized() -> None:
    codes = np.eye(2, dtype=np.uint8)
    program = fc_program(
        [codes, codes],
        [np.array([0, 512], np.int16)] * 2,
        [8, 8],
        [8, 8, 8],
        machine=big_machine(2),
    )
    result = Emulator(program).run({"x": np.array([[0.25, 0.5]])})
    assert result.buffers["h1"].tolist() == [[0.5, 1.0]]
    assert result.buffers["y"].dtype == np.float32
