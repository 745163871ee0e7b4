"""Gradients TVM 0.27 does not register, for the ops of eiec's imported LSTM functions.

``relax.strided_slice`` (one axis, stride 1: the gradient is the output gradient padded with
zeros along that axis), ``relax.squeeze`` (reshape back) and ``relax.stack`` (split and
squeeze). Registered once, on :func:`register`, at a priority below any TVM registers itself,
so a future TVM's own gradients win.
"""

from __future__ import annotations

from tvm import relax
from tvm.relax.op.base import register_gradient

from eiec.errors import CompileError

_LEVEL = 1  # below TVM's default level 10: TVM's own registration, if any, takes precedence
_registered = False


def _static(ty: relax.TensorType) -> list[int]:
    return [int(dim) for dim in ty.shape.values]


def _ints(expr: relax.Expr) -> list[int]:
    """The integers of a tuple (or shape) argument."""
    items = expr.fields if isinstance(expr, relax.Tuple) else expr.values
    return [int(getattr(item, "value", item)) for item in items]


def _strided_slice_grad(
    orig_var: relax.Var, orig_call: relax.Call, output_grad: relax.Var, ctx: relax.BlockBuilder
) -> list[relax.Expr]:
    """``y = strided_slice(x, [axis], [begin], [end])``: dx is dy between zeros along axis."""
    axes, begins = _ints(orig_call.args[1]), _ints(orig_call.args[2])
    strides = _ints(orig_call.args[4]) if len(orig_call.args) > 4 else [1]
    if len(axes) != 1 or any(s != 1 for s in strides):
        raise CompileError(
            "training needs the gradient of a strided_slice over several axes or with a "
            f"stride (axes {axes}, strides {strides}); eiec registers only one-axis, unit-stride "
            "slices",
            fix="train a model whose slices take one contiguous range of one axis",
        )
    shape = _static(orig_call.args[0].ty)
    out = _static(orig_var.ty)
    axis = axes[0] % len(shape)
    begin = begins[0] if begins[0] >= 0 else begins[0] + shape[axis]
    parts: list[relax.Expr] = []
    dtype = orig_var.ty.dtype
    if begin > 0:
        parts.append(relax.op.zeros([*shape[:axis], begin, *shape[axis + 1 :]], dtype))
    parts.append(output_grad)
    after = shape[axis] - begin - out[axis]
    if after > 0:
        parts.append(relax.op.zeros([*shape[:axis], after, *shape[axis + 1 :]], dtype))
    grad = parts[0] if len(parts) == 1 else relax.op.concat(parts, axis)
    return [grad, *(relax.op.grad.no_grad(arg) for arg in orig_call.args[1:])]


def _squeeze_grad(
    orig_var: relax.Var, orig_call: relax.Call, output_grad: relax.Var, ctx: relax.BlockBuilder
) -> list[relax.Expr]:
    """``y = squeeze(x)``: dx = reshape(dy, x.shape)."""
    return [relax.op.reshape(output_grad, _static(orig_call.args[0].ty))]


def _stack_grad(
    orig_var: relax.Var, orig_call: relax.Call, output_grad: relax.Var, ctx: relax.BlockBuilder
) -> list[relax.Expr]:
    """``y = stack((x0, ..., xn), axis)``: dxi = squeeze(split(dy, n, axis)[i], axis)."""
    axis = int(orig_call.attrs.axis)
    count = len(orig_call.args[0].ty.fields)
    if count == 1:
        return [relax.Tuple([relax.op.squeeze(output_grad, [axis])])]
    parts = ctx.emit(relax.op.split(output_grad, count, axis))
    return [
        relax.Tuple([relax.op.squeeze(relax.TupleGetItem(parts, i), [axis]) for i in range(count)])
    ]


def register() -> None:
    """Register the gradients (idempotent)."""
    global _registered
    if _registered:
        return
    for name, function in (
        ("relax.strided_slice", _strided_slice_grad),
        ("relax.squeeze", _squeeze_grad),
        ("relax.stack", _stack_grad),
    ):
        register_gradient(name, function, level=_LEVEL)
    _registered = True
