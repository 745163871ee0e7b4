"""Hypothesis strategies for random VALID EIE programs (shared by the ISA and emulator tests).

``programs()`` draws a machine, layers built by ``make_layer`` from random sparse code matrices
(padding entries included when columns are tall and sparse), an input and an output buffer per
layer (multi-row, pitch-padded, sometimes with ``init``), ports, tables, and an instruction stream
that satisfies isa/SPEC.md section 7: jobs of ``load-codebook / broadcast-activation /
sparse-column-mac / [relu-]writeback`` (sometimes two MACs into the same accumulators, the LSTM
``W_x x + W_h h`` pattern), element-wise instructions between them, and a final ``halt``. The
machine's memories and pointer width are sized to fit, with random slack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from eiec.isa.builder import make_layer
from eiec.isa.program import (
    CODEBOOK_SIZE,
    TABLE_FUNCTIONS,
    WORD_MAX,
    WORD_MIN,
    BroadcastActivation,
    Buffer,
    EwAdd,
    EwCopy,
    EwLut,
    EwMul,
    Halt,
    Instruction,
    Layer,
    LoadCodebook,
    Machine,
    One,
    Port,
    Program,
    ReluWriteback,
    SparseColumnMac,
    Table,
    View,
    Writeback,
)

words = st.integers(WORD_MIN, WORD_MAX)
fracs = st.integers(-4, 15)


@dataclass
class _Job:
    """One layer's MAC (or two MACs into the same accumulators) and its writeback."""

    macs: list[tuple[Layer, list[View | One]]]
    dst: Buffer


@st.composite
def _codebook(draw: st.DrawFn) -> np.ndarray:
    size = draw(st.integers(1, CODEBOOK_SIZE))
    return np.array([0, *draw(st.lists(words, min_size=size - 1, max_size=size - 1))], np.int16)


@st.composite
def _layer(draw: st.DrawFn, name: str, rows: int, pes: int, max_cols: int) -> Layer:
    cols = draw(st.integers(1, max_cols))
    codebook = draw(_codebook())
    top = codebook.size - 1
    codes = draw(
        arrays(
            np.uint8,
            (rows, cols),
            elements=st.integers(0, top),
            fill=st.just(np.uint8(0)) if top else None,
        )
    )
    return make_layer(name, codes, codebook, draw(fracs), pes)


@st.composite
def _buffer(draw: st.DrawFn, name: str, cols: int, frac: int, pitch_multiple: int) -> Buffer:
    rows = draw(st.integers(1, 3))
    pitch = math.ceil(cols / pitch_multiple) * pitch_multiple
    pitch += pitch_multiple * draw(st.integers(0, 1))
    init = None
    if draw(st.booleans()):
        init = draw(arrays(np.int16, rows * pitch, elements=words))
    return Buffer(name, rows=rows, cols=cols, pitch=pitch, frac=frac, init=init)


@st.composite
def _port(draw: st.DrawFn, name: str, buffer: Buffer) -> Port:
    rows, cols = buffer.rows, buffer.cols
    shape, axis = draw(
        st.sampled_from(
            [
                ((1, rows * cols), 0),
                ((rows, cols), None),
                ((1, rows, cols), 0),
                ((rows * cols,), None),
            ]
        )
    )
    return Port(name, buffer.name, shape, axis)


@st.composite
def _table(draw: st.DrawFn, name: str) -> Table:
    values = draw(arrays(np.int16, draw(st.integers(2, 20)), elements=words))
    lo = Fraction(draw(st.integers(-64, 64)), 2 ** draw(st.integers(0, 3)))
    return Table(
        name,
        fn=draw(st.sampled_from(TABLE_FUNCTIONS)),
        lo=float(lo),
        step_log2=draw(st.integers(-4, 2)),
        frac=draw(fracs),
        values=values,
    )


@st.composite
def _input(
    draw: st.DrawFn, name: str, layer: Layer, frac: int, pes: int
) -> tuple[Buffer | None, list[View | One], int]:
    """The broadcast sources of ``layer`` (a buffer row, maybe with the bias ``#1``; or ``#1``
    alone for a one-column layer), the buffer they read, and the stream's format."""
    if layer.cols == 1 and draw(st.booleans()):
        return None, [One()], 0
    bias = layer.cols >= 2 and draw(st.booleans())
    buffer = draw(_buffer(name, layer.cols - bias, frac, draw(st.sampled_from([1, pes]))))
    view = View(name, draw(st.integers(0, buffer.rows - 1)))
    if buffer.rows == 1 and buffer.pitch == buffer.cols and draw(st.booleans()):
        view = View(name)
    return buffer, [view, One()] if bias else [view], frac


