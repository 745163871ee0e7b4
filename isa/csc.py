"""Interleaved compressed sparse column (CSC) storage: encode a code matrix, decode it back.

Row r of an M x K matrix belongs to PE ``r mod N`` as local row ``r div N``. Per PE and column,
each non-zero is stored as (v, z): v its 4-bit codebook index, z the number of zero local rows
since the previous stored entry of the column (or the column's start). A gap of more than 15
zeros first stores padding entries (v = 0, z = 15), each standing for 16 rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eiec.isa.program import PADDING_Z


@dataclass(frozen=True)
class CscArrays:
    """``ptr`` (N, K + 1) relative to each PE's first entry; ``v`` and ``z`` PE after PE."""

    ptr: np.ndarray
    v: np.ndarray
    z: np.ndarray


def encode(codes: np.ndarray, pes: int) -> CscArrays:
    """Interleaved CSC of ``codes`` (M x K, uint8 codebook indices, 0 = zero) over ``pes`` PEs."""
    codes = np.asarray(codes)
    rows, cols = codes.shape
    local_rows = -(-rows // pes)
    if local_rows * pes != rows:
        codes = np.concatenate([codes, np.zeros((local_rows * pes - rows, cols), codes.dtype)])
    # Row l * N + p is PE p's local row l: as (PE, column, local row), C order is storage order,
    # so the non-zeros come out in the order they are stored, without a sort.
    blocks = np.ascontiguousarray(codes.reshape(local_rows, pes, cols).transpose(1, 2, 0))
    flat = np.flatnonzero(blocks)
    group, local = np.divmod(flat, max(local_rows, 1))  # group: PE * K + column
    value = blocks.reshape(-1)[flat].astype(np.uint8)

    first = np.ones(group.size, dtype=bool)
    first[1:] = group[1:] != group[:-1]
    previous = np.empty_like(local)
    previous[first] = -1
    previous[~first] = local[:-1][~first[1:]]
    gap = local - previous - 1
    pads = gap // (PADDING_Z + 1)
    stored = pads + 1

    per_group = np.bincount(group, weights=stored, minlength=pes * cols).astype(np.int64)
    ptr = np.zeros((pes, cols + 1), dtype=np.int64)
    np.cumsum(per_group.reshape(pes, cols), axis=1, out=ptr[:, 1:])

    total = int(stored.sum())
    v = np.zeros(total, dtype=np.uint8)
    z = np.full(total, PADDING_Z, dtype=np.uint8)
    real = np.cumsum(stored) - 1  # position of each non-zero's own entry
    v[real] = value
    z[real] = (gap % (PADDING_Z + 1)).astype(np.uint8)
    return CscArrays(ptr=ptr, v=v, z=z)


@dataclass(frozen=True)
class EntryCoordinates:
    """For every stored entry: its PE, column and local row (padding entries included)."""

    pe: np.ndarray
    col: np.ndarray
    local_row: np.ndarray


def count_dtype(z: np.ndarray) -> type[np.signedinteger]:
    """The narrowest safe dtype for running counts over ``z``'s entries (:func:`reach`): int32
    (half the memory traffic of int64) when ``z`` is uint8 and ``256 * (entries + 1)`` fits it,
    verified or not; int64 otherwise."""
    fits = z.dtype == np.uint8 and 256 * (z.size + 1) <= np.iinfo(np.int32).max
    return np.int32 if fits else np.int64


def reach(z: np.ndarray, dtype: type[np.signedinteger] = np.int64) -> np.ndarray:
    """``(entries + 1,)``: ``out[i]`` is the sum of ``z + 1`` over the entries before ``i`` in
    storage order. An entry's local row is ``out[i + 1] - out[s] - 1``, where ``s`` is the first
    entry of its PE's column. ``dtype`` must hold ``16 * (entries + 1)`` (int32 halves the
    memory traffic of a big layer)."""
    out = np.empty(z.size + 1, dtype=dtype)
    out[0] = 0
    np.add(z, 1, out=out[1:], dtype=dtype)
    np.cumsum(out, out=out)
    return out


def coordinates(ptr: np.ndarray, z: np.ndarray) -> EntryCoordinates:
    """Where every stored entry of an interleaved CSC sits."""
    pes, cols_plus_one = ptr.shape
    cols = cols_plus_one - 1
    ptr = ptr.astype(np.int64)
    per_column = np.diff(ptr, axis=1).ravel()
    pe = np.repeat(np.arange(pes, dtype=np.int64), ptr[:, -1])
    col = np.repeat(np.tile(np.arange(cols, dtype=np.int64), pes), per_column)
    start = np.cumsum(per_column) - per_column
    rows = reach(z)
    local_row = rows[1:] - np.repeat(rows[start] + 1, per_column)
    return EntryCoordinates(pe=pe, col=col, local_row=local_row)


def column_heights(ptr: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(N, K): the local rows each PE's column reaches, i.e. the local row of its last stored
    entry plus one (0 for an empty column): the :func:`reach` across the column. ``z`` must hold
    exactly the entries ``ptr`` counts."""
    ptr = ptr.astype(np.int64)
    base = np.zeros((ptr.shape[0], 1), dtype=np.int64)
    np.cumsum(ptr[:-1, -1], out=base[1:, 0])
    rows = reach(z, dtype=count_dtype(z))
    return (rows[base + ptr[:, 1:]] - rows[base + ptr[:, :-1]]).astype(np.int64, copy=False)


def decode(ptr: np.ndarray, v: np.ndarray, z: np.ndarray, rows: int) -> np.ndarray:
    """The M x K code matrix an interleaved CSC stores (inverse of :func:`encode`)."""
    pes, cols_plus_one = ptr.shape
    where = coordinates(ptr, z)
    row = where.local_row * pes + where.pe
    codes = np.zeros((rows, cols_plus_one - 1), dtype=np.uint8)
    keep = v != 0
    codes[row[keep], where.col[keep]] = v[keep]
    return codes
