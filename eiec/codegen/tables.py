"""The sigmoid and tanh tables of the LSTM cell: piecewise-linear, 16-bit fixed point.

``ew-lut`` (isa/SPEC.md §5) interpolates linearly between int16 samples and clamps to the end
samples outside the table. The LSTM lowering reads gate pre-activations with
``GATE_FRAC = 11`` fraction bits (range +-16; the writeback saturates beyond, where both
functions are flat to 1e-7) and writes gate values with ``GATE_VALUE_FRAC = 14`` (range +-2,
so sigmoid's 1.0 does not saturate).

=========  ======  ==========  =======  =================================================
table      lo      step        samples  max |lut(q) - f(q / 2**11)| over all 2**16 words
=========  ======  ==========  =======  =================================================
sigmoid    -12     2**-4       385      1.06e-4 (1.74 LSB of 2**-14)
tanh       -8      2**-5       513      1.34e-4 (2.20 LSB of 2**-14)
=========  ======  ==========  =======  =================================================

The bound is measured exhaustively with the emulator's ``ew-lut`` (tests/lstm/test_tables.py)
and agrees with the analysis: sample rounding (0.5 LSB = 3.05e-5) + linear interpolation
(``step**2 / 8 * max|f''|``: 4.7e-5 for sigmoid, 9.4e-5 for tanh) + output rounding (0.5 LSB),
plus the clamp outside the table (``1 - sigmoid(12) = 6.1e-6``, ``1 - tanh(8) = 2.3e-7``). The
tanh table also reads the cell state, in the state's format: the bound holds for any input
format with at least ``-step_log2`` fraction bits (5), where every interpolation is exact in
the input's quantum.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from eiec.isa import fixed
from eiec.isa.program import Table

#: Fraction bits of gate pre-activations (the MAC's writeback format).
GATE_FRAC = 11
#: Fraction bits of sigmoid / tanh results.
GATE_VALUE_FRAC = 14

FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}

#: (lo, step_log2) of each table; the tables are symmetric around 0.
LAYOUT: dict[str, tuple[float, int]] = {"sigmoid": (-12.0, -4), "tanh": (-8.0, -5)}

#: The measured bounds of the module docstring (max abs error at GATE_FRAC inputs).
ERROR_BOUND: dict[str, float] = {"sigmoid": 1.1e-4, "tanh": 1.4e-4}


def relu_table(frac: int, name: str = "relu") -> Table:
    """ReLU as an exact 3-sample table for inputs with ``frac`` fraction bits: samples 0, 0,
    ``2**k`` at ``-2**k, 0, 2**k`` with ``2**k = 2**(15 - frac)``, the whole input range, stored
    with ``frac - 1`` fraction bits (so ``2**k`` is the word 16384). Interpolating between the
    samples is exact in the input's quantum: ``lut(x) = max(x, 0)`` for every input word."""
    k = 15 - frac
    return Table(
        name=name,
        fn="relu",
        lo=-(2.0**k),
        step_log2=k,
        frac=frac - 1,
        values=np.array([0, 0, 1 << 14], dtype=np.int16),
    )


def activation_table(fn: str, name: str | None = None) -> Table:
    """The ``fn`` table (``sigmoid`` or ``tanh``) with GATE_VALUE_FRAC fraction bits."""
    lo, step_log2 = LAYOUT[fn]
    count = round(-2 * lo * 2.0**-step_log2) + 1
    xs = lo + np.arange(count) * 2.0**step_log2
    values, _ = fixed.quantize(FUNCTIONS[fn](xs), GATE_VALUE_FRAC)
    return Table(
        name=name or fn,
        fn=fn,
        lo=lo,
        step_log2=step_log2,
        frac=GATE_VALUE_FRAC,
        values=values,
    )
