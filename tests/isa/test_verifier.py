"""The verifier on programs built in Python: the rules text cannot break (nibbles above 15,
pointers wider than ptr_bits, inconsistent arrays, names), located by item when there is no
line. Rules reachable from text are covered by the invalid golden programs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eiec.errors import IsaError, VerificationError
from eiec.isa import csc, format_program, verify
from eiec.isa.builder import make_layer
from eiec.isa.program import (
    BroadcastActivation,
    Buffer,
    Halt,
    Layer,
    LoadCodebook,
    Machine,
    One,
    Program,
    ReluWriteback,
    SparseColumnMac,
    View,
)


def _program(layer: Layer | None = None, machine: Machine | None = None) -> Program:
    """A 4 x 3 layer (bias included) on 2 PEs, reading x and writing y."""
    codes = np.array([[1, 0, 2], [0, 2, 0], [0, 1, 0], [2, 0, 1]])
    layer = layer or make_layer("fc", codes, np.array([0, 100, -100]), 8, pes=2)
    return Program(
        machine=machine or Machine(pes=2),
        buffers={
            "x": Buffer("x", rows=1, cols=2, pitch=2, frac=8),
            "y": Buffer("y", rows=1, cols=4, pitch=4, frac=8),
        },
        layers={layer.name: layer},
        text=[
            LoadCodebook(layer.name),
            BroadcastActivation((View("x"), One())),
            SparseColumnMac(layer.name),
            ReluWriteback(View("y")),
            Halt(),
        ],
    )


def _message(program: Program) -> str:
    with pytest.raises(VerificationError) as caught:
        verify(program)
    return str(caught.value)


def test_built_program_is_valid() -> None:
    verify(_program())


def test_virtual_weight_above_a_nibble() -> None:
    program = _program()
    layer = program.layers["fc"]
    layer.v = layer.v.copy()
    layer.v[2] = 16
    assert _message(program) == (
        "<program>: layer fc, PE 0, column 2, entry 2: nibble out of range: v = 16"
    )


def test_relative_row_above_a_nibble() -> None:
    program = _program()
    layer = program.layers["fc"]
    layer.z = layer.z.copy()
    layer.z[-1] = 17
    assert _message(program) == (
        "<program>: layer fc, PE 1, column 2, entry 2: nibble out of range: z = 17"
    )


def test_pointer_wider_than_ptr_bits() -> None:
    codes = np.ones((2, 300), dtype=np.uint8)
    layer = make_layer("wide", codes, np.array([0, 1]), 0, pes=1)
    program = Program(machine=Machine(pes=1, ptr_bits=8), layers={"wide": layer}, text=[Halt()])
    assert _message(program) == (
        "<program>: layer wide, PE 0: pointer 600 does not fit ptr_bits = 8 "
        "(split the layer or use wider pointers)"
    )


def test_entry_arrays_that_do_not_match_the_pointers() -> None:
    program = _program()
    layer = program.layers["fc"]
    layer.v = layer.v[:-1]
    assert _message(program) == (
        "<program>: layer fc: pointers past the data: the PEs' last pointers add up to 6 "
        "entries, v holds 5"
    )
    layer.v = np.concatenate([program.layers["fc"].z, [1, 1]]).astype(np.uint8)
    assert _message(program) == (
        "<program>: layer fc: entries after the last pointer: the PEs' last pointers add up to "
        "6 entries, v holds 8"
    )


def test_pe_count_of_a_built_layer() -> None:
    program = _program(machine=Machine(pes=4))
    assert _message(program) == (
        "<program>: layer fc: PE count mismatch: 2 .pe lines, the machine has pes = 4 "
        "(a layer has one .pe line per PE, numbered from 0)"
    )


def test_name_must_match_its_key_and_be_an_identifier() -> None:
    program = _program()
    program.buffers["x"] = dataclasses.replace(program.buffers["x"], name="z")
    assert _message(program) == "<program>: buffer 'z' is registered under 'x'"
    program = _program()
    program.buffers = {"bad name": Buffer("bad name", 1, 1, 1, 0), **program.buffers}
    assert _message(program) == (
        "<program>: buffer name 'bad name' is not an identifier ([A-Za-z_][A-Za-z0-9_.]*)"
    )


def test_init_word_outside_16_bits() -> None:
    program = _program()
    program.buffers["x"].init = np.array([1, 40000], dtype=np.int32)
    assert _message(program) == (
        "<program>: buffer x: init word 1 is 40000, outside the 16-bit range -32768..32767"
    )


def test_printer_refuses_what_text_cannot_hold() -> None:
    program = _program()
    program.layers["fc"].v = np.where(program.layers["fc"].v > 0, 16, 0).astype(np.uint8)
    with pytest.raises(IsaError, match=r"^layer fc: cannot print v nibbles outside 0\.\.15$"):
        format_program(program)


def test_machine_header_of_a_built_program() -> None:
    program = _program(machine=Machine(pes=2, fifo_depth=0))
    assert _message(program) == "<program>: machine: fifo_depth must be in 1..1024, got 0"
    program = _program(machine=Machine(pes=2, clock_mhz=float("nan")))
    assert _message(program) == ("<program>: machine: clock_mhz must be in 0.001..100000, got nan")


@pytest.mark.parametrize("seed", range(6))
def test_first_entry_past_the_rows_is_named(seed: int) -> None:
    """Raising a random entry's z pushes it (and its column's later entries) past the PE's
    rows: the error names the first such entry in storage order, as per-entry coordinates do."""
    rng = np.random.default_rng(seed)
    codes = np.where(rng.random((23, 9)) < 0.4, rng.integers(1, 3, (23, 9)), 0)
    layer = make_layer("fc", codes, np.array([0, 100, -100]), 8, pes=3)
    index = int(rng.integers(layer.z.size))
    layer.z[index] = 15
    where = csc.coordinates(layer.ptr, layer.z)
    local_rows = (23 - where.pe + 2) // 3
    first = int(np.flatnonzero(where.local_row >= local_rows)[0])
    pe, col = int(where.pe[first]), int(where.col[first])
    entry = first - int(layer.ptr[:pe, -1].sum()) - int(layer.ptr[pe, 0])
    assert _message(_program(layer, Machine(pes=3))) == (
        f"<program>: layer fc, PE {pe}, column {col}, entry {entry}: shapes inconsistent: "
        f"local row {int(where.local_row[first])} is past the PE's {int(local_rows[pe])} local "
        "rows (rows = 23 over 3 PEs)"
    )


@pytest.mark.parametrize(
    ("field", "value", "span"),
    [
        ("queue_latency", 0, "1..1024"),
        ("alu_stages", 0, "1..1024"),
        ("lnzd_latency", -1, "0..1024"),
        ("pes", -3, "1..4096"),
        ("pes", 100000, "1..4096"),
        ("spmat_sram", 1 << 40, "1..1073741824"),
    ],
)
def test_machine_fields_are_checked_by_name(field: str, value: int, span: str) -> None:
    program = _program(machine=dataclasses.replace(Machine(pes=2), **{field: value}))
    assert _message(program) == f"<program>: machine: {field} must be in {span}, got {value}"
