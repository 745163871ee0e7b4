"""Per-layer tables the emulator precomputes once: entry coordinates and per-column counts.

The functional MAC gathers the real entries (v != 0) of the broadcast columns of every PE at
once, so they are stored sorted by column; the cycle model needs, for each column j and PE p,
the stored entries ``n[p, j]`` (padding included), how many of them are real, and how many
64-bit words of the sparse-matrix SRAM they occupy. Arrays indexed by column come first
(shape ``(cols, N)``) so gathering the broadcast columns reads contiguous rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eiec.isa import csc
from eiec.isa.program import Layer

#: Entries per 64-bit read of the sparse-matrix SRAM (8-bit entries).
ENTRIES_PER_SPMAT_WORD = 8
#: float64 holds every integer below 2**53 exactly: the weighted ``np.bincount`` of the MAC is
#: exact while the sum of |products| of any one row stays below this (see ``LayerTables``).
FLOAT64_EXACT = 1 << 53


@dataclass(frozen=True)
class LayerTables:
    """What the emulator knows about one layer after loading it.

    ``entries``, ``real``, ``spmat_words``: ``(cols, N)`` counts per column and PE of stored
    entries (padding included), of real entries (v != 0) and of the 64-bit sparse-matrix words
    they occupy (pointers count from the start of the layer's word-aligned region).
    ``col_start``: ``(cols + 1,)`` offsets into ``row`` / ``v`` of each column's real entries
    (all PEs, PE order inside a column). ``row``: global row of each real entry.
    ``max_row_entries``: a bound on the real entries of any one row, ``cols`` (a row has at most
    one entry per column); with 16-bit words a row's sum of |products| is below
    ``max_row_entries * 2**30``, which bounds the exactness of float64 accumulation
    (``exact_in_float64``).
    """

    name: str
    rows: int
    cols: int
    pes: int
    entries: np.ndarray
    real: np.ndarray
    spmat_words: np.ndarray
    col_start: np.ndarray
    row: np.ndarray
    v: np.ndarray
    max_row_entries: int

    @classmethod
    def build(cls, layer: Layer) -> LayerTables:
        """Precompute the tables of ``layer``: a handful of vectorised passes over the entries,
        no sort and no Python loop over PEs or columns."""
        pes, cols = layer.pes, layer.cols
        ptr = layer.ptr.astype(np.int64)
        entries = np.diff(ptr, axis=1)
        # Storage index of each (PE, column)'s first entry, in storage order (PE, then column).
        start = (layer.pe_base[:, None] + ptr[:, :-1]).ravel()
        # Running counts over the entries in int32 when they surely fit.
        index = csc.count_dtype(layer.z)
        reach = csc.reach(layer.z, dtype=index)
        is_real = layer.v != 0
        real_at = np.flatnonzero(is_real)  # storage indices of the real entries
        before = np.zeros(is_real.size + 1, dtype=index)
        before[1:] = is_real
        np.cumsum(before, out=before)  # in place: much faster than cumsum casting from bool
        first = before[start].astype(np.int64)  # each block's first real entry, into real_at
        real = np.diff(first, append=real_at.size)  # real entries per block (storage order)
        # Global row of a real entry: N * (local row) + PE, local row = reach - reach at the
        # start of its block - 1.
        row_offset = np.repeat(np.arange(pes), cols) - pes * (reach[start].astype(np.int64) + 1)
        # Column-major order, PE order inside a column: each block moves as a whole. Gathered
        # (each sorted position's source), not scattered: one pass less over the entries.
        by_column = real.reshape(pes, cols).T.ravel()
        block_dest = np.zeros(by_column.size, dtype=np.int64)
        np.cumsum(by_column[:-1], out=block_dest[1:])
        source = np.repeat(first.reshape(pes, cols).T.ravel() - block_dest, by_column)
        source += np.arange(real_at.size)
        at = real_at[source]  # storage index of each sorted real entry
        sorted_row = np.multiply(reach[1:][at], pes, dtype=np.int64)
        sorted_row += np.repeat(row_offset.reshape(pes, cols).T.ravel(), by_column)
        sorted_v = layer.v[at].astype(np.uint8, copy=False)
        col_start = np.zeros(cols + 1, dtype=np.int64)
        np.cumsum(by_column.reshape(cols, pes).sum(axis=1), out=col_start[1:])

        first_word = ptr[:, :-1] // ENTRIES_PER_SPMAT_WORD
        last_word = (ptr[:, 1:] - 1) // ENTRIES_PER_SPMAT_WORD
        words = np.where(entries > 0, last_word - first_word + 1, 0)
        return cls(
            name=layer.name,
            rows=layer.rows,
            cols=cols,
            pes=pes,
            entries=np.ascontiguousarray(entries.T),
            real=by_column.reshape(cols, pes),
            spmat_words=np.ascontiguousarray(words.T),
            col_start=col_start,
            row=sorted_row,
            v=sorted_v,
            max_row_entries=cols,
        )

    @property
    def exact_in_float64(self) -> bool:
        """Whether float64 sums of 16-bit x 16-bit products of one row are exact integers."""
        return self.max_row_entries * (1 << 30) < FLOAT64_EXACT

    def gather(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices into ``row`` / ``v`` of the real entries of ``columns`` (in column order)
        and, for each of them, its position in ``columns``."""
        starts = self.col_start[columns]
        counts = self.col_start[columns + 1] - starts
        total = int(counts.sum())
        item = np.repeat(np.arange(columns.size), counts)
        # Position inside the concatenation minus the concatenation offset of its column.
        offsets = np.cumsum(counts) - counts
        index = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, counts)
        return index, item
