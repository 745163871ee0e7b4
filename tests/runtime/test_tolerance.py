"""The fixed-point error bound (eiec.runtime.tolerance) worked out by hand on a tiny layer."""

from __future__ import annotations

import numpy as np

from eiec.emulator import EmulatorConfig
from eiec.isa.builder import fc_program
from eiec.isa.program import Machine
from eiec.runtime.tolerance import gamma
from eiec.runtime.verify import emulate_with_bounds


def test_one_layer_bound_is_the_documented_sum_of_its_terms() -> None:
    # W = [[0.5, -0.25, 0], [0, -0.25, 0.5]] in a codebook of 10 fraction bits (dw = 2**-11),
    # x with 8 (0.3 -> 77/256, off by 0.2/256; -1 and 0.5 exact), y with 6 (rounding 2**-7).
    codes = np.array([[1, 2, 0], [0, 2, 1]], dtype=np.uint8)
    book = np.array([0, 512, -256], dtype=np.int16)
    machine = Machine(pes=2, spmat_sram=4096, ptr_sram=4096, act_sram=4096)
    program = fc_program([codes], [book], [10], [8, 6], machine=machine, relu=False)
    x = np.array([[0.3, -1.0, 0.5]])
    run = emulate_with_bounds(program, {"x": x})

    dw, e0, g = 2.0**-11, 0.2 / 256, gamma(4)
    a = np.array([77 / 256 + e0, 1.0, 0.5])  # |a| + e_a: the reach of the CPU's activation
    expected = np.array(
        [
            0.5 * e0 + dw * (a[0] + a[1]) + g * ((0.5 + dw) * a[0] + (0.25 + dw) * a[1]),
            dw * (a[1] + a[2]) + g * ((0.25 + dw) * a[1] + (0.5 + dw) * a[2]),
        ]
    )
    expected += 2.0**-7  # the writeback rounds 18 fraction bits to 6
    np.testing.assert_allclose(run.bounds["y"][0], expected, rtol=1e-12)
    exact = np.array([[0.5, -0.25, 0.0], [0.0, -0.25, 0.5]]) @ x[0]
    assert (np.abs(run.outputs["y"][0] - exact) <= run.bounds["y"][0]).all()

    # float32 mode: inputs only round to float32, no writeback rounding, float32 terms twice.
    real = emulate_with_bounds(program, {"x": x}, EmulatorConfig(arith="float32"))
    e0 = abs(0.3 - float(np.float32(0.3)))
    a = np.array([float(np.float32(0.3)) + e0, 1.0, 0.5])
    expected = np.array(
        [
            0.5 * e0 + dw * (a[0] + a[1]) + 2 * g * ((0.5 + dw) * a[0] + (0.25 + dw) * a[1]),
            dw * (a[1] + a[2]) + 2 * g * ((0.25 + dw) * a[1] + (0.5 + dw) * a[2]),
        ]
    )
    np.testing.assert_allclose(real.bounds["y"][0], expected, rtol=1e-12)
