"""The lowerings of FC layers and of the ops around them (see :mod:`eiec.codegen.context`).

``matmul`` makes a pending layer, the layer's bias ``add`` and ``nn.relu`` fuse into it, and any
other use materialises it. Reshape-like ops (``reshape``, ``permute_dims`` of a vector,
``astype`` to float32) alias the value.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tvm import relax

from eiec.codegen.context import (
    Activation,
    Constant,
    LoweringContext,
    PendingLayer,
    Value,
    shape_of,
)
from eiec.codegen.tables import FUNCTIONS, GATE_VALUE_FRAC, activation_table, relu_table
from eiec.errors import UnsupportedModelError
from eiec.isa.program import EwLut, Table, View
from eiec.relax_layers.exprs import op_name


def lower_matmul(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    """``matmul(x, W)`` of an FC layer: a pending layer over x."""
    layer = ctx.layers.get(binding.var)
    if layer is None:
        raise UnsupportedModelError(
            f"matmul '{binding.var.name}' does not multiply by a constant weight matrix"
        )
    source = ctx.activation(binding.value.args[0])
    if source.size != layer.cols:
        raise UnsupportedModelError(
            f"layer {layer.name}: input of shape {list(source.shape)} is not a vector of "
            f"{layer.cols} elements (batch 1)"
        )
    return PendingLayer(layer, source, shape_of(binding.var))


def lower_add(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    """The bias ``add`` of a pending layer fuses into it."""
    layer = ctx.bias_of.get(binding.var)
    pending = [ctx.value(a) for a in binding.value.args]
    for value in pending:
        if isinstance(value, PendingLayer) and layer is not None and value.layer is layer:
            return replace(value, with_bias=True, shape=shape_of(binding.var))
    raise UnsupportedModelError(
        f"add '{binding.var.name}' is not the bias of a layer (EIE adds constants only as a "
        "bias column)"
    )


def lower_relu(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    """``nn.relu`` fuses into a pending layer's write-back; of any other vector (an LSTM output,
    a time step of one) it is an exact ``ew-lut`` (``eiec.codegen.tables.relu_table``)."""
    value = ctx.value(binding.value.args[0])
    if isinstance(value, PendingLayer) and not value.relu:
        return replace(value, relu=True)
    source = ctx.activation(value)
    frac = ctx.asm.buffers[source.buffer].frac
    samples = None if source.samples is None else np.maximum(source.samples, 0.0)
    return _table_op(ctx, binding, source, relu_table(frac), frac, samples, source.bound)


def lower_sigmoid_tanh(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    """``sigmoid`` / ``tanh`` of a layer's output (written back first) or of any vector: an
    ``ew-lut`` through the LSTM cell's table (``eiec.codegen.tables``) into a buffer of
    ``GATE_VALUE_FRAC`` fraction bits."""
    fn = "sigmoid" if op_name(binding.value) == "relax.sigmoid" else "tanh"
    source = ctx.activation(binding.value.args[0])
    samples = None if source.samples is None else FUNCTIONS[fn](source.samples)
    bound = np.ones_like(source.bound) if fn == "sigmoid" else np.minimum(source.bound, 1.0)
    table = activation_table(fn)
    return _table_op(ctx, binding, source, table, GATE_VALUE_FRAC, samples, bound)


def _table_op(
    ctx: LoweringContext,
    binding: relax.VarBinding,
    source: Activation,
    table: Table,
    frac: int,
    samples: np.ndarray | None,
    bound: np.ndarray,
) -> Activation:
    """``ew-lut`` of ``source`` through ``table`` into a new buffer laid out like it."""
    asm = ctx.asm
    buffer = asm.buffers[source.buffer]
    out = asm.add_buffer(
        f"{buffer.name}.{table.fn}",
        buffer.cols,
        (frac, float(bound.max(initial=0.0)), "table"),
        rows=buffer.rows,
        pitch=buffer.pitch,
    )
    asm.emit(EwLut(View(out.name), View(buffer.name), asm.table_like(table)))
    rms = None if source.rms is None else np.minimum(source.rms, bound)
    return Activation(out.name, shape_of(binding.var), samples, bound, rms)


def lower_alias(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    """Reshape-like ops re-view the value (a transpose only of axes of size 1)."""
    value = ctx.value(binding.value.args[0])
    shape = shape_of(binding.var)
    if isinstance(value, Constant):
        raise UnsupportedModelError(f"'{binding.var.name}' reshapes a constant")
    if op_name(binding.value) == "relax.permute_dims":
        # Moving axes of size 1 keeps the memory order; reordering the others transposes.
        axes = [int(a) for a in binding.value.attrs.axes] if binding.value.attrs.axes else None
        moved = [a for a in axes or range(len(value.shape))[::-1] if value.shape[a] != 1]
        if moved != sorted(moved):
            raise UnsupportedModelError(
                f"permute_dims '{binding.var.name}' transposes a matrix of shape "
                f"{list(value.shape)}"
            )
    return replace(value, shape=shape)


def lower_astype(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    """``astype`` to float32 re-views the value."""
    dtype = str(binding.value.attrs.dtype)
    if dtype != "float32":
        raise UnsupportedModelError(f"astype '{binding.var.name}' to {dtype} (only float32)")
    return lower_alias(ctx, binding)