@st.composite
def programs(
    draw: st.DrawFn, max_pes: int = 8, max_layers: int = 3, max_rows: int = 40, max_cols: int = 12
) -> Program:
    """A random program that ``eiec.isa.verify`` accepts."""
    pes = draw(st.integers(1, max_pes))
    buffers: dict[str, Buffer] = {}
    layers: dict[str, Layer] = {}
    jobs: list[_Job] = []
    for i in range(draw(st.integers(1, max_layers))):
        layer = draw(_layer(f"fc{i}", draw(st.integers(1, max_rows)), pes, max_cols))
        layers[layer.name] = layer
        source, sources, frac = draw(_input(f"x{i}", layer, draw(fracs), pes))
        macs = [(layer, sources)]
        if draw(st.booleans()):
            # A second layer accumulating into the same accumulators: same rows, and
            # codebook frac + activation frac equal to the first MAC's.
            partner = draw(_layer(f"fc{i}h", layer.rows, pes, max_cols))
            partner_frac = layer.codebook.frac + frac - partner.codebook.frac
            if -16 <= partner_frac <= 31:
                layers[partner.name] = partner
                extra, extra_sources, extra_frac = draw(
                    _input(f"x{i}h", partner, partner_frac, pes)
                )
                if extra_frac == partner_frac:
                    if extra is not None:
                        buffers[extra.name] = extra
                    macs.append((partner, extra_sources))
                else:  # #1 alone has format 0, which need not match
                    del layers[partner.name]
        if source is not None:
            buffers[source.name] = source
        dst = draw(_buffer(f"y{i}", layer.rows, draw(fracs), pes))
        buffers[dst.name] = dst
        jobs.append(_Job(macs, dst))

    tables = {t.name: t for t in (draw(_table(f"t{i}")) for i in range(draw(st.integers(0, 2))))}
    text: list[Instruction] = []
    for job in draw(st.lists(st.sampled_from(jobs), min_size=1, max_size=4)):
        for layer, sources in job.macs:
            text += [
                LoadCodebook(layer.name),
                BroadcastActivation(tuple(sources)),
                SparseColumnMac(layer.name),
            ]
        kind = draw(st.sampled_from([Writeback, ReluWriteback]))
        text.append(kind(View(job.dst.name, draw(st.integers(0, job.dst.rows - 1)))))
        text += draw(_elementwise(jobs, tables, buffers))
    text.append(Halt())

    inputs = [draw(_port(f"in_{b.name}", b)) for b in buffers.values() if b.name.startswith("x")]
    outputs = [draw(_port(f"out_{j.dst.name}", j.dst)) for j in jobs]
    inputs = draw(st.lists(st.sampled_from(inputs), unique_by=lambda p: p.name)) if inputs else []
    return Program(
        machine=draw(_machine(pes, layers, buffers)),
        buffers=buffers,
        inputs=inputs,
        outputs=draw(st.lists(st.sampled_from(outputs), unique_by=lambda p: p.name)),
        layers=layers,
        tables=tables,
        text=text,
    )


@st.composite
def _elementwise(
    draw: st.DrawFn, jobs: list[_Job], tables: dict[str, Table], buffers: dict[str, Buffer]
) -> list[Instruction]:
    """Element-wise instructions over rows of the output buffers (their pitch is a multiple of
    the PE count, so every row starts on PE 0); views of one instruction have equal lengths."""
    out: list[Instruction] = []
    for _ in range(draw(st.integers(0, 2))):
        job = draw(st.sampled_from(jobs))
        same = [j.dst for j in jobs if j.dst.cols == job.dst.cols]

        def row(draw: st.DrawFn = draw, same: list[Buffer] = same) -> View:
            buffer = draw(st.sampled_from(same))
            return View(buffer.name, draw(st.integers(0, buffer.rows - 1)))

        op = draw(st.sampled_from(["add", "mul", "copy", "lut"]))
        if op == "add":
            out.append(EwAdd(row(), row(), row()))
        elif op == "mul":
            out.append(EwMul(row(), row(), row()))
        elif op == "copy":
            out.append(EwCopy(row(), row()))
        else:
            src = row()
            frac = buffers[src.buffer].frac
            usable = [
                t
                for t in tables.values()
                if (Fraction(t.lo) * Fraction(2) ** frac).denominator == 1
            ]
            if usable:
                out.append(EwLut(row(), src, draw(st.sampled_from(usable)).name))
    return out


@st.composite
def _machine(
    draw: st.DrawFn, pes: int, layers: dict[str, Layer], buffers: dict[str, Buffer]
) -> Machine:
    """A machine of ``pes`` PEs whose memories and pointers fit the program, with slack."""
    largest = max(int(layer.ptr.max()) for layer in layers.values())
    ptr_bits = next(b for b in range(8, 33, 4) if largest < 1 << b)
    ptr_bits = draw(st.sampled_from([b for b in (ptr_bits, 16, 32) if b >= ptr_bits]))
    entries = sum(layer.entries_per_pe for layer in layers.values()).max()
    pointer_bytes = math.ceil(sum(layer.cols + 1 for layer in layers.values()) * ptr_bits / 8)
    act_bytes = 2 * sum(-(-b.size // pes) for b in buffers.values())
    slack = st.integers(0, 64)
    return Machine(
        pes=pes,
        fifo_depth=draw(st.integers(1, 16)),
        clock_mhz=draw(st.sampled_from([800.0, 1000.0, 200.5, 0.75, 1e-3])),
        spmat_sram=max(1, int(entries)) + draw(slack),
        ptr_sram=pointer_bytes + draw(slack),
        act_sram=act_bytes + draw(slack),
        ptr_bits=ptr_bits,
        acc_bits=draw(st.integers(17, 64)),
    )
