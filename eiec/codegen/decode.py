"""A program's weights decoded back into the model: the compressed model as EIE stores it.

Each program layer stores codes (``.pe`` entries) into a codebook of 16-bit words. Decoding
(codebook value of each code, per row and column) gives the layer's matrix, whose last column
is the bias when the layer has one: for an FC layer ``[W.T | b]``, for a recurrent layer's
direction the matrix of :func:`eiec.codegen.lstm.direction_matrix` (LSTM: rows ``g * Hp + u``
of ``[W | R | Wb + Rb]``), which :func:`eiec.codegen.lstm.model_matrix` reads back.
:func:`decoded_module` puts these values into a Relax module's layers, so the module computes
what the program computes, in floating point; :func:`check_decodes_to` is the compiler's check
that a lowering stored the compressed weights it was given.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm.relax.expr_functor import mutator

from eiec.codegen.lstm import direction_matrix, model_matrix, padded_rows, row_groups
from eiec.errors import CompileError
from eiec.isa import csc
from eiec.isa.fixed import dequantize
from eiec.isa.program import Layer, Program
from eiec.relax_layers.exprs import transposed
from eiec.relax_layers.fc import LayerConstantRewriter, find_fc_layers, rewrite_layers
from eiec.relax_layers.lstm import (
    direction_suffixes,
    find_recurrent_layers,
    rewrite_recurrent_layers,
    split_weights,
)


@mutator
class _DecodedRewriter(LayerConstantRewriter):
    """Puts decoded weights into FC layers."""


def decode_layer(layer: Layer) -> np.ndarray:
    """The real M x K matrix a program layer stores (its codebook's values at its codes)."""
    codes = csc.decode(layer.ptr, layer.v, layer.z, layer.rows)
    return dequantize(layer.codebook.values, layer.codebook.frac)[codes]


def _fc_constants(
    program: Program, module: tvm.IRModule
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    constants = {}
    for fc in find_fc_layers(module["main"]):
        layer = program.layers.get(fc.name)
        if layer is None:
            continue
        matrix = decode_layer(layer)
        bias = matrix[:, fc.cols] if layer.cols == fc.cols + 1 else None
        constants[fc.name] = (matrix[:, : fc.cols].T, bias)
    return constants


def _lstm_constants(program: Program, module: tvm.IRModule) -> dict[str, tuple[np.ndarray, ...]]:
    constants = {}
    for lstm in find_recurrent_layers(module):
        names = [lstm.name + suffix for suffix in direction_suffixes(lstm.directions)]
        if not all(name in program.layers for name in names):
            continue
        weights, biases = zip(
            *(model_matrix(lstm, decode_layer(program.layers[name])) for name in names),
            strict=True,
        )
        constants[lstm.name] = split_weights(lstm, np.stack(weights), np.stack(biases))
    return constants


def decoded_module(program: Program, module: tvm.IRModule) -> tvm.IRModule:
    """A copy of ``module`` whose FC and recurrent layers hold ``program``'s decoded weights (layers
    matched by name; a layer the program does not have keeps its weights)."""
    decoded = rewrite_layers(module, _fc_constants(program, module), _DecodedRewriter)
    return rewrite_recurrent_layers(decoded, _lstm_constants(program, module))


def missing_layers(program: Program, module: tvm.IRModule) -> list[str]:
    """Layers of ``module`` that ``program`` has no layer for (by name)."""
    names = [fc.name for fc in find_fc_layers(module["main"])]
    for lstm in find_recurrent_layers(module):
        names += [lstm.name + suffix for suffix in direction_suffixes(lstm.directions)]
    return [name for name in names if name not in program.layers]


def check_decodes_to(program: Program, module: tvm.IRModule) -> None:
    """CompileError unless every layer of ``program`` decodes to ``module``'s compressed weights,
    within its codebook's rounding (half an LSB of the codebook's format)."""
    for fc in find_fc_layers(module["main"]):
        if fc.name in program.layers:
            layer, bias = program.layers[fc.name], fc.bias_vector()
            if not _fc_decodes_to(layer, fc.weight, bias):
                want = (
                    fc.weight.T if bias is None else np.concatenate([fc.weight.T, bias[:, None]], 1)
                )
                _compare(fc.name, layer, decode_layer(layer), want)
    for lstm in find_recurrent_layers(module):
        weights, bias = lstm.weights(), lstm.bias()
        for d, suffix in enumerate(direction_suffixes(lstm.directions)):
            layer = program.layers.get(lstm.name + suffix)
            if layer is not None:
                groups = row_groups(lstm)
                rows = padded_rows(groups, lstm.hidden_size, layer.rows // groups)
                want = direction_matrix(lstm, weights[d], bias[d], layer.rows // groups)
                _compare(layer.name, layer, decode_layer(layer)[rows], want[rows])


def _fc_decodes_to(layer: Layer, weight: np.ndarray, bias: np.ndarray | None) -> bool:
    """Whether an FC layer stores ``[weight.T | bias]`` (``weight``: K x M) within
    :func:`_compare`'s tolerance, computed on the codes and the non-zeros only, in the weight's
    own (K, M) order; False sends the caller to :func:`_compare` for the message."""
    cols, rows = weight.shape
    if (layer.rows, layer.cols) != (rows, cols + (bias is not None)):
        return False
    codes = csc.decode(layer.ptr, layer.v, layer.z, layer.rows)
    table = dequantize(layer.codebook.values, layer.codebook.frac)
    rounding = 2.0 ** -(layer.codebook.frac + 1)
    # Where the stored and the model's values are both zero the two agree; elsewhere
    # the same test as _compare's, on those entries only.
    by_column = transposed(codes[:, :cols])
    zero = np.flatnonzero(table == 0)  # entry 0, and any centroid that rounds to 0
    stored_nonzero = by_column != 0 if zero.tolist() == [0] else ~np.isin(by_column, zero)
    if not np.array_equal(stored_nonzero, weight != 0):
        return False
    where = np.flatnonzero(stored_nonzero)
    pairs = [(table[by_column.ravel()[where]], weight.ravel()[where])]
    if bias is not None:
        pairs.append((table[codes[:, cols]], bias))
    for got, want in pairs:
        want = np.asarray(want, dtype=np.float64)
        slack = rounding * (1 + 1e-6) + np.abs(want) * 2.0**-23
        if ((np.abs(got - want) > slack) | ((got == 0) != (want == 0))).any():
            return False
    return True


def _compare(name: str, layer: Layer, got: np.ndarray, want: np.ndarray) -> None:
    want = np.asarray(want, dtype=np.float64)
    rounding = 2.0 ** -(layer.codebook.frac + 1)
    slack = rounding * (1 + 1e-6) + np.abs(want) * 2.0**-23
    # Values below the codebook's step are already 0 in the model (ShareWeights' fit_word_format).
    dropped = (got == 0) != (want == 0)
    wrong = (np.abs(got - want) > slack) | dropped
    if got.shape != want.shape or wrong.any():
        if got.shape != want.shape:
            detail = f"it stores {list(got.shape)} values, the model's layer has {list(want.shape)}"
        else:
            row, col = (int(i) for i in np.argwhere(wrong)[0])
            detail = (
                f"{int(wrong.sum())} of {wrong.size} weights differ beyond the codebook's "
                f"rounding ({rounding:.3g}), first at row {row}, column {col}: "
                f"{got[row, col]:.6g} in the program, {want[row, col]:.6g} in the model"
            )
        raise CompileError(
            f"the program's layer does not decode to the compressed weights: {detail}",
            where=f"layer {name}",
            fix="this is a bug in eiec's lowering; please report it with the model",
        )
