"""Golden programs: valid ones parse, verify and round-trip; invalid ones fail with their message.

Valid programs are in tests/golden/valid; invalid ones in tests/golden/invalid, each with its
expected exception class and full message in tests/golden/invalid/EXPECTED.toml.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from eiec.errors import IsaError
from eiec.isa import csc, format_program, parse, verify
from eiec.isa.program import INSTRUCTIONS

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
VALID = sorted((GOLDEN / "valid").glob("*.eie"))
INVALID = sorted((GOLDEN / "invalid").glob("*.eie"))
EXPECTED = tomllib.loads((GOLDEN / "invalid" / "EXPECTED.toml").read_text(encoding="utf-8"))
#: Golden programs written in canonical form: the printer must reproduce them byte for byte.
CANONICAL = {"one_pe_padding.eie"}


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_program_verifies_and_round_trips(path: Path) -> None:
    program = parse(path.read_text(encoding="utf-8"), source=path.name)
    verify(program)
    text = format_program(program)
    again = parse(text)
    assert again == program
    assert format_program(again) == text
    if path.name in CANONICAL:
        assert text == path.read_text(encoding="utf-8")


def test_valid_programs_cover_every_instruction_and_directive() -> None:
    programs = [parse(p.read_text(encoding="utf-8")) for p in VALID]
    used = {type(i).MNEMONIC for p in programs for i in p.text}
    assert used == set(INSTRUCTIONS)
    assert any(p.tables for p in programs)
    assert any(p.inputs for p in programs)
    assert any(p.outputs for p in programs)
    buffers = [b for p in programs for b in p.buffers.values()]
    assert any(b.rows > 1 and b.pitch > b.cols for b in buffers)  # multi-row, pitch-padded
    assert any(b.init is not None for b in buffers)
    assert any(port.batch_axis is None for p in programs for port in p.outputs)
    padding = [
        ((layer.v == 0) & (layer.z == 15)).any() for p in programs for layer in p.layers.values()
    ]
    assert any(padding)


def test_fc_bias_relu_stores_the_documented_matrix() -> None:
    program = parse((GOLDEN / "valid" / "fc_bias_relu.eie").read_text(encoding="utf-8"))
    layer = program.layers["fc"]
    expected = [[1, 0, 2, 1], [0, 2, 0, 0], [0, 1, 0, 2], [2, 0, 0, 1]]
    assert csc.decode(layer.ptr, layer.v, layer.z, layer.rows).tolist() == expected
    assert layer.codebook.values.tolist() == [0, 8192, -8192]


def test_lstm_golden_program_matches_its_comments() -> None:
    program = parse((GOLDEN / "valid" / "lstm_two_steps.eie").read_text(encoding="utf-8"))
    assert program.machine.ptr_bits == 12
    assert program.machine.clock_mhz == 200.5
    assert program.buffers["h"].init.tolist() == [1024, -2048, 512, 0]
    assert program.tables["tanh"].lo == -4.0
    assert program.tables["tanh"].step_log2 == -1
    codes = csc.decode(*(getattr(program.layers["lstm"], f) for f in ("ptr", "v", "z")), 16)
    assert not codes[3::4].any()  # the padding row of every gate is zero
    sigmoid = program.tables["sigmoid"].values / 2**14
    assert np.allclose(sigmoid, 1 / (1 + np.exp(-np.arange(-8, 9))), atol=2**-14)


def test_every_invalid_program_has_an_expected_message() -> None:
    assert {p.stem for p in INVALID} == set(EXPECTED)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_program_fails_with_its_message(path: Path) -> None:
    expected = EXPECTED[path.stem]
    with pytest.raises(IsaError) as caught:
        verify(parse(path.read_text(encoding="utf-8"), source=path.name))
    assert type(caught.value).__name__ == expected["error"]
    assert str(caught.value) == expected["message"]
