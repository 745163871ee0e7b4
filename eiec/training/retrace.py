"""The backbone function re-emitted for training: at the training batch, and in the forms TVM's
gradients accept.

:func:`retrace` re-emits every binding of a function (LSTM functions already inlined) with
new input types, letting Relax infer each value's shape again, with two rewrites:

- **Batch**: the imported function has batch 1 baked in. Given the data inputs at batch B,
  element-wise ops, matmuls, slices, splits, stacks and takes follow by shape inference (a
  batch-1 constant, such as an LSTM's zero initial state, broadcasts). A ``reshape`` to
  constant dimensions keeps the batch where the batch-1 reshape had it: if the input's batch
  axis ``p`` has ``P`` elements before it (the product of the dimensions before ``p``), the
  target's batch axis is its size-1 axis with ``P`` elements before it (the memory order
  puts the batch there). A reshape with no such axis mixes samples: :class:`NotBatchable`.
- **Take**: the gradient of ``take`` (``legalize_ops/grad.py``) accepts only 1-D indices, so a
  ``take`` with scalar or N-D indices (PyTorch's ``y[-1]`` is a Gather with a scalar index)
  becomes a ``take`` of the flattened indices and a ``reshape`` to the original result shape.

:func:`batch_axis` finds where a value's batch went by comparing its shape at batch 1 and B.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tvm
from tvm import relax

from eiec.relax_layers.exprs import bindings, substitute


class NotBatchable(Exception):
    """The function cannot run at the requested batch (the caller falls back to batch 1)."""


def _dims(ty: relax.TensorType) -> list[int]:
    return [int(d) for d in ty.shape.values]


def batch_axis(before: list[int], after: list[int]) -> int | None:
    """The axis whose size went from 1 to the batch (None when no axis changed); NotBatchable
    when the shapes differ otherwise."""
    if len(before) != len(after):
        raise NotBatchable(f"rank changed from {before} to {after}")
    changed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
    if not changed:
        return None
    if len(changed) > 1 or before[changed[0]] != 1:
        raise NotBatchable(f"shape {before} became {after}")
    return changed[0]


def _bindings(func: relax.Function) -> list[relax.VarBinding]:
    """``func``'s bindings (NotBatchable for a ``match_cast``, which fixes a shape)."""
    found = [b for block in func.body.blocks for b in block.bindings]
    if any(not isinstance(b, relax.VarBinding) for b in found):
        raise NotBatchable("a match_cast binding")
    return bindings(func)


def _reshape_target(old_in: list[int], new_in: list[int], target: list[int]) -> list[int]:
    """``target`` (a batch-1 reshape's shape) for the input's new shape (see the module
    docstring)."""
    axis = batch_axis(old_in, new_in)
    if axis is None:
        return target
    before = math.prod(old_in[:axis])
    for k, size in enumerate(target):
        if size == 1 and math.prod(target[:k]) == before:
            return [*target[:k], new_in[axis], *target[k + 1 :]]
    raise NotBatchable(f"reshape of {old_in} to {target} mixes the batch into other axes")


def _take(
    bb: relax.BlockBuilder, call: relax.Call, data: relax.Expr, index: relax.Expr
) -> relax.Expr:
    """``take(data, index)`` with 1-D indices: flattened, then the result reshaped."""
    index_shape = _dims(index.ty)
    if len(index_shape) == 1:
        return relax.op.take(data, index, axis=call.attrs.axis, mode=call.attrs.mode)
    shape = _dims(data.ty)
    axis = int(call.attrs.axis) % len(shape)
    flat = bb.emit(relax.op.reshape(index, [max(1, math.prod(index_shape))]))
    taken = bb.emit(relax.op.take(data, flat, axis=axis, mode=call.attrs.mode))
    return relax.op.reshape(taken, [*shape[:axis], *index_shape, *shape[axis + 1 :]])


def _flat(expr: relax.Expr) -> relax.Expr:
    """A leaf of a flat dataflow function kept as it is (constants, shapes, prim values);
    NotBatchable for a nested function, sequence or branch."""
    if isinstance(expr, (relax.SeqExpr, relax.If, relax.Function)):
        raise NotBatchable(f"a nested {type(expr).__name__}")
    return expr


def retrace(
    func: relax.Function,
    params: list[relax.Var],
    name: str,
    finish: Callable[[relax.BlockBuilder, relax.Expr], relax.Expr] | None = None,
) -> relax.Function:
    """``func`` re-emitted as ``name`` over ``params`` (``func``'s parameters in order, with new
    types for the data inputs), its result passed through ``finish``; see the module
    docstring. NotBatchable when its ops cannot take the new shapes."""
    bb = relax.BlockBuilder()
    env: dict[relax.Var, relax.Expr] = dict(zip(func.params, params, strict=True))

    def sub(expr: relax.Expr) -> relax.Expr:
        return substitute(expr, env, _flat)

    def rewrite(value: relax.Expr) -> relax.Expr:
        if not isinstance(value, relax.Call) or not isinstance(value.op, tvm.ir.Op):
            return sub(value)
        if value.op.name == "relax.take":
            return _take(bb, value, sub(value.args[0]), sub(value.args[1]))
        if value.op.name == "relax.reshape":
            data = sub(value.args[0])
            old = _dims(value.args[0].ty)
            target = _reshape_target(old, _dims(data.ty), _dims(value.ty))
            return relax.op.reshape(data, target)
        return sub(value)

    with bb.function(name, params):
        with bb.dataflow():
            for binding in _bindings(func):
                try:
                    new = rewrite(binding.value)
                    if isinstance(binding.var, relax.DataflowVar):
                        env[binding.var] = bb.emit(new, name_hint=binding.var.name)
                    else:
                        env[binding.var] = bb.emit_output(new, name_hint=binding.var.name)
                except (RuntimeError, ValueError, TypeError) as error:  # shape inference
                    raise NotBatchable(f"{binding.var.name}: {error}") from error
            output = sub(func.body.body)
            if finish is not None:
                try:
                    output = bb.emit_output(finish(bb, output))
                except (RuntimeError, ValueError, TypeError) as error:  # shape inference
                    raise NotBatchable(f"the result: {error}") from error
        bb.emit_func_output(output)
    return bb.get()[name]
