"""The FC layers of a Relax function, and the mutator that replaces their constants.

A layer is a binding ``NAME = matmul(x, W)`` with ``W`` a constant of shape (K, M) (inputs by
outputs, as Relax computes ``x @ W``), optionally followed by the binding
``add(NAME, b)`` / ``add(b, NAME)`` with ``b`` a constant broadcastable to (M,), when that add is
the matmul's only use: the bias, stored by EIE as one more column of the same matrix. The
layer's name is the binding's name (the importer names them after the ONNX nodes); unnamed
layers (``lv*``, ``gv*``) get ``fc0``, ``fc1``, ...
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator

from eiec.relax_layers.exprs import (
    bindings,
    const,
    constant_shape,
    constant_value,
    constant_view,
    op_name,
)

_GENERATED = re.compile(r"(lv|gv)\d*\Z")


@dataclass(frozen=True)
class FcLayer:
    """One FC layer of a Relax function (see the module docstring).

    ``weight`` and ``bias`` are the values of the constants ``weight_const`` and ``bias_const``:
    read-only views of the constants' memory (no copy out of TVM).
    """

    name: str
    var: relax.Var
    weight_const: relax.Expr
    bias_var: relax.Var | None
    bias_const: relax.Expr | None

    @cached_property
    def weight(self) -> np.ndarray:
        """W, shape (K, M)."""
        return constant_view(self.weight_const)

    @cached_property
    def bias(self) -> np.ndarray | None:
        """The bias constant as stored (broadcastable to (M,)), or None."""
        return None if self.bias_const is None else constant_view(self.bias_const)

    @property
    def rows(self) -> int:
        """Outputs M (rows of EIE's weight matrix)."""
        return int(self.weight_const.value.shape[1])

    @property
    def cols(self) -> int:
        """Inputs K (columns of EIE's weight matrix, without the bias column)."""
        return int(self.weight_const.value.shape[0])

    def bias_vector(self) -> np.ndarray | None:
        """The bias broadcast to (M,), or None."""
        if self.bias is None:
            return None
        return np.broadcast_to(self.bias, (1, self.rows)).reshape(self.rows)


def find_fc_layers(func: relax.Function) -> list[FcLayer]:
    """The FC layers of ``func``, in binding order, with unique names."""
    all_bindings = bindings(func)
    uses: dict[relax.Var, list[relax.VarBinding]] = {}
    for binding in all_bindings:
        for arg in _var_args(binding.value):
            uses.setdefault(arg, []).append(binding)
    returned = set(_returned_vars(func))
    layers: list[FcLayer] = []
    names: set[str] = set()
    for binding in all_bindings:
        value = binding.value
        if op_name(value) != "relax.matmul":
            continue
        weight = value.args[1]
        shape = constant_shape(weight)
        if shape is None or len(shape) != 2:
            continue
        bias_var, bias = None, None
        consumers = uses.get(binding.var, [])
        if len(consumers) == 1 and binding.var not in returned:
            add = consumers[0]
            if op_name(add.value) == "relax.add":
                other = [a for a in add.value.args if not a.same_as(binding.var)]
                shape_b = constant_shape(other[0]) if len(other) == 1 else None
                if shape_b is not None and _is_bias(shape_b, shape[1]):
                    bias_var, bias = add.var, other[0]
        name = binding.var.name
        if _GENERATED.match(name) or name in names:
            name = f"fc{len(layers)}"
        names.add(name)
        layers.append(FcLayer(name, binding.var, weight, bias_var, bias))
    return layers


def _is_bias(shape: tuple[int, ...], rows: int) -> bool:
    if math.prod(shape) not in (1, rows):
        return False
    return all(d == 1 for d in shape[:-1])


def _var_args(expr: relax.Expr) -> list[relax.Var]:
    if isinstance(expr, relax.Call):
        return [a for a in expr.args if isinstance(a, relax.Var)]
    if isinstance(expr, relax.Tuple):
        return [f for f in expr.fields if isinstance(f, relax.Var)]
    if isinstance(expr, relax.TupleGetItem) and isinstance(expr.tuple_value, relax.Var):
        return [expr.tuple_value]
    if isinstance(expr, relax.Var):
        return [expr]
    return []


def _returned_vars(func: relax.Function) -> list[relax.Var]:
    body = func.body.body
    if isinstance(body, relax.Tuple):
        return [f for f in body.fields if isinstance(f, relax.Var)]
    return [body] if isinstance(body, relax.Var) else []


class LayerConstantRewriter(PyExprMutator):
    """Replaces the weight and bias constants of FC layers (keyed by the layer's binding vars).

    ``weights`` maps a layer's matmul var to its new (K, M) weight, ``biases`` a bias add's var
    to its new bias (same shape as before): arrays (new constants) or Relax expressions (e.g.
    parameters of the function, to feed them at run time). Each pass subclasses it privately
    and decorates the subclass with ``tvm.relax.expr_functor.mutator``.
    """

    def __init__(
        self,
        mod: tvm.IRModule,
        weights: dict[relax.Var, np.ndarray | relax.Expr],
        biases: dict[relax.Var, np.ndarray | relax.Expr],
    ) -> None:
        super().__init__(mod)
        self.weights = weights
        self.biases = biases

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = binding.value
        if binding.var in self.weights:
            value = relax.Call(
                value.op,
                [value.args[0], _expr(self.weights[binding.var])],
                value.attrs,
            )
            binding = relax.VarBinding(binding.var, value)
        elif binding.var in self.biases:
            args = [
                _expr(self.biases[binding.var]) if constant_value(a) is not None else a
                for a in value.args
            ]
            binding = relax.VarBinding(binding.var, relax.Call(value.op, args, value.attrs))
        super().visit_var_binding_(binding)


def _expr(value: np.ndarray | relax.Expr) -> relax.Expr:
    return value if isinstance(value, relax.Expr) else const(value)


def rewrite_layers(
    mod: tvm.IRModule,
    new_constants: dict[str, tuple[np.ndarray, np.ndarray | None]],
    rewriter: type,
) -> tvm.IRModule:
    """A copy of ``mod`` whose layers (by name) have the given (weight, bias) constants.

    ``rewriter`` is a ``mutator``-decorated subclass of :class:`LayerConstantRewriter`.
    """
    func = mod["main"]
    weights: dict[relax.Var, np.ndarray] = {}
    biases: dict[relax.Var, np.ndarray] = {}
    for layer in find_fc_layers(func):
        if layer.name not in new_constants:
            continue
        weight, bias = new_constants[layer.name]
        weights[layer.var] = weight.astype(layer.weight_const.value.dtype, copy=False)
        if layer.bias_var is not None and bias is not None:
            stored = layer.bias_const.value
            biases[layer.bias_var] = bias.astype(stored.dtype, copy=False).reshape(stored.shape)
    new_func = rewriter(mod, weights, biases).visit_expr(func)
    result = mod.clone()
    result["main"] = new_func
    return result
