"""Per-layer tables the emulator precomputes once: entry coordinates and per-column counts.

The functional MAC gathers the real entries (v != 0) of the broadcast columns of every PE at
once: they stay in storage order, with the offset of each (column, PE) block's first real
entry, so loading a layer needs no sort; the cycle model needs, for each column j and PE p,
the stored entries ``n[p, j]`` (padding included), how many of them are real, and the first
and last 64-bit words of the sparse-matrix SRAM they occupy. Arrays indexed by column come first
(shape ``(cols, N)``) so gathering the broadcast columns reads contiguous rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eiec.isa import csc
from eiec.isa.program import Layer, Program

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
    they occupy (pointers count from the start of the layer's word-aligned region, or of its
    chunk's for a streamed layer). ``first_word``, ``last_word``: ``(cols, N)`` the words
    holding each column's first and last entry on each PE (-1 where it has none), a streamed
    layer's chunks apart (they sit in different halves of the SRAM: no word is shared).
    ``real_start``: ``(cols, N)`` offsets into ``row`` / ``v`` of the first real entry of each
    column and PE. ``row``, ``v``: the global row and the virtual weight of each real entry, in
    storage order (PE, then column, then local row).
    ``max_row_entries``: a bound on the real entries of any one row, ``cols`` (a row has at most
    one entry per column); with 16-bit words a row's sum of |products| is below
    ``max_row_entries * 2**30``, which bounds the exactness of float64 accumulation
    (``exact_in_float64``).
    ``chunks``: a streamed layer's column cut points (``Layer.chunks``), None for a layer held
    on chip; ``chunk_entries``: stored entries of each chunk over all PEs (one chunk on chip).
    """

    name: str
    rows: int
    cols: int
    pes: int
    entries: np.ndarray
    real: np.ndarray
    spmat_words: np.ndarray
    first_word: np.ndarray
    last_word: np.ndarray
    real_start: np.ndarray
    row: np.ndarray
    v: np.ndarray
    max_row_entries: int
    chunks: tuple[int, ...] | None = None
    chunk_entries: np.ndarray | None = None
    #: :meth:`decoded` matrices by codebook (built on first use).
    _decoded: dict[bytes, Any] = field(default_factory=dict, compare=False, repr=False)
    #: A MAC's timing and activity by (machine, stream length, broadcast columns): a pure
    #: function of them (``eiec.emulator.cycles.mac_costs`` fills it, a few patterns at most).
    costs: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, layer: Layer) -> LayerTables:
        """Precompute the tables of ``layer``: a handful of vectorised passes over the entries
        in storage order, no sort and no Python loop over PEs or columns."""
        pes, cols = layer.pes, layer.cols
        ptr = layer.ptr.astype(np.int64)
        entries = np.diff(ptr, axis=1)
        # Storage index of each (PE, column) block's first entry, in storage order.
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
        real = np.diff(first, append=real_at.size)  # real entries per block
        # Global row of entry i of PE p: N * (reach[i + 1] - reach[s] - 1) + p, s its block's
        # first entry; the per-block part repeated over the block's real entries.
        block_offset = pes * (reach[start].astype(np.int64) + 1) - np.repeat(np.arange(pes), cols)
        row = np.multiply(reach[1:][real_at], pes, dtype=np.int64)
        row -= np.repeat(block_offset, real)
        # Counts, offsets and rows in int32 when they fit (half the memory and the cache).
        narrow = np.int32 if max(layer.v.size, layer.rows) <= np.iinfo(np.int32).max else np.int64
        base = np.zeros(cols, dtype=np.int64)  # each column's chunk's first column
        offset = np.zeros(cols, dtype=np.int64)  # and its chunk, in the high bits
        if layer.chunks is not None:
            cuts = np.asarray(layer.chunks, dtype=np.int64)
            chunk = np.searchsorted(cuts, np.arange(cols), side="right") - 1
            base, offset = cuts[chunk], chunk
        chunk_start = ptr[:, base]  # chunk-relative pointers from here
        first_word = (ptr[:, :-1] - chunk_start) // ENTRIES_PER_SPMAT_WORD
        last_word = (ptr[:, 1:] - chunk_start - 1) // ENTRIES_PER_SPMAT_WORD
        words = np.where(entries > 0, last_word - first_word + 1, 0)
        offset = offset * (int(last_word.max(initial=0)) + 2)  # chunks' words never meet
        first_word = np.where(entries > 0, first_word + offset, -1)
        last_word = np.where(entries > 0, last_word + offset, -1)
        wide = int(last_word.max(initial=0)) > np.iinfo(np.int32).max
        word_type = np.int64 if wide else np.int32
        return cls(
            name=layer.name,
            rows=layer.rows,
            cols=cols,
            pes=pes,
            entries=np.ascontiguousarray(entries.T, dtype=narrow),
            real=np.ascontiguousarray(real.reshape(pes, cols).T, dtype=narrow),
            spmat_words=np.ascontiguousarray(words.T, dtype=narrow),
            first_word=np.ascontiguousarray(first_word.T, dtype=word_type),
            last_word=np.ascontiguousarray(last_word.T, dtype=word_type),
            real_start=np.ascontiguousarray(first.reshape(pes, cols).T, dtype=narrow),
            row=row.astype(narrow, copy=False),
            v=layer.v[real_at].astype(np.uint8, copy=False),
            max_row_entries=cols,
            chunks=layer.chunks,
            chunk_entries=layer.chunk_entries().sum(axis=1),
        )

    def spmat_reads(self, columns: np.ndarray) -> int:
        """64-bit sparse-matrix SRAM reads of one MAC broadcasting ``columns`` (increasing, as
        a stream's non-zeros are), over all PEs: a PE reads a word when its next entry lies in
        another word than the entry before it (the word read last stays in the read unit), the
        MAC's first entry always (isa/SPEC.md §6). A PE's words only grow along the columns,
        so the word it holds when a column starts is the largest last word so far."""
        if columns.size == 0:
            return 0
        words = int(self.spmat_words[columns].sum())
        first, last = self.first_word[columns[1:]], self.last_word[columns]
        held = np.maximum.accumulate(last[:-1], axis=0)
        return words - int(np.count_nonzero((first >= 0) & (first == held)))

    @property
    def exact_in_float64(self) -> bool:
        """Whether float64 sums of 16-bit x 16-bit products of one row are exact integers."""
        return self.max_row_entries * (1 << 30) < FLOAT64_EXACT

    def decoded(self, codebook: np.ndarray) -> Any:
        """The layer's weights ``codebook[v]`` as a rows x cols ``scipy.sparse`` CSR matrix
        (built once per codebook): its product with a whole stream touches every real entry
        once, in compiled code. Values are float32 (``codebook`` holds 16-bit words, which
        float32 holds exactly); scipy multiplies them with a float64 stream in float64."""
        key = np.asarray(codebook).tobytes()
        matrix = self._decoded.get(key)
        if matrix is None:
            from scipy.sparse import csr_matrix  # lazy: scipy, for the start-up of the CLI

            # The column of each real entry, in storage order (PE, then column, then row).
            col = np.repeat(np.tile(np.arange(self.cols), self.pes), self.real.T.ravel())
            values = np.asarray(codebook, dtype=np.float32)[self.v]
            matrix = csr_matrix((values, (self.row, col)), shape=(self.rows, self.cols))
            self._decoded[key] = matrix
        return matrix

    def gather(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices into ``row`` / ``v`` of the real entries of ``columns`` (in column order, PE
        order inside a column) and, for each of them, its position in ``columns``."""
        real = self.real[columns]
        item = np.repeat(np.arange(columns.size), real.sum(axis=1))
        counts = real.ravel()
        blocks = np.flatnonzero(counts)
        if blocks.size == 0:
            return np.zeros(0, dtype=np.int64), item
        count = counts[blocks].astype(np.int64)
        start = self.real_start[columns].ravel()[blocks].astype(np.int64)
        # The indices run up by one inside a block and jump to the next block's start after
        # it: a running sum of ones with each block's jump at its first position.
        ends = np.cumsum(count)
        step = np.ones(int(ends[-1]), dtype=np.int64)
        step[0] = start[0]
        step[ends[:-1]] = start[1:] - (start[:-1] + count[:-1] - 1)
        return np.cumsum(step, out=step), item


def program_tables(program: Program) -> dict[str, LayerTables]:
    """The tables of every layer of ``program``, by layer name."""
    return {name: LayerTables.build(layer) for name, layer in program.layers.items()}
