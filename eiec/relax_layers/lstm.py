"""The recurrent layers (LSTM and GRU) of a Relax module: the imported functions' contract,
matching their calls, and the rewrite of their constants.

The front end (:mod:`eiec.frontend.lstm_converter`) makes every ONNX LSTM or GRU node a private
Relax function with the attributes below (``eiec.op = "lstm"`` or ``"gru"``...) and one call of
it in ``main``. A recurrent layer is a binding ``NAME = fn(X, W, R, B, initial_h[, initial_c])``
in ``main`` calling such a function, with constant W, R and B (ONNX layouts: G gates per unit,
LSTM G = 4 in order i, o, f, c; GRU G = 3 in order z, r, h).

EIE computes a direction's gates as sparse MxV over ``[x_t; h_{t-1}; 1]``, the ``#1`` column
holding the layer's EIE bias, :meth:`RecurrentLayer.bias`: where ONNX adds Wb and Rb, EIE stores
their sum. LSTM: ``Wb + Rb`` (D, 4H). GRU with ``linear_before_reset = 0``: ``Wb + Rb`` (D, 3H)
(h~ = tanh(W_h x + R_h (r * h) + Wb_h + Rb_h)). GRU with ``linear_before_reset = 1``: h~ =
tanh(W_h x + Wb_h + r * (R_h h + Rb_h)) keeps Rb_h apart, so the bias is (D, 4H):
``[Wb_z + Rb_z, Wb_r + Rb_r, Wb_h, Rb_h]``. Compression works on ``[W | R]`` and that bias,
written back as the B that computes the same function (:meth:`RecurrentLayer.onnx_bias`: the
sums in Wb, zeros in Rb, Rb_h of ``linear_before_reset = 1`` in Rb).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from eiec.errors import UnsupportedModelError
from eiec.relax_layers.exprs import bindings, const, constant_value
from eiec.relax_layers.fc import find_fc_layers
from eiec.relax_layers.names import identifier

#: Function attribute keys of an imported recurrent function.
ATTR_OP = "eiec.op"
ATTR_ONNX_NODE = "eiec.onnx_node"
ATTR_HIDDEN_SIZE = "eiec.hidden_size"
ATTR_DIRECTION = "eiec.direction"
#: GRU only: the node's ``linear_before_reset`` (0 or 1).
ATTR_LINEAR_BEFORE_RESET = "eiec.linear_before_reset"
LSTM_OP = "lstm"
GRU_OP = "gru"

#: ``eiec.op`` of a recurrent function -> (its ONNX op type, gates per hidden unit).
RECURRENT_OPS = {LSTM_OP: ("LSTM", 4), GRU_OP: ("GRU", 3)}

#: Direction -> number of directions it runs.
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


@dataclass(frozen=True)
class RecurrentCall:
    """One imported recurrent layer: a call of an ``eiec.op = "lstm"`` or ``"gru"`` function.

    Arrays are the call's constant arguments in ONNX layout (None when an argument is not a
    constant, e.g. a runtime initial state; ``initial_c`` is None for a GRU).
    """

    op: str
    function: str
    onnx_node: str
    hidden_size: int
    direction: str
    linear_before_reset: bool
    call: relax.Call
    w: np.ndarray | None
    r: np.ndarray | None
    b: np.ndarray | None
    initial_h: np.ndarray | None
    initial_c: np.ndarray | None

    @property
    def directions(self) -> int:
        """1 for forward / reverse, 2 for bidirectional."""
        return DIRECTIONS[self.direction]

    @property
    def onnx_op(self) -> str:
        """``LSTM`` or ``GRU``."""
        return RECURRENT_OPS[self.op][0]

    @property
    def where(self) -> str:
        """How messages name the node: ``ONNX node 'NAME' (GRU)``."""
        return f"ONNX node '{self.onnx_node}' ({self.onnx_op})"


def recurrent_function(mod: tvm.IRModule, callee: relax.Expr) -> relax.Function | None:
    """The imported LSTM or GRU function ``callee`` names in ``mod``, or None."""
    if not isinstance(callee, relax.GlobalVar) or callee not in mod.get_global_vars():
        return None
    func = mod[callee]
    attrs = func.attrs
    if not isinstance(func, relax.Function) or attrs is None or ATTR_OP not in attrs:
        return None
    return func if str(attrs[ATTR_OP]) in RECURRENT_OPS else None


def match_recurrent_call(mod: tvm.IRModule, expr: relax.Expr) -> RecurrentCall | None:
    """Describe ``expr`` if it is a call of an imported LSTM or GRU function, else None."""
    if not isinstance(expr, relax.Call):
        return None
    func = recurrent_function(mod, expr.op)
    if func is None:
        return None
    values = [constant_value(arg) for arg in expr.args]
    _, w, r, b, h0 = values[:5]
    attrs = func.attrs
    return RecurrentCall(
        op=str(attrs[ATTR_OP]),
        function=expr.op.name_hint,
        onnx_node=str(attrs[ATTR_ONNX_NODE]),
        hidden_size=int(attrs[ATTR_HIDDEN_SIZE]),
        direction=str(attrs[ATTR_DIRECTION]),
        linear_before_reset=bool(int(attrs.get(ATTR_LINEAR_BEFORE_RESET, 0))),
        call=expr,
        w=w,
        r=r,
        b=b,
        initial_h=h0,
        initial_c=values[5] if len(values) > 5 else None,
    )


def bias_indices(op: str, hidden: int, linear_before_reset: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(fold, unfold)``: where the EIE bias (module docstring) and ONNX's B (D, 2GH) take their
    values from each other, a last extra index standing for zero. ``fold`` (2, n):
    ``bias = Bz[:, fold[0]] + Bz[:, fold[1]]`` with ``Bz = [B | 0]`` (Wb + Rb); ``unfold``
    (2GH,): ``B = [bias | 0][:, unfold]`` (the sums in Wb, zeros in Rb, but Rb_h of a GRU with
    ``linear_before_reset = 1``)."""
    rows = RECURRENT_OPS[op][1] * hidden
    wb, rb = np.arange(rows), rows + np.arange(rows)
    separate = op == GRU_OP and linear_before_reset
    zero = rows + hidden if separate else rows  # the zero column of [bias | 0]
    unfold = np.concatenate([np.arange(rows), np.full(rows, zero)])
    if separate:
        rb_h = rb[2 * hidden :]
        rb = np.concatenate([rb[: 2 * hidden], np.full(hidden, 2 * rows)])  # Wb_h alone ...
        wb = np.concatenate([wb, np.full(hidden, 2 * rows)])
        rb = np.concatenate([rb, rb_h])  # ... and Rb_h a fourth block
        unfold[rb_h] = rows + np.arange(hidden)
    return np.stack([wb, rb]), unfold


