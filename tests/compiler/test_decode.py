"""The compiler checks that the program it emits decodes to the compressed weights."""

from __future__ import annotations

import numpy as np
import pytest

import eiec.codegen.context as context
from eiec.codegen.decode import decode_layer
from eiec.compiler import CompileOptions, compile_model
from eiec.compression import stored_nonzeros
from eiec.errors import CompileError
from eiec.isa import csc

from .models import mlp


def test_a_lowering_that_stores_other_codes_is_a_compile_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    honest = context.layer_codes

    def off_by_one_column(
        name: str, weight: np.ndarray, bias: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        codebook, codes = honest(name, weight, bias)
        return codebook, np.roll(codes, 1, axis=1)  # a lowering bug: every weight one column over

    monkeypatch.setattr(context, "layer_codes", off_by_one_column)
    model = mlp([6, 4, 3], seed=1)
    with pytest.raises(CompileError) as caught:
        compile_model(model, CompileOptions.of(pes=2, sparsity=0.0, bits=4))
    assert str(caught.value) == (
        "layer fc0: the program's layer does not decode to the compressed weights: 27 of 28 "
        "weights differ beyond the codebook's rounding (1.53e-05), first at row 0, column 0: "
        "-0.296997 in the program, 0.136225 in the model (this is a bug in eiec's lowering; "
        "please report it with the model)"
    )


def test_a_compiled_program_decodes_to_its_compressed_module() -> None:
    result = compile_model(mlp([6, 4, 3], seed=1), CompileOptions.of(pes=2, sparsity=0.5, bits=3))
    layer = result.program.layers["fc0"]
    fc = next(iter(result.layer_names))
    assert fc == "fc0"
    decoded = decode_layer(layer)
    assert decoded.shape == (4, 7)
    assert np.count_nonzero(decoded[:, :-1]) == 12  # half of the 24 weights pruned


@pytest.mark.parametrize("where", ["weights", "bias"])
def test_a_lowering_that_shifts_codes_keeping_the_zeros_is_a_compile_error(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    honest = context.layer_codes

    def shifted(
        name: str, weight: np.ndarray, bias: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        codebook, codes = honest(name, weight, bias)
        part = codes[:, :-1] if where == "weights" else codes[:, -1:]
        moved = part != 0  # a lowering bug: each non-zero code points at the next centroid
        part[moved] = part[moved] % (codebook.size - 1) + 1
        return codebook, codes

    monkeypatch.setattr(context, "layer_codes", shifted)
    with pytest.raises(CompileError) as caught:
        compile_model(mlp([6, 4, 3], seed=1), CompileOptions.of(pes=2, sparsity=0.5, bits=4))
    message = str(caught.value)
    assert message.startswith(
        "layer fc0: the program's layer does not decode to the compressed weights: "
    ), message
    assert "weights differ beyond the codebook's rounding" in message


def test_the_report_counts_the_non_zero_weights_the_layers_store() -> None:
    result = compile_model(mlp([9, 7, 5], seed=3), CompileOptions.of(pes=4, sparsity=0.6, bits=3))
    for row in result.report.layers:
        layer = result.program.layers[row.name]
        codes = csc.decode(layer.ptr, layer.v, layer.z, layer.rows) != 0
        inputs = row.shape[1]
        assert row.nonzero_weights == np.count_nonzero(codes[:, :inputs]) > 0
        assert stored_nonzeros(layer, layer.cols) == np.count_nonzero(codes)
