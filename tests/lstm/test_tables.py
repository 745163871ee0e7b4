"""The sigmoid / tanh tables meet their documented error bound under the emulator's ew-lut."""

from __future__ import annotations

import numpy as np
import pytest

from eiec.codegen.tables import (
    ERROR_BOUND,
    FUNCTIONS,
    GATE_FRAC,
    GATE_VALUE_FRAC,
    activation_table,
)
from eiec.emulator.arith import FixedArith
from eiec.isa import fixed
from eiec.isa.program import WORD_MAX, WORD_MIN


def table_error(fn: str, input_frac: int) -> float:
    """Max |ew-lut(q) - fn(q / 2**input_frac)| over every 16-bit word q."""
    table = activation_table(fn)
    words = np.arange(WORD_MIN, WORD_MAX + 1, dtype=np.int64)
    out, saturations = FixedArith(acc_bits=48).lut(words, input_frac, table, GATE_VALUE_FRAC)
    assert saturations == 0
    got = fixed.dequantize(out, GATE_VALUE_FRAC)
    return float(np.abs(got - FUNCTIONS[fn](fixed.dequantize(words, input_frac))).max())


@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
def test_error_bound_at_the_gate_format(fn: str) -> None:
    error = table_error(fn, GATE_FRAC)
    assert error <= ERROR_BOUND[fn]
    # The bound is tight: within 20% of the measured error (a looser table would be caught).
    assert error > 0.8 * ERROR_BOUND[fn]


@pytest.mark.parametrize("input_frac", [5, 8, 12, 13])
def test_tanh_bound_holds_for_cell_state_formats(input_frac: int) -> None:
    assert table_error("tanh", input_frac) <= ERROR_BOUND["tanh"]


@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
def test_table_samples_the_function(fn: str) -> None:
    table = activation_table(fn, name=f"{fn}_t")
    assert table.name == f"{fn}_t" and table.fn == fn
    assert table.hi == -table.lo
    xs = table.lo + np.arange(table.values.size) * 2.0**table.step_log2
    np.testing.assert_allclose(
        fixed.dequantize(table.values, table.frac), FUNCTIONS[fn](xs), atol=2.0**-15
    )
