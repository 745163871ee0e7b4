"""The real AlexNet FC8 layer of ../shared/fixtures (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eiec.emulator import Emulator, EmulatorConfig
from eiec.isa import fixed
from eiec.isa.builder import fc_program

from .programs import big_machine

FIXTURE = Path(__file__).resolve().parents[3] / "shared/fixtures/alexnet_fc8_eie.npz"

pytestmark = [
    pytest.mark.fixture,
    pytest.mark.skipif(not FIXTURE.exists(), reason="needs ../shared/fixtures/alexnet_fc8_eie.npz"),
]


def test_alexnet_fc8_matches_reference() -> None:
    data = np.load(FIXTURE)
    codes, bias_codes = data["codes"], data["bias_codes"]
    codebook, a = data["codebook"].astype(np.float64), data["activations"].astype(np.float64)
    reference = codebook[codes] @ a + codebook[bias_codes]

    book_frac = fixed.frac_for_range(np.abs(codebook).max())  # 19: LSB 2**-19
    x_frac = fixed.frac_for_range(a.max())  # 11
    y_frac = fixed.frac_for_range(np.abs(reference).max(), headroom=1.25)
    book, _ = fixed.quantize(codebook, book_frac)
    layer_codes = np.concatenate([codes, bias_codes[:, None]], axis=1)
    program = fc_program(
        [layer_codes],
        [book],
        [book_frac],
        [x_frac, y_frac],
        machine=big_machine(64),
        bias=True,
        relu=False,
    )

    # Error bound per row r, from the three roundings (accumulation itself is exact):
    #   codebook words: |w - w_q| <= 2**-(book_frac+1) for every stored weight, times |a_j|
    #                   (and times 1 for the bias);
    #   activations:    |a_j - a_q,j| <= 2**-(x_frac+1), times |w_q,rj|;
    #   output:         the final rounding, <= 2**-(y_frac+1).
    w_q = book.astype(np.float64)[codes] * 2.0**-book_frac
    stored = codes != 0
    bound = (
        2.0 ** -(book_frac + 1) * (stored @ np.abs(a) + 1)
        + 2.0 ** -(x_frac + 1) * (np.abs(w_q) @ (a != 0))
        + 2.0 ** -(y_frac + 1)
    )
    result = Emulator(program).run({"x": a.reshape(1, -1)})
    error = np.abs(result.outputs["y"][0] - reference)
    assert (error <= bound).all(), float((error / bound).max())
    assert result.stats.saturations == 0
    assert result.stats.useful_macs == int(np.count_nonzero(codes[:, a != 0])) + int(
        np.count_nonzero(bias_codes)
    )

    # float32 mode only keeps the codebook rounding (the program stores 16-bit codebooks).
    exact = Emulator(program, EmulatorConfig(arith="float32")).run({"x": a.reshape(1, -1)})
    float_error = np.abs(exact.outputs["y"][0] - reference)
    float_bound = 2.0 ** -(book_frac + 1) * (stored @ np.abs(a) + 1) + 1e-6 * np.abs(reference)
    assert (float_error <= float_bound).all()
    assert float_bound.max() < bound.max()
