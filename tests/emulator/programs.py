"""Small FC programs for the emulator tests, built from dense code matrices."""

from __future__ import annotations

import numpy as np

from eiec.isa.builder import make_layer
from eiec.isa.program import (
    BroadcastActivation,
    Buffer,
    Halt,
    Instruction,
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

#: Memories large enough for any test layer (the emulator does not check capacity).
BIG = 1 << 24


def fc_program(
    codes: list[np.ndarray],
    codebooks: list[np.ndarray],
    codebook_fracs: list[int],
    fracs: list[int],
    *,
    pes: int,
    fifo_depth: int = 8,
    bias: bool = False,
    relu: bool = True,
) -> Program:
    """A chain of FC layers: x -> h1 -> ... -> y.

    ``codes[i]`` is M_i x (K_i + bias) (the bias column last, broadcast as ``#1``);
    ``fracs[i]`` is the format of the i-th activation buffer (x first, y last). Hidden layers
    use ``relu-writeback``; the last layer too when ``relu``.
    """
    machine = Machine(
        pes=pes, fifo_depth=fifo_depth, spmat_sram=BIG, ptr_sram=BIG, act_sram=BIG, ptr_bits=32
    )
    widths = [codes[0].shape[1] - bias] + [c.shape[0] for c in codes]
    names = ["x"] + [f"h{i}" for i in range(1, len(codes))] + ["y"]
    buffers = {
        name: Buffer(name, rows=1, cols=width, pitch=-(-width // pes) * pes, frac=frac)
        for name, width, frac in zip(names, widths, fracs, strict=True)
    }
    layers = {}
    text: list[Instruction] = []
    for i, (c, book, book_frac) in enumerate(zip(codes, codebooks, codebook_fracs, strict=True)):
        layer = make_layer(f"fc{i}", c, book, book_frac, pes)
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
        inputs=[Port("x", "x", (1, widths[0]), batch_axis=0)],
        outputs=[Port("y", "y", (1, widths[-1]), batch_axis=0)],
        layers=layers,
        text=text,
    )


def random_codes(
    rng: np.random.Generator, rows: int, cols: int, density: float, levels: int = 16
) -> np.ndarray:
    """A code matrix with about ``density`` non-zeros of uniform codes 1..levels-1."""
    mask = rng.random((rows, cols)) < density
    return np.where(mask, rng.integers(1, levels, size=(rows, cols)), 0).astype(np.uint8)
