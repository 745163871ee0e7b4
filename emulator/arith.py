"""The two arithmetic modes: the machine's 16-bit fixed point, and float32 for debugging.

Both expose the same operations on word arrays so the instruction handlers are written once.
An array of one run is 1-D; a lockstep batch's has a leading lane axis (lanes x words), and the
counts of saturated words are then per lane (int64 arrays of the lanes) instead of ints.
Fixed point follows isa/SPEC.md §4 through ``eiec.isa.fixed`` (round half up, saturate, count);
float32 mode uses real values and never rounds or saturates (SPEC §5, "float32 mode").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eiec.emulator.layers import LayerTables
from eiec.isa import fixed
from eiec.isa.program import Table

#: The functions a table may sample, evaluated exactly in float32 mode.
TABLE_FUNCTIONS = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}


@dataclass(frozen=True)
class FixedArith:
    """16-bit words (int16 in buffers, int64 while computing) with per-operand fraction bits."""

    acc_bits: int
    word_dtype: type = np.int16

    def constant(self, words: np.ndarray, frac: int) -> np.ndarray:
        """A buffer's initial contents from its int16 ``init`` words."""
        return np.asarray(words, dtype=np.int16).copy()

    def load(self, words: np.ndarray) -> np.ndarray:
        """Buffer words as computation values."""
        return words.astype(np.int64)

    def quantize(self, values: np.ndarray, frac: int) -> tuple[np.ndarray, Count]:
        """Host reals to words (inputs, ``#1``)."""
        return fixed.quantize(values, frac, rows=_lanes(values))

    def to_host(self, words: np.ndarray, frac: int) -> np.ndarray:
        """Words to host float32 values."""
        return fixed.dequantize(words, frac).astype(np.float32)

    def narrow(self, values: np.ndarray, from_frac: int, to_frac: int) -> tuple[np.ndarray, Count]:
        """Wide integers to words (round half up, saturate)."""
        return fixed.narrow(values, from_frac, to_frac, rows=_lanes(values))

    def codebook(self, values: np.ndarray, frac: int) -> np.ndarray:
        """Codebook registers from the layer's int16 codebook."""
        return values.astype(np.int64)

    def zeros(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """Cleared accumulators."""
        return np.zeros(shape, dtype=np.int64)

    def mac(
        self,
        acc: np.ndarray,
        tables: LayerTables,
        codebook: np.ndarray,
        columns: np.ndarray,
        activations: np.ndarray,
    ) -> int:
        """``acc[row] += codebook[v] * a_j`` for every real entry of ``columns``; returns the
        accumulator overflow count (sums clamped to ``acc_bits``).

        With float64 exact for the layer's sums (every product and partial sum an integer
        below 2**53, so any summation order gives the same integers): the decoded weights
        times the whole stream (zeros where no activation is sent) when the broadcast
        columns are at least ``1 / SPARSE_STREAM`` of the layer's (one compiled pass over
        every real entry), else a gather of the columns' entries and a weighted bincount.
        """
        if tables.exact_in_float64 and columns.size * SPARSE_STREAM >= tables.cols:
            stream = np.zeros(tables.cols)
            stream[columns] = activations
            acc += (tables.decoded(codebook) @ stream).astype(np.int64)
            return int(self._saturate(acc))
        index, item = tables.gather(columns)
        rows = tables.row[index]
        if tables.exact_in_float64:
            weights = codebook[tables.v[index]].astype(np.float64) * activations[item]
            acc += np.bincount(rows, weights=weights, minlength=acc.size).astype(np.int64)
        else:
            np.add.at(acc, rows, codebook[tables.v[index]] * activations[item])
        return int(self._saturate(acc))

    def mac_batch(
        self,
        accs: np.ndarray,
        tables: LayerTables,
        weights: np.ndarray | None,
        codebook: np.ndarray,
        streams: np.ndarray,
        columns: list[np.ndarray],
    ) -> np.ndarray:
        """:meth:`mac` of B samples: ``accs`` (B x rows) += ``streams`` (B x cols; sample b's
        non-zero ``columns[b]``) times the layer's weights, clamped per sample; the overflow
        count of each.

        ``weights``: :func:`dense_weights` of the layer and ``codebook``, or None (then sample
        by sample). The float64 product is exact as the bincount is: every product and partial
        sum is an integer below 2**53, so any summation order gives the same integers.
        """
        if weights is None:
            return _each_sample(self, accs, tables, codebook, streams, columns)
        accs += (streams.astype(np.float64) @ weights).astype(np.int64)
        return self._saturate(accs)

    def _saturate(self, acc: np.ndarray) -> np.ndarray:
        """Clamp ``acc`` in place to ``acc_bits``; the clamped count along its last axis."""
        limit = 1 << (self.acc_bits - 1)
        clipped = np.clip(acc, -limit, limit - 1)
        overflows = np.count_nonzero(clipped != acc, axis=-1)
        acc[...] = clipped
        return overflows

    def add(
        self, a: np.ndarray, a_frac: int, b: np.ndarray, b_frac: int, to_frac: int
    ) -> tuple[np.ndarray, Count]:
        """``ew-add``: align both to the finer format, add, narrow."""
        common = max(a_frac, b_frac)
        total = (a << (common - a_frac)) + (b << (common - b_frac))
        return self.narrow(total, common, to_frac)

    def mul(
        self, a: np.ndarray, a_frac: int, b: np.ndarray, b_frac: int, to_frac: int
    ) -> tuple[np.ndarray, Count]:
        """``ew-mul``: exact product, narrow."""
        return self.narrow(a * b, a_frac + b_frac, to_frac)

    def lut(
        self, a: np.ndarray, a_frac: int, table: Table, to_frac: int
    ) -> tuple[np.ndarray, Count]:
        """``ew-lut``: piecewise-linear interpolation of the table samples (SPEC §5, lut)."""
        t = table.values.astype(np.int64)
        shift = a_frac + table.step_log2
        offset = a - round(table.lo * 2.0**a_frac)
        if shift > 0:
            index = offset >> shift
            rest = offset - (index << shift)
        else:
            index = offset << -shift
            rest = np.zeros_like(offset)
        inner = np.clip(index, 0, t.size - 2)
        bits = max(shift, 0)
        value = (t[inner] << bits) + (t[inner + 1] - t[inner]) * rest
        value = np.where(index < 0, t[0] << bits, value)
        value = np.where(index >= t.size - 1, t[-1] << bits, value)
        return self.narrow(value, table.frac + bits, to_frac)


@dataclass(frozen=True)
class FloatArith:
    """float32 words; computation in float64, stored back as float32; no rounding to formats."""

    word_dtype: type = np.float32

    def constant(self, words: np.ndarray, frac: int) -> np.ndarray:
        """A buffer's initial contents: ``init / 2**frac``."""
        return fixed.dequantize(words, frac).astype(np.float32)

    def load(self, words: np.ndarray) -> np.ndarray:
        """Buffer words as computation values."""
        return words.astype(np.float64)

    def quantize(self, values: np.ndarray, frac: int) -> tuple[np.ndarray, Count]:
        """Host reals unchanged (float32)."""
        values = np.asarray(values, dtype=np.float32)
        return values, _none(values)

    def to_host(self, words: np.ndarray, frac: int) -> np.ndarray:
        """Words are already host values."""
        return np.asarray(words, dtype=np.float32)

    def narrow(self, values: np.ndarray, from_frac: int, to_frac: int) -> tuple[np.ndarray, Count]:
        """Values to float32 words; formats are ignored."""
        values = np.asarray(values, dtype=np.float32)
        return values, _none(values)

    def codebook(self, values: np.ndarray, frac: int) -> np.ndarray:
        """Codebook registers as reals."""
        return fixed.dequantize(values, frac)

    def zeros(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """Cleared accumulators."""
        return np.zeros(shape, dtype=np.float64)

    def mac(
        self,
        acc: np.ndarray,
        tables: LayerTables,
        codebook: np.ndarray,
        columns: np.ndarray,
        activations: np.ndarray,
    ) -> int:
        """``acc[row] += codebook[v] * a_j`` in float64; never overflows."""
        index, item = tables.gather(columns)
        weights = codebook[tables.v[index]] * activations[item]
        acc += np.bincount(tables.row[index], weights=weights, minlength=acc.size)
        return 0

    def mac_batch(
        self,
        accs: np.ndarray,
        tables: LayerTables,
        weights: np.ndarray | None,
        codebook: np.ndarray,
        streams: np.ndarray,
        columns: list[np.ndarray],
    ) -> np.ndarray:
        """:meth:`mac` of B samples, sample by sample (``weights`` unused): a matrix product
        would sum in another order than the bincount, and sums of reals depend on the order."""
        return _each_sample(self, accs, tables, codebook, streams, columns)

    def add(
        self, a: np.ndarray, a_frac: int, b: np.ndarray, b_frac: int, to_frac: int
    ) -> tuple[np.ndarray, Count]:
        """``ew-add``."""
        return self.narrow(a + b, 0, 0)

    def mul(
        self, a: np.ndarray, a_frac: int, b: np.ndarray, b_frac: int, to_frac: int
    ) -> tuple[np.ndarray, Count]:
        """``ew-mul``."""
        return self.narrow(a * b, 0, 0)

    def lut(
        self, a: np.ndarray, a_frac: int, table: Table, to_frac: int
    ) -> tuple[np.ndarray, Count]:
        """``ew-lut``: the table's function evaluated exactly."""
        return self.narrow(TABLE_FUNCTIONS[table.fn](a), 0, 0)


Arithmetic = FixedArith | FloatArith

#: How many words an operation saturated: an int for one run, an int64 array of the lanes'
#: counts for a lockstep batch (arrays with a leading lane axis).
Count = Any


def _lanes(values: np.ndarray) -> bool:
    """Whether ``values`` have a leading lane axis (a lockstep batch's: lanes x words)."""
    return np.ndim(values) > 1


def _none(values: np.ndarray) -> Count:
    """No saturation, counted as for ``values``."""
    return np.zeros(values.shape[0], dtype=np.int64) if _lanes(values) else 0


#: :meth:`FixedArith.mac` multiplies the whole stream when at least 1 / this of its columns
#: are sent (a gather of few columns' entries is cheaper than a pass over all of them).
SPARSE_STREAM = 16

#: The largest dense weight matrix (entries) :func:`dense_weights` builds for a batch.
DENSE_LIMIT = 64 << 20


def _each_sample(
    arith: Arithmetic,
    accs: np.ndarray,
    tables: LayerTables,
    codebook: np.ndarray,
    streams: np.ndarray,
    columns: list[np.ndarray],
) -> np.ndarray:
    """``arith.mac`` of each sample in turn (``mac_batch`` without a product); the overflow
    count of each."""
    return np.array(
        [
            arith.mac(acc, tables, codebook, sent, stream[sent])
            for acc, stream, sent in zip(accs, streams, columns, strict=True)
        ],
        dtype=np.int64,
    )


def dense_weights(tables: LayerTables, codebook: np.ndarray, samples: int) -> np.ndarray | None:
    """The layer's decoded weights, transposed, as a cols x rows float64 matrix
    (``codebook[v]`` at each real entry, 0 elsewhere) for :meth:`FixedArith.mac_batch` of
    ``samples`` samples; None when it would exceed ``DENSE_LIMIT`` entries, when float64 sums
    of the layer's products may be inexact, or when it has more entries than the samples'
    real entries together (then it would not pay for itself).

    A real entry's (row, column) is unique (rows grow within a column on a PE, and PEs own
    disjoint rows), so assigning the words places each one once.
    """
    rows, cols = tables.rows, tables.cols
    size = rows * cols
    if size > DENSE_LIMIT or size > samples * tables.row.size or not tables.exact_in_float64:
        return None
    index, column = tables.gather(np.arange(cols))
    at = column * rows
    at += tables.row[index]
    weights = np.zeros(cols * rows, dtype=np.float64)
    weights[at] = codebook.astype(np.float64)[tables.v[index]]
    return weights.reshape(cols, rows)
