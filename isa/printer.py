"""The printer: a ``Program`` as canonical ``.eie`` text (isa/SPEC.md, "Program structure").

Canonical form: the version and machine lines, then buffers, inputs, outputs, tables and
layers (each group in declaration order, groups and layers separated by blank lines), then
``.text`` with one instruction per line indented by four spaces; lower-case hex, no comments.
``parse(format_program(p)) == p`` for every program the printer accepts.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable

import numpy as np

from eiec.errors import IsaError
from eiec.isa import hexblob
from eiec.isa.program import (
    CHUNK,
    LAYER,
    NIBBLE_BITS,
    SOURCES,
    TABLE,
    VIEW,
    WORD_BITS,
    WORD_MAX,
    WORD_MIN,
    Buffer,
    Instruction,
    Layer,
    Machine,
    Origin,
    Port,
    Program,
    Table,
    stored_ptr_bits,
)

INDENT = "    "


def format_program(program: Program) -> str:
    """The canonical text of ``program``.

    Raises ``IsaError`` for data the text cannot represent (a non-finite real, a word outside
    16 bits, a nibble above 15, a pointer wider than ``ptr_bits``); the verifier rejects those
    too.
    """
    groups: list[list[str]] = [
        [f".eie {program.version}", _machine(program.machine), *_origin(program.origin)],
        [_buffer(b) for b in program.buffers.values()],
        [_port(".input", p) for p in program.inputs],
        [_port(".output", p) for p in program.outputs],
        [_table(t) for t in program.tables.values()],
        *(_layer(layer, program.machine) for layer in program.layers.values()),
        [".text", *(INDENT + format_instruction(i) for i in program.text)],
    ]
    return "\n\n".join("\n".join(lines) for lines in groups if lines) + "\n"


def format_instruction(instruction: Instruction) -> str:
    """One instruction as text, e.g. ``broadcast-activation x[0], #1``."""
    operands = []
    for kind, value in instruction.operand_values():
        if kind in (LAYER, TABLE, VIEW, CHUNK):
            operands.append(str(value))
        elif kind == SOURCES:
            operands.extend(str(source) for source in value)
        else:
            raise AssertionError(f"unknown operand kind {kind!r}")
    if not operands:
        return instruction.MNEMONIC
    return f"{instruction.MNEMONIC} {', '.join(operands)}"


def format_real(value: float) -> str:
    """A real that parses back to the same float: integral values without a fraction."""
    value = float(value)
    if not math.isfinite(value):
        raise IsaError(f"cannot print the non-finite real {value}")
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _ints(values: Iterable[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


def _words(owner: str, values: np.ndarray) -> np.ndarray:
    """``values`` as int64; IsaError when one is outside 16 bits."""
    values = np.asarray(values, dtype=np.int64)
    if values.size and (values.min() < WORD_MIN or values.max() > WORD_MAX):
        raise IsaError(f"{owner}: cannot print words outside the 16-bit range")
    return values


def _word_blob(owner: str, values: np.ndarray) -> str:
    return hexblob.encode_words(_words(owner, values) & 0xFFFF, WORD_BITS // 4)


def _word_list(owner: str, values: np.ndarray) -> str:
    return _ints(_words(owner, values).tolist())


def _integer(name: str, value: object) -> int:
    """A machine field as the integer the text holds; IsaError when it is not integral."""
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer()):
        raise IsaError(f"machine: cannot print {name} = {value!r}: not an integer")
    return int(value)


def _machine(machine: Machine) -> str:
    fields = []
    for name in Machine.FIELDS:
        value = getattr(machine, name)
        if name not in Machine.REQUIRED and value == getattr(Machine, name):
            continue
        if name not in Machine.REALS:
            fields.append(f"{name}={_integer(name, value)}")
        elif name != "clock_mhz" and value == math.inf:  # unbounded DRAM bandwidth
            fields.append(f"{name}=inf")
        else:
            fields.append(f"{name}={format_real(value)}")
    return ".machine " + " ".join(fields)


def _origin(origin: Origin | None) -> list[str]:
    if origin is None:
        return []
    line = f".origin model={origin.model} options={json.dumps(origin.options)}"
    if origin.weights is not None and origin.compressed is not None:
        line += f" weights={origin.weights} compressed={origin.compressed}"
    return [line]


def _buffer(buffer: Buffer) -> str:
    text = (
        f".buffer {buffer.name} rows={buffer.rows} cols={buffer.cols} pitch={buffer.pitch} "
        f"frac={buffer.frac}"
    )
    if buffer.init is not None:
        text += " init=" + _word_blob(f"buffer {buffer.name}", buffer.init)
    return text


def _port(directive: str, port: Port) -> str:
    shape = "[" + ",".join(str(int(d)) for d in port.shape) + "]"
    axis = "-" if port.batch_axis is None else str(int(port.batch_axis))
    return f"{directive} {port.name} buffer={port.buffer} shape={shape} batch_axis={axis}"


def _table(table: Table) -> str:
    return (
        f".table {table.name} fn={table.fn} lo={format_real(table.lo)} "
        f"step_log2={table.step_log2} frac={table.frac} "
        f"values={_word_list(f'table {table.name}', table.values)}"
    )


def _layer(layer: Layer, machine: Machine) -> list[str]:
    owner = f"layer {layer.name}"
    book = layer.codebook
    chunks = "" if layer.chunks is None else f" chunks={_ints(layer.chunks)}"
    lines = [
        f".layer {layer.name} rows={layer.rows} cols={layer.cols}{chunks}",
        f".codebook frac={book.frac} {_word_list(owner, book.values)}",
    ]
    ptr = np.asarray(layer.ptr, dtype=np.int64)
    v = np.asarray(layer.v)
    z = np.asarray(layer.z)
    limit = 1 << NIBBLE_BITS
    for name, values in (("v", v), ("z", z)):
        if values.size and (values.min() < 0 or values.max() >= limit):
            raise IsaError(f"{owner}: cannot print {name} nibbles outside 0..{limit - 1}")
    bits = _integer("ptr_bits", stored_ptr_bits(machine, layer.streamed))
    if bits % 4 or bits < 4:
        raise IsaError(f"{owner}: cannot print pointers of ptr_bits = {bits}")
    if ptr.size and (ptr.min() < 0 or ptr.max() >= 1 << bits):
        raise IsaError(f"{owner}: cannot print pointers outside {bits} bits")
    if ptr.ndim != 2 or not ptr.shape[1] or int(ptr[:, -1].sum()) != v.size or v.size != z.size:
        raise IsaError(f"{owner}: cannot print: the pointers do not match the entries")
    digits = bits // 4
    start = 0
    for pe in range(ptr.shape[0]):
        stop = start + int(ptr[pe, -1])
        lines.append(
            f".pe {pe} ptr={hexblob.encode_words(ptr[pe], digits)} "
            f"entries={hexblob.encode_entries(v[start:stop], z[start:stop])}"
        )
        start = stop
    return lines
