"""eiec.isa.builder: codebooks of dense matrices, and FC programs that verify and round-trip."""

from __future__ import annotations

import numpy as np

from eiec.isa import format_program, parse, verify
from eiec.isa.builder import codebook_of, codes_of, fc_program, random_codes
from eiec.isa.csc import decode
from eiec.isa.program import Machine, ReluWriteback, Writeback


def test_codebook_and_codes_give_the_matrix_back() -> None:
    values = np.array([[0.5, 0.0, -0.25], [0.5, 0.125, 0.0]])
    codebook = codebook_of(values)
    np.testing.assert_array_equal(codebook, [0.0, -0.25, 0.125, 0.5])
    codes = codes_of(values, codebook)
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(codes, [[3, 0, 1], [3, 2, 0]])
    np.testing.assert_array_equal(codebook[codes], values)


def test_fc_program_chains_layers_over_pitch_padded_buffers() -> None:
    rng = np.random.default_rng(0)
    codes = [random_codes(rng, 5, 7 + 1, 0.5), random_codes(rng, 3, 5 + 1, 0.5)]
    books = [np.array([0, *range(1, 16)], np.int16)] * 2
    program = fc_program(
        codes,
        books,
        [8, 8],
        [8, 7, 6],
        machine=Machine(pes=4),
        bias=True,
        relu=False,
        buffer_names=["input", "hidden", "logits"],
        layer_names=["fc1", "fc2"],
    )
    verify(program)
    assert parse(format_program(program)) == program
    assert [(b.name, b.cols, b.pitch, b.frac) for b in program.buffers.values()] == [
        ("input", 7, 8, 8),
        ("hidden", 5, 8, 7),
        ("logits", 3, 4, 6),
    ]
    assert [(p.name, p.shape) for p in program.inputs + program.outputs] == [
        ("input", (1, 7)),
        ("logits", (1, 3)),
    ]
    assert [type(i) for i in program.text[3::4]] == [ReluWriteback, Writeback]
    layer = program.layers["fc2"]
    decoded = decode(layer.ptr, layer.v, layer.z, layer.rows)
    np.testing.assert_array_equal(decoded, codes[1])
