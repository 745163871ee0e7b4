"""Interleaved CSC encoding: the design doc's example, and encode/decode round trips."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from eiec.isa import csc


def test_design_doc_example_column() -> None:
    column = np.array([0, 0, 1, 2] + [0] * 18 + [3], dtype=np.uint8)[:, None]
    stored = csc.encode(column, pes=1)
    assert stored.v.tolist() == [1, 2, 0, 3]
    assert stored.z.tolist() == [2, 0, 15, 2]
    assert stored.ptr.tolist() == [[0, 4]]


def test_gap_of_exactly_15_and_16_zeros() -> None:
    fifteen = np.array([0] * 15 + [7], dtype=np.uint8)[:, None]
    sixteen = np.array([0] * 16 + [7], dtype=np.uint8)[:, None]
    assert csc.encode(fifteen, 1).z.tolist() == [15]
    assert csc.encode(sixteen, 1).v.tolist() == [0, 7]
    assert csc.encode(sixteen, 1).z.tolist() == [15, 0]


def test_rows_interleave_over_pes() -> None:
    codes = np.zeros((6, 2), dtype=np.uint8)
    codes[4, 0] = 5  # PE 0 (4 mod 2), local row 2
    codes[1, 1] = 9  # PE 1, local row 0
    stored = csc.encode(codes, pes=2)
    assert stored.ptr.tolist() == [[0, 1, 1], [0, 0, 1]]
    assert stored.v.tolist() == [5, 9]
    assert stored.z.tolist() == [2, 0]


@settings(max_examples=60, deadline=None)
@given(
    codes=arrays(
        np.uint8,
        st.tuples(st.integers(1, 70), st.integers(1, 12)),
        elements=st.sampled_from([0, 0, 0, 0, 0, 0, 1, 5, 15]),
    ),
    pes=st.integers(1, 9),
)
def test_decode_inverts_encode(codes: np.ndarray, pes: int) -> None:
    stored = csc.encode(codes, pes)
    assert np.array_equal(csc.decode(stored.ptr, stored.v, stored.z, codes.shape[0]), codes)
    where = csc.coordinates(stored.ptr, stored.z)
    local_rows = (codes.shape[0] - where.pe + pes - 1) // pes
    assert np.all(where.local_row < local_rows)
    # column_heights: each (PE, column)'s highest local row + 1, without per-entry arrays.
    expected = np.zeros((pes, codes.shape[1]), dtype=np.int64)
    np.maximum.at(expected, (where.pe, where.col), where.local_row + 1)
    np.testing.assert_array_equal(csc.column_heights(stored.ptr, stored.z), expected)
