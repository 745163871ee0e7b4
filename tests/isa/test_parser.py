"""The parser and printer: lexical details, locations, hex blobs and syntax errors (full
messages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eiec.errors import IsaError, ProgramSyntaxError, SourceLocation
from eiec.isa import format_program, hexblob, parse
from eiec.isa.builder import make_layer
from eiec.isa.printer import format_real
from eiec.isa.program import BroadcastActivation, Machine, One, Program, View

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "valid"
CANONICAL = (GOLDEN / "one_pe_padding.eie").read_text(encoding="utf-8")
HEADER = (
    ".eie 1\n.machine pes=1 fifo_depth=1 clock_mhz=1000 spmat_sram=64 ptr_sram=16 act_sram=64 "
    "ptr_bits=32 acc_bits=17\n"
)


def _error(text: str) -> str:
    with pytest.raises(ProgramSyntaxError) as caught:
        parse(text, source="p.eie")
    return str(caught.value)


def test_layout_comments_crlf_case_and_missing_newline_do_not_matter() -> None:
    canonical = parse(CANONICAL)
    messy = "; leading comment\n\n" + CANONICAL.replace("\n", "  ; note\r\n", 3).replace(
        "12200f32", "12200F32"
    ).replace("    ", "\t").replace(" rows=", "   rows=").rstrip("\n")
    assert parse(messy) == canonical
    assert format_program(parse(messy)) == CANONICAL


def test_every_directive_and_instruction_has_its_location() -> None:
    text = (GOLDEN / "fc_bias_relu.eie").read_text(encoding="utf-8")
    program = parse(text, source="fc.eie")
    lines = text.splitlines()

    def line_of(prefix: str) -> int:
        return next(i + 1 for i, line in enumerate(lines) if line.lstrip().startswith(prefix))

    assert program.buffers["y"].loc == SourceLocation("fc.eie", line_of(".buffer y"), 1)
    assert program.inputs[0].loc == SourceLocation("fc.eie", line_of(".input"), 1)
    assert program.outputs[0].loc == SourceLocation("fc.eie", line_of(".output"), 1)
    layer = program.layers["fc"]
    assert layer.loc == SourceLocation("fc.eie", line_of(".layer"), 1)
    assert layer.codebook.loc == SourceLocation("fc.eie", line_of(".codebook"), 1)
    assert layer.pe_locs == (
        SourceLocation("fc.eie", line_of(".pe 0"), 1),
        SourceLocation("fc.eie", line_of(".pe 1"), 1),
    )
    assert [i.loc for i in program.text] == [
        SourceLocation("fc.eie", line_of(i.MNEMONIC), 5) for i in program.text
    ]
    assert program.text[1] == BroadcastActivation((View("x", 0), One()))
    assert program.source == "fc.eie"


def test_blobs_of_12_bit_pointers_and_signed_words() -> None:
    words = np.array([0, 1, 0xABC, 4095])
    assert hexblob.encode_words(words, 3) == "000001abc fff".replace(" ", "")
    assert hexblob.decode_words("000001ABCfff", 3).tolist() == words.tolist()
    signed = hexblob.decode_words("7fff8000ffff0001", 4, signed=True)
    assert signed.tolist() == [32767, -32768, -1, 1]
    assert hexblob.encode_words(signed & 0xFFFF, 4) == "7fff8000ffff0001"
    assert hexblob.decode_words("-", 4).size == 0
    assert hexblob.encode_words(np.zeros(0), 4) == "-"


def test_entries_blob_is_v_then_z() -> None:
    v, z = hexblob.decode_entries("12200f32")
    assert v.tolist() == [1, 2, 0, 3]
    assert z.tolist() == [2, 0, 15, 2]
    assert hexblob.encode_entries(v, z) == "12200f32"
    assert hexblob.encode_entries(np.zeros(0, np.uint8), np.zeros(0, np.uint8)) == "-"


@pytest.mark.parametrize(
    ("value", "text"),
    [(800.0, "800"), (200.5, "200.5"), (1e-3, "0.001"), (-8.0, "-8"), (1e300, "1e+300")],
)
def test_reals_print_so_they_parse_back(value: float, text: str) -> None:
    assert format_real(value) == text
    assert float(text) == value


def test_non_finite_reals_cannot_be_printed() -> None:
    with pytest.raises(IsaError, match="cannot print the non-finite real inf"):
        format_real(float("inf"))


@pytest.mark.parametrize(
    ("ptr_bits", "message"),
    [
        (0, "layer l: cannot print pointers of ptr_bits = 0"),
        (-8, "layer l: cannot print pointers of ptr_bits = -8"),
        (6, "layer l: cannot print pointers of ptr_bits = 6"),
        (2.5, "machine: cannot print ptr_bits = 2.5: not an integer"),
        (float("nan"), "machine: cannot print ptr_bits = nan: not an integer"),
        (None, "machine: cannot print ptr_bits = None: not an integer"),
    ],
)
def test_invalid_pointer_width_cannot_be_printed(ptr_bits: object, message: str) -> None:
    layer = make_layer("l", np.array([[1, 0], [0, 2]]), np.array([0, 1, 2]), 0, pes=2)
    program = Program(machine=Machine(pes=2, ptr_bits=ptr_bits), layers={"l": layer})
    with pytest.raises(IsaError) as info:
        format_program(program)
    assert str(info.value) == message


def test_integral_machine_fields_print_as_integers() -> None:
    text = format_program(Program(machine=Machine(ptr_bits=16.0, pes=np.int64(4))))
    assert parse(text).machine == Machine(pes=4, ptr_bits=16)


def test_empty_text() -> None:
    assert _error("") == "p.eie:1:1: unexpected end of file; expected '.eie'"


def test_unknown_mnemonic_without_a_close_match_lists_the_known_ones() -> None:
    text = CANONICAL.replace("    halt", "    frobnicate")
    assert _error(text) == (
        "p.eie:18:5: unknown instruction 'frobnicate' (known: load-codebook, "
        "broadcast-activation, sparse-column-mac, stream-chunk, writeback, relu-writeback, "
        "ew-add, ew-mul, ew-lut, ew-copy, halt)"
    )


def test_character_outside_the_language() -> None:
    text = HEADER + ".buffer x rows=1 cols=1 pitch=1 frac=0 init=00é0\n.text\n    halt\n"
    assert _error(text) == "p.eie:3:47: unexpected 'é0'; expected end of line"


def test_non_hex_character_in_blob_is_pointed_at() -> None:
    text = HEADER + ".buffer x rows=1 cols=1 pitch=1 frac=0 init=00x0\n.text\n    halt\n"
    assert _error(text) == "p.eie:3:47: bad init blob: 'x' is not a hex digit"


def test_unclosed_row_index() -> None:
    text = HEADER + ".buffer x rows=1 cols=1 pitch=1 frac=0\n.text\n    ew-copy x[0, x\n    halt\n"
    assert _error(text) == "p.eie:5:16: unexpected ','; expected ']'"


def test_long_offending_text_is_shortened() -> None:
    text = HEADER + ".buffer x rows=1 cols=1 pitch=1 frac=0 " + "a" * 100 + "\n"
    assert _error(text) == (
        "p.eie:3:40: unexpected 'aaaaaaaaaaaaaaaaaaaaa...'; expected one of: 'init=', end of line"
    )


def test_table_value_out_of_range() -> None:
    text = HEADER + ".table t fn=tanh lo=0 step_log2=0 frac=0 values=[0, -32769]\n.text\n    halt\n"
    assert _error(text) == "p.eie:3:53: -32769 is not a 16-bit word (-32768..32767)"


def test_shape_and_batch_axis_forms() -> None:
    program = parse(CANONICAL)
    assert program.outputs[0].shape == (23,)
    assert program.outputs[0].batch_axis is None
    text = CANONICAL.replace("shape=[23] batch_axis=-", "shape=[1,23] batch_axis=0")
    assert parse(text).outputs[0].batch_axis == 0
    assert _error(CANONICAL.replace("batch_axis=-", "batch_axis=x")) == (
        "p.eie:7:46: unexpected 'x'; expected one of: '-', an integer"
    )


def test_expected_tokens_are_those_of_the_context() -> None:
    # After a blob the lexer state is shared with `ptr=BLOB` (followed by entries=); the message
    # must only offer what can follow `init=BLOB`.
    text = HEADER + ".buffer x rows=1 cols=1 pitch=1 frac=0 init=0000 zz=1\n.text\n    halt\n"
    assert _error(text) == "p.eie:3:50: unexpected 'zz=1'; expected end of line"
    text = HEADER + ".buffer x rows=1 cols=1 pitch=1 frac=0 init=0000 entries=00\n"
    assert _error(text) == "p.eie:3:50: unexpected 'entries=00'; expected end of line"


def test_pipeline_latencies_are_optional_header_keys() -> None:
    # Absent keys take the paper's values; the printer writes only those that differ, in order.
    default = parse(HEADER + ".text\n    halt\n").machine
    assert (default.lnzd_latency, default.queue_latency, default.alu_stages) == (1, 1, 4)
    text = HEADER.replace("acc_bits=17", "acc_bits=17 queue_latency=2 alu_stages=6")
    program = parse(text + ".text\n    halt\n")
    assert (program.machine.queue_latency, program.machine.alu_stages) == (2, 6)
    header = format_program(program).splitlines()[1]
    assert header.endswith("acc_bits=17 queue_latency=2 alu_stages=6")
    misplaced = HEADER.replace("acc_bits=17", "acc_bits=17 alu_stages=6 queue_latency=2")
    assert _error(misplaced + ".text\n    halt\n") == (
        "p.eie:2:119: unexpected 'queue_latency=2'; expected one of: 'codebook_cycles=', "
        "'dram_gbps=', 'dram_latency_ns=', 'dram_pj_per_bit=', 'ew_latency=', "
        "'lnzd_group_scan=', 'lut_latency=', 'writeback_rows=', end of line"
    )


def test_unknown_or_repeated_header_keys_are_pointed_at() -> None:
    unknown = HEADER.replace("acc_bits=17", "acc_bits=17 ptr_latency=2 fifo=3")
    assert _error(unknown + ".text\n    halt\n") == (
        "p.eie:2:120: unexpected 'fifo=3'; expected one of: 'alu_stages=', 'codebook_cycles=', "
        "'dram_gbps=', 'dram_latency_ns=', 'dram_pj_per_bit=', 'ew_latency=', "
        "'lnzd_group_scan=', 'lut_latency=', 'writeback_rows=', end of line"
    )
    twice = HEADER.replace("acc_bits=17", "acc_bits=17 dram_pj_per_bit=2 dram_pj_per_bit= 3")
    assert _error(twice + ".text\n    halt\n") == (
        "p.eie:2:124: unexpected 'dram_pj_per_bit='; expected one of: 'lnzd_group_scan=', end "
        "of line"
    )