@dataclass(frozen=True)
class RecurrentLayer:
    """One LSTM or GRU layer of ``main`` (see the module docstring); arrays in ONNX layout."""

    name: str
    var: relax.Var
    call: RecurrentCall
    w: np.ndarray
    r: np.ndarray
    b: np.ndarray

    @property
    def op(self) -> str:
        """``lstm`` or ``gru``."""
        return self.call.op

    @property
    def gates(self) -> int:
        """Gates per hidden unit: 4 (LSTM) or 3 (GRU)."""
        return RECURRENT_OPS[self.op][1]

    @property
    def hidden_size(self) -> int:
        """H."""
        return self.call.hidden_size

    @property
    def directions(self) -> int:
        """1 or 2."""
        return self.call.directions

    @property
    def input_size(self) -> int:
        """I."""
        return int(self.w.shape[2])

    @property
    def seq_length(self) -> int:
        """T (static)."""
        return int(self.call.call.args[0].ty.shape[0])

    @property
    def batch(self) -> int:
        """Batch size of X (static)."""
        return int(self.call.call.args[0].ty.shape[1])

    def weights(self) -> np.ndarray:
        """``[W | R]`` of every direction, shape (D, GH, I + H)."""
        return np.concatenate([self.w, self.r], axis=2)

    def bias_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """This layer's :func:`bias_indices`."""
        return bias_indices(self.op, self.hidden_size, self.call.linear_before_reset)

    def bias(self) -> np.ndarray:
        """The EIE bias of every direction (module docstring): (D, GH), or (D, 4H) for a GRU
        with ``linear_before_reset = 1``."""
        fold, _ = self.bias_indices()
        padded = _with_zero_column(self.b)
        return padded[:, fold[0]] + padded[:, fold[1]]

    def onnx_bias(self, bias: np.ndarray) -> np.ndarray:
        """The B (D, 2GH) computing as the EIE bias ``bias`` (in ``bias``'s dtype)."""
        return _with_zero_column(bias)[:, self.bias_indices()[1]]


