"""Fixed-point narrowing: round half up, saturate, counted."""

from __future__ import annotations

import numpy as np

from eiec.isa import fixed


def test_round_shift_rounds_half_up() -> None:
    values = np.array([5, 6, 7, -5, -6, -7], dtype=np.int64)  # /4: 1.25 1.5 1.75 -1.25 -1.5 -1.75
    assert fixed.round_shift(values, 2).tolist() == [1, 2, 2, -1, -1, -2]


def test_saturate_counts_clamps() -> None:
    words, count = fixed.saturate(np.array([40000, -40000, 12], dtype=np.int64))
    assert words.tolist() == [32767, -32768, 12]
    assert count == 2


def test_quantize_and_back() -> None:
    q, count = fixed.quantize(np.array([0.5, -0.25, 1000.0]), frac=8)
    assert q.tolist() == [128, -64, 32767]
    assert count == 1
    assert fixed.dequantize(q[:2], 8).tolist() == [0.5, -0.25]


def test_quantize_rounds_ties_half_up() -> None:
    # frac 2: x * 4 = 0.5, -0.5, 1.5, -1.5, 2.5 -> 1, 0, 2, -1, 3 (towards +inf, as round_shift).
    q, count = fixed.quantize(np.array([0.125, -0.125, 0.375, -0.375, 0.625]), frac=2)
    assert q.tolist() == [1, 0, 2, -1, 3]
    assert count == 0


def test_frac_for_range_is_largest_that_fits() -> None:
    frac = fixed.frac_for_range(3.9)
    assert 32767 * 2.0**-frac >= 3.9
    assert 32767 * 2.0 ** -(frac + 1) < 3.9
