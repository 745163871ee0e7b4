"""Small facts about Relax expressions that the front end, the passes, the code generator and
BYOC all read: constants (made and read) and their transposes, shapes, operator names, a
function's bindings."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import tvm
from tvm import relax


def const(array: np.ndarray) -> relax.Expr:
    """A Relax constant of ``array`` in its own dtype (``relax.const`` makes float64 float32)."""
    return relax.const(array, str(array.dtype))


def constant_value(expr: relax.Expr) -> np.ndarray | None:
    """The numpy value of a Relax constant, or None when ``expr`` is not a constant."""
    if isinstance(expr, tvm.ir.GenericConst):
        return expr.value.numpy()
    return None


def constant_view(expr: relax.Expr) -> np.ndarray | None:
    """A read-only numpy view of a Relax constant's memory (no copy), or None when ``expr`` is
    not a constant."""
    if not isinstance(expr, tvm.ir.GenericConst):
        return None
    view = np.from_dlpack(expr.value)
    view.flags.writeable = False
    return view


#: Rows of the source copied at a time by :func:`transposed` (a block's columns stay in cache).
_BLOCK_ROWS = 256


def transposed(source: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A C-ordered copy of the 2-D ``source``'s transpose (into ``out`` when given), copied a
    block of rows at a time: numpy's whole-array transposed copy is four to five times slower
    on a weight of AlexNet's size, whose columns do not stay in cache."""
    rows = source.shape[0]
    result = np.empty(source.shape[::-1], source.dtype) if out is None else out
    for start in range(0, rows, _BLOCK_ROWS):
        result[:, start : start + _BLOCK_ROWS] = source[start : start + _BLOCK_ROWS].T
    return result


def static_shape(expr: relax.Expr) -> tuple[int, ...] | None:
    """The shape of a tensor-typed expression if every dimension is a constant, else None."""
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return None
    dims = []
    for dim in ty.shape.values:
        if not isinstance(dim, tvm.tirx.IntImm):
            return None
        dims.append(int(dim.value))
    return tuple(dims)


def constant_shape(expr: relax.Expr) -> tuple[int, ...] | None:
    """The shape of a Relax constant (without copying its value), or None."""
    if isinstance(expr, tvm.ir.GenericConst):
        return tuple(int(d) for d in expr.value.shape)
    return None


def op_name(expr: relax.Expr) -> str | None:
    """``relax.matmul`` etc. for a call of a Relax operator, else None."""
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        return str(expr.op.name)
    return None


def bindings(func: relax.Function) -> list[relax.VarBinding]:
    """The function's variable bindings, in order."""
    body = func.body
    result = []
    for block in body.blocks:
        result.extend(b for b in block.bindings if isinstance(b, relax.VarBinding))
    return result


def substitute(
    expr: relax.Expr,
    env: Mapping[relax.Var, relax.Expr],
    leaf: Callable[[relax.Expr], relax.Expr] | None = None,
) -> relax.Expr:
    """``expr`` with the variables of ``env`` replaced, through tuples, tuple items and calls;
    any other expression (constants, shapes, prim values, global functions) goes through
    ``leaf``, by default unchanged."""
    if isinstance(expr, relax.Var):
        return env.get(expr, expr)
    if isinstance(expr, relax.Tuple):
        return relax.Tuple([substitute(f, env, leaf) for f in expr.fields])
    if isinstance(expr, relax.TupleGetItem):
        return relax.TupleGetItem(substitute(expr.tuple_value, env, leaf), expr.index)
    if isinstance(expr, relax.Call):
        args = [substitute(a, env, leaf) for a in expr.args]
        return relax.Call(expr.op, args, expr.attrs, expr.ty_args)
    return expr if leaf is None else leaf(expr)