def _with_zero_column(array: np.ndarray) -> np.ndarray:
    return np.concatenate([array, np.zeros((array.shape[0], 1), array.dtype)], axis=1)


def direction_suffixes(directions: int) -> tuple[str, ...]:
    """Suffixes of the program layers of a recurrent layer's directions (one layer each)."""
    return ("",) if directions == 1 else (".forward", ".backward")


def layer_name(onnx_node: str, onnx_op: str = "LSTM") -> str:
    """The program name of a recurrent node: PyTorch's ``/lstm/LSTM`` is ``lstm``, ``/gru/GRU``
    is ``gru``."""
    parts = [p for p in onnx_node.split("/") if p]
    if len(parts) > 1 and parts[-1].split("_")[0] == onnx_op:
        parts = parts[:-1]
    fallback = onnx_op.lower()
    return identifier("/".join(parts), fallback) if parts else fallback


def find_recurrent_layers(mod: tvm.IRModule) -> list[RecurrentLayer]:
    """The LSTM and GRU layers of ``mod["main"]`` in binding order, named uniquely (also against
    the FC layers' names). Raises UnsupportedModelError when W, R or B is not a constant."""
    names = {layer.name for layer in find_fc_layers(mod["main"])}
    layers = []
    for binding in bindings(mod["main"]):
        call = match_recurrent_call(mod, binding.value)
        if call is None:
            continue
        missing = [label for label, v in (("W", call.w), ("R", call.r), ("B", call.b)) if v is None]
        if missing:
            raise UnsupportedModelError(
                f"input {', '.join(missing)} is not a constant",
                where=call.where,
                fix=f"EIE stores a {call.onnx_op}'s weights and bias as constants (initialisers)",
            )
        base = layer_name(call.onnx_node, call.onnx_op)
        name, suffix = base, 2
        while name in names:
            name, suffix = f"{base}_{suffix}", suffix + 1
        names.add(name)
        layers.append(RecurrentLayer(name, binding.var, call, call.w, call.r, call.b))
    return layers


def recurrent_aliases(layers: list[RecurrentLayer]) -> dict[str, str]:
    """Names a user may give for each recurrent layer (layer name, ONNX node name) -> layer
    name."""
    aliases = {}
    for layer in layers:
        aliases[layer.call.onnx_node] = layer.name
        aliases[layer.name] = layer.name
    return aliases


@mutator
class _RecurrentConstantRewriter(PyExprMutator):
    """Replaces W, R and B of the recurrent calls bound to the given vars."""

    def __init__(
        self, mod: tvm.IRModule, constants: dict[relax.Var, tuple[np.ndarray, ...]]
    ) -> None:
        super().__init__(mod)
        self.constants = constants

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        if binding.var in self.constants:
            call = binding.value
            args = list(call.args)
            for index, array in enumerate(self.constants[binding.var], start=1):
                args[index] = const(array)
            binding = relax.VarBinding(binding.var, relax.Call(call.op, args, call.attrs))
        super().visit_var_binding_(binding)


def rewrite_recurrent_layers(
    mod: tvm.IRModule, new: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> tvm.IRModule:
    """A copy of ``mod`` whose recurrent layers (by name) have the given (W, R, B) constants."""
    constants = {}
    for layer in find_recurrent_layers(mod):
        if layer.name in new:
            w, r, b = new[layer.name]
            dtype = layer.w.dtype
            constants[layer.var] = (w.astype(dtype), r.astype(dtype), b.astype(dtype))
    result = mod.clone()
    result["main"] = _RecurrentConstantRewriter(mod, constants).visit_expr(mod["main"])
    return result


def split_weights(
    layer: RecurrentLayer, weights: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, ...]:
    """(W, R, B) of ``layer`` from ``[W | R]`` (D, GH, I + H) and its EIE bias
    (:meth:`RecurrentLayer.bias`'s shape)."""
    inputs = layer.input_size
    return weights[:, :, :inputs], weights[:, :, inputs:], layer.onnx_bias(bias)
