"""Build program pieces from dense data: the one place a code matrix becomes a ``Layer``."""

from __future__ import annotations

import numpy as np

from eiec.isa import csc
from eiec.isa.program import Codebook, Layer


def make_layer(
    name: str, codes: np.ndarray, codebook: np.ndarray, codebook_frac: int, pes: int
) -> Layer:
    """A layer storing ``codes`` (M x K codebook indices) interleaved over ``pes`` PEs.

    ``codebook`` holds the int16 codebook words (entry 0 must be 0) with ``codebook_frac``
    fraction bits.
    """
    codes = np.asarray(codes, dtype=np.uint8)
    stored = csc.encode(codes, pes)
    return Layer(
        name=name,
        rows=int(codes.shape[0]),
        cols=int(codes.shape[1]),
        codebook=Codebook(values=np.asarray(codebook, dtype=np.int16), frac=int(codebook_frac)),
        ptr=stored.ptr,
        v=stored.v,
        z=stored.z,
    )
