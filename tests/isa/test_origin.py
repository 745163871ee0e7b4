"""The optional .origin header: what a program was compiled from, round-tripped."""

from __future__ import annotations

import pytest

from eiec.errors import ProgramSyntaxError
from eiec.isa import format_program, parse
from eiec.isa.program import Origin

MACHINE = (
    ".machine pes=1 fifo_depth=8 clock_mhz=800 spmat_sram=131072 ptr_sram=32768 act_sram=2048 "
    "ptr_bits=16 acc_bits=48"
)
TEXT = (
    ".eie 1\n" + MACHINE + '\n.origin model={model} options="pes=1 note=\\"a b\\""\n\n.text\n'
    "    halt\n"
)


def test_origin_round_trips_with_escapes() -> None:
    program = parse(TEXT.format(model="0123456789abcdef" * 4))
    assert program.origin == Origin("0123456789abcdef" * 4, 'pes=1 note="a b"')
    assert format_program(program) == TEXT.format(model="0123456789abcdef" * 4)
    assert parse(format_program(program)) == program


def test_origin_model_must_be_a_sha256_digest() -> None:
    with pytest.raises(ProgramSyntaxError) as caught:
        parse(TEXT.format(model="abc123"), "p.eie")
    assert str(caught.value) == "p.eie:3:15: model=abc123 is not a SHA-256 digest (64 hex digits)"
