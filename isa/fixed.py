"""16-bit fixed-point arithmetic of the EIE machine (isa/SPEC.md, "Arithmetic").

A word is a signed 16-bit integer q standing for q / 2**frac. Every narrowing step uses the
same rule: round half up (add half an LSB, shift right arithmetically), then saturate to
[-32768, 32767]. The functions return how many values saturated so callers can count events.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eiec.isa.program import WORD_MAX, WORD_MIN


def round_shift(values: np.ndarray, shift: int) -> np.ndarray:
    """``values * 2**-shift`` rounded half up, as int64 (a left shift when ``shift < 0``)."""
    wide = values.astype(np.int64, copy=False)
    if shift <= 0:
        return wide << -shift
    return (wide + (1 << (shift - 1))) >> shift


def saturate(values: np.ndarray, rows: bool = False) -> tuple[np.ndarray, Any]:
    """Clamp int64 values to 16 bits; returns (int16 array, number clamped: an int, or with
    ``rows`` an int64 array of the count along the last axis, one per row)."""
    clipped = np.clip(values, WORD_MIN, WORD_MAX)
    return clipped.astype(np.int16), _count(clipped != values, rows)


def narrow(
    values: np.ndarray, from_frac: int, to_frac: int, rows: bool = False
) -> tuple[np.ndarray, Any]:
    """Integers with ``from_frac`` fraction bits to 16-bit words with ``to_frac`` bits (the
    count as :func:`saturate`'s)."""
    return saturate(round_shift(values, from_frac - to_frac), rows)


def quantize(x: np.ndarray, frac: int, rows: bool = False) -> tuple[np.ndarray, Any]:
    """Real values to 16-bit words with ``frac`` fraction bits (round half up, saturate; the
    count as :func:`saturate`'s)."""
    scaled = np.floor(np.asarray(x, dtype=np.float64) * 2.0**frac + 0.5)
    clipped = np.clip(scaled, WORD_MIN, WORD_MAX)
    return clipped.astype(np.int16), _count(clipped != scaled, rows)


def _count(clamped: np.ndarray, rows: bool) -> Any:
    """How many are set: in all (an int), or along the last axis (an int64 array)."""
    if rows:
        return np.count_nonzero(clamped, axis=-1).astype(np.int64)
    return int(np.count_nonzero(clamped))


def dequantize(q: np.ndarray, frac: int) -> np.ndarray:
    """16-bit words with ``frac`` fraction bits to float64 values."""
    return np.asarray(q, dtype=np.float64) * 2.0**-frac


#: The most fraction bits a format has (``frac_for_range``'s upper clamp): steps of 2**-30.
FINEST_FRAC = 30
#: The fewest (``frac_for_range``'s lower clamp): steps of 2**16.
COARSEST_FRAC = -16
#: The largest magnitude a 16-bit word holds, at the coarsest format.
MAX_MAGNITUDE = WORD_MAX * 2.0**-COARSEST_FRAC


def frac_for_range(max_abs: float, *, headroom: float = 1.0) -> int:
    """The largest fraction-bit count whose range holds ``max_abs * headroom``.

    A 16-bit word with f fraction bits holds values up to ``(2**15 - 1) / 2**f``. The result is
    clamped to [-16, 30] so a zero or tiny range still yields a usable format.
    """
    target = float(max_abs) * headroom
    if not np.isfinite(target) or target <= 0.0:
        return 15
    frac = 15
    while frac > COARSEST_FRAC and target > WORD_MAX * 2.0**-frac:
        frac -= 1
    while frac < FINEST_FRAC and target <= WORD_MAX * 2.0 ** -(frac + 1):
        frac += 1
    return frac


def lost_to_rounding(values: np.ndarray, frac: int) -> np.ndarray:
    """The mask of the non-zero ``values`` that round to 0 with ``frac`` fraction bits (below
    half a step: what a 16-bit format cannot tell from zero)."""
    values = np.asarray(values, dtype=np.float64)
    return (values != 0) & (np.floor(values * 2.0**frac + 0.5) == 0)
