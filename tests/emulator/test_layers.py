"""LayerTables against the dense code matrix it stores (storage order, padding and zeros)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from eiec.emulator.layers import LayerTables
from eiec.isa.builder import make_layer


def _expected(codes: np.ndarray, pes: int) -> tuple[list[int], list[int], list[int]]:
    """Rows and codes of the real entries in column order, PE order inside a column,
    local-row order inside a PE; and each entry's column."""
    rows, v, cols = [], [], []
    for j in range(codes.shape[1]):
        column = sorted(np.flatnonzero(codes[:, j]).tolist(), key=lambda r: (r % pes, r // pes))
        rows += column
        v += codes[column, j].tolist()
        cols += [j] * len(column)
    return rows, v, cols


@settings(max_examples=60, deadline=None)
@given(
    codes=arrays(
        np.uint8,
        st.tuples(st.integers(1, 90), st.integers(1, 10)),
        elements=st.sampled_from([0, 0, 0, 0, 0, 0, 0, 0, 1, 7, 15]),
    ),
    pes=st.integers(1, 7),
)
def test_tables_match_the_dense_matrix(codes: np.ndarray, pes: int) -> None:
    layer = make_layer("fc", codes, np.arange(16, dtype=np.int16), 0, pes)
    tables = LayerTables.build(layer)
    rows, v, cols = _expected(codes, pes)
    index, item = tables.gather(np.arange(codes.shape[1]))
    assert tables.row[index].tolist() == rows
    assert tables.v[index].tolist() == v
    assert item.tolist() == cols
    assert sorted(index.tolist()) == list(range(len(rows)))  # each real entry once
    # Some columns, in a different order: each item is its column's position in the request.
    some = np.arange(codes.shape[1])[::-2]
    index, item = tables.gather(some)
    picked = [(r, c) for r, c in zip(rows, cols, strict=True) if c in set(some.tolist())]
    by_request = sorted(picked, key=lambda rc: some.tolist().index(rc[1]))
    assert tables.row[index].tolist() == [r for r, _ in by_request]
    assert some[item].tolist() == [c for _, c in by_request]
    entries = np.diff(layer.ptr, axis=1).T
    np.testing.assert_array_equal(tables.entries, entries)
    real = np.array(
        [[np.count_nonzero(codes[p::pes, j]) for p in range(pes)] for j in range(codes.shape[1])]
    )
    np.testing.assert_array_equal(tables.real, real)
    assert tables.max_row_entries == codes.shape[1]


def test_stored_zeros_are_not_real_entries() -> None:
    # One PE, one column: v = 3 at local row 0, a stored zero (v = 0, z = 1) at row 2, v = 5 at 3.
    layer = make_layer("fc", np.zeros((4, 1), np.uint8), np.arange(16, dtype=np.int16), 0, 1)
    layer = dataclasses.replace(
        layer,
        ptr=np.array([[0, 3]]),
        v=np.array([3, 0, 5], np.uint8),
        z=np.array([0, 1, 0], np.uint8),
    )
    tables = LayerTables.build(layer)
    assert tables.row.tolist() == [0, 3]
    assert tables.v.tolist() == [3, 5]
    assert tables.entries.tolist() == [[3]]
    assert tables.real.tolist() == [[2]]
