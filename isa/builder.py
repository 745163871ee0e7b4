"""Build program pieces from dense data: the one place a code matrix becomes a ``Layer``.

``codebook_of`` / ``codes_of`` turn a real matrix with few distinct values into a codebook and
its indices (``codebook[codes]`` gives the matrix back), ``make_layer`` stores a code matrix
over the PEs, and ``fc_program`` chains such layers into a whole program (tests, benchmarks and
hand-made programs build theirs with it; the compiler assembles its own).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eiec.isa import csc
from eiec.isa.program import (
    CODEBOOK_SIZE,
    BroadcastActivation,
    Buffer,
    Codebook,
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
    View,
    Writeback,
)


def codebook_of(values: np.ndarray) -> np.ndarray:
    """``[0, sorted distinct non-zero values]``: the real codebook that holds ``values`` exactly.

    It may have more than the machine's 16 entries; callers check.
    """
    return np.concatenate(([0.0], np.unique(values[values != 0])))


def codes_of(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """The uint8 index into ``codebook`` (from :func:`codebook_of`) of each value; 0 for zeros."""
    codes = np.zeros(values.shape, dtype=np.uint8)
    nonzero = values != 0
    codes[nonzero] = np.searchsorted(codebook[1:], values[nonzero]) + 1
    return codes


def make_layer(
    name: str, codes: np.ndarray, codebook: np.ndarray, codebook_frac: int, pes: int
) -> Layer:
    """A layer storing ``codes`` (M x K codebook indices) interleaved over ``pes`` PEs.

    ``codebook`` holds the int16 codebook words (entry 0 must be 0) with ``codebook_frac``
    fraction bits.
    """
    codes = np.asarray(codes, dtype=np.uint8)
    stored = csc.encode(codes, pes)
    return Layer(
        name=name,
        rows=int(codes.shape[0]),
        cols=int(codes.shape[1]),
        codebook=Codebook(values=np.asarray(codebook, dtype=np.int16), frac=int(codebook_frac)),
        ptr=stored.ptr,
        v=stored.v,
        z=stored.z,
    )


def fc_program(
    codes: Sequence[np.ndarray],
    codebooks: Sequence[np.ndarray],
    codebook_fracs: Sequence[int],
    fracs: Sequence[int],
    *,
    machine: Machine,
    bias: bool = False,
    relu: bool = True,
    buffer_names: Sequence[str] | None = None,
    layer_names: Sequence[str] | None = None,
) -> Program:
    """A chain of FC layers ``x -> h1 -> ... -> y`` on ``machine``.

    ``codes[i]`` is M_i x (K_i + bias) (the bias column last, broadcast as ``#1``) with the
    int16 codebook ``codebooks[i]`` of ``codebook_fracs[i]`` fraction bits; ``fracs[i]`` is the
    format of the i-th activation buffer (input first, output last). Buffers are one row, their
    pitch padded to a multiple of the PE count; ``buffer_names`` (default ``x``, ``h1``, ...,
    ``y``) also name the input and output ports (batch axis 0), ``layer_names`` (default
    ``fc0``, ``fc1``, ...) the layers. Hidden layers use ``relu-writeback``, the last one too
    when ``relu``. The machine's memories are not checked.
    """
    pes = machine.pes
    widths = [codes[0].shape[1] - bias] + [c.shape[0] for c in codes]
    names = list(buffer_names or ["x"] + [f"h{i}" for i in range(1, len(codes))] + ["y"])
    buffers = {
        name: Buffer(name, rows=1, cols=width, pitch=-(-width // pes) * pes, frac=frac)
        for name, width, frac in zip(names, widths, fracs, strict=True)
    }
    layers = {}
    text: list[Instruction] = []
    for i, (c, book, book_frac) in enumerate(zip(codes, codebooks, codebook_fracs, strict=True)):
        layer = make_layer(layer_names[i] if layer_names else f"fc{i}", c, book, book_frac, pes)
        layers[layer.name] = layer
        sources = (View(names[i], 0), One()) if bias else (View(names[i], 0),)
        last = i == len(codes) - 1
        store = ReluWriteback if (relu or not last) else Writeback
        text += [
            LoadCodebook(layer.name),
            BroadcastActivation(sources),
            SparseColumnMac(layer.name),
            store(View(names[i + 1], 0)),
        ]
    text.append(Halt())
    return Program(
        machine=machine,
        buffers=buffers,
        inputs=[Port(names[0], names[0], (1, widths[0]), batch_axis=0)],
        outputs=[Port(names[-1], names[-1], (1, widths[-1]), batch_axis=0)],
        layers=layers,
        text=text,
    )


def random_codes(
    rng: np.random.Generator, rows: int, cols: int, density: float, levels: int = CODEBOOK_SIZE
) -> np.ndarray:
    """A code matrix with about ``density`` non-zeros of uniform codes 1..levels-1."""
    mask = rng.random((rows, cols)) < density
    return np.where(mask, rng.integers(1, levels, size=(rows, cols)), 0).astype(np.uint8)
