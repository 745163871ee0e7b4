"""The LSTM layers of a Relax module: the imported LSTM function's contract, matching its calls,
and the rewrite of their constants.

The front end (:mod:`eiec.frontend.lstm_converter`) makes every ONNX LSTM node a private Relax
function with the attributes below (``eiec.op = "lstm"``...) and one call of it in ``main``.
An LSTM layer is a binding ``NAME = lstm_fn(X, W, R, B, initial_h, initial_c)`` in ``main``
calling such a function, with constant W, R and B. EIE computes all four gates of one direction
as one sparse MxV over ``[x_t; h_{t-1}; 1]``, so the layer's matrix of direction d is
``[W[d] | R[d] | Wb[d] + Rb[d]]`` (4H x (I + H + 1), ONNX gate order i, o, f, c); compression
works on W and R together and on the combined bias (written back as ``B = [Wb + Rb; 0]``, the
same function).
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

#: Function attribute keys of an imported LSTM function.
ATTR_OP = "eiec.op"
ATTR_ONNX_NODE = "eiec.onnx_node"
ATTR_HIDDEN_SIZE = "eiec.hidden_size"
ATTR_DIRECTION = "eiec.direction"
LSTM_OP = "lstm"

#: LSTM direction -> number of directions it runs.
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


@dataclass(frozen=True)
class LstmCall:
    """One imported LSTM layer: a call of an ``eiec.op = "lstm"`` function.

    Arrays are the call's constant arguments in ONNX layout (None when an argument is not a
    constant, e.g. a runtime initial state).
    """

    function: str
    onnx_node: str
    hidden_size: int
    direction: str
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


def lstm_function(mod: tvm.IRModule, callee: relax.Expr) -> relax.Function | None:
    """The imported LSTM function ``callee`` names in ``mod``, or None."""
    if not isinstance(callee, relax.GlobalVar) or callee not in mod.get_global_vars():
        return None
    func = mod[callee]
    attrs = func.attrs
    if not isinstance(func, relax.Function) or attrs is None or ATTR_OP not in attrs:
        return None
    return func if str(attrs[ATTR_OP]) == LSTM_OP else None


def match_lstm_call(mod: tvm.IRModule, expr: relax.Expr) -> LstmCall | None:
    """Describe ``expr`` if it is a call of an imported LSTM function, else None."""
    if not isinstance(expr, relax.Call):
        return None
    func = lstm_function(mod, expr.op)
    if func is None:
        return None
    _, w, r, b, h0, c0 = (constant_value(arg) for arg in expr.args)
    return LstmCall(
        function=expr.op.name_hint,
        onnx_node=str(func.attrs[ATTR_ONNX_NODE]),
        hidden_size=int(func.attrs[ATTR_HIDDEN_SIZE]),
        direction=str(func.attrs[ATTR_DIRECTION]),
        call=expr,
        w=w,
        r=r,
        b=b,
        initial_h=h0,
        initial_c=c0,
    )


@dataclass(frozen=True)
class LstmLayer:
    """One LSTM layer of ``main`` (see the module docstring); arrays in ONNX layout."""

    name: str
    var: relax.Var
    call: LstmCall
    w: np.ndarray
    r: np.ndarray
    b: np.ndarray

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
        """``[W | R]`` of every direction, shape (D, 4H, I + H)."""
        return np.concatenate([self.w, self.r], axis=2)

    def bias(self) -> np.ndarray:
        """``Wb + Rb`` of every direction, shape (D, 4H)."""
        hidden = 4 * self.hidden_size
        return self.b[:, :hidden] + self.b[:, hidden:]


def direction_suffixes(directions: int) -> tuple[str, ...]:
    """Suffixes of the program layers of an LSTM layer's directions (one layer each)."""
    return ("",) if directions == 1 else (".forward", ".backward")


def layer_name(onnx_node: str) -> str:
    """The program name of an LSTM node: PyTorch's ``/lstm/LSTM`` is ``lstm``."""
    parts = [p for p in onnx_node.split("/") if p]
    if len(parts) > 1 and parts[-1].split("_")[0] == "LSTM":
        parts = parts[:-1]
    return identifier("/".join(parts), "lstm") if parts else "lstm"


def find_lstm_layers(mod: tvm.IRModule) -> list[LstmLayer]:
    """The LSTM layers of ``mod["main"]`` in binding order, named uniquely (also against the FC
    layers' names). Raises UnsupportedModelError when W, R or B is not a constant."""
    names = {layer.name for layer in find_fc_layers(mod["main"])}
    layers = []
    for binding in bindings(mod["main"]):
        call = match_lstm_call(mod, binding.value)
        if call is None:
            continue
        missing = [label for label, v in (("W", call.w), ("R", call.r), ("B", call.b)) if v is None]
        if missing:
            raise UnsupportedModelError(
                f"input {', '.join(missing)} is not a constant",
                where=f"ONNX node '{call.onnx_node}' (LSTM)",
                fix="EIE stores an LSTM's weights and bias as constants (initialisers)",
            )
        base = layer_name(call.onnx_node)
        name, suffix = base, 2
        while name in names:
            name, suffix = f"{base}_{suffix}", suffix + 1
        names.add(name)
        layers.append(LstmLayer(name, binding.var, call, call.w, call.r, call.b))
    return layers


def lstm_aliases(layers: list[LstmLayer]) -> dict[str, str]:
    """Names a user may give for each LSTM layer (layer name, ONNX node name) -> layer name."""
    aliases = {}
    for layer in layers:
        aliases[layer.call.onnx_node] = layer.name
        aliases[layer.name] = layer.name
    return aliases


@mutator
class _LstmConstantRewriter(PyExprMutator):
    """Replaces W, R and B of the LSTM calls bound to the given vars."""

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


def rewrite_lstm_layers(
    mod: tvm.IRModule, new: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> tvm.IRModule:
    """A copy of ``mod`` whose LSTM layers (by name) have the given (W, R, B) constants."""
    constants = {}
    for layer in find_lstm_layers(mod):
        if layer.name in new:
            w, r, b = new[layer.name]
            dtype = layer.w.dtype
            constants[layer.var] = (w.astype(dtype), r.astype(dtype), b.astype(dtype))
    result = mod.clone()
    result["main"] = _LstmConstantRewriter(mod, constants).visit_expr(mod["main"])
    return result


def split_weights(
    layer: LstmLayer, weights: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, ...]:
    """(W, R, B) of ``layer`` from ``[W | R]`` (D, 4H, I + H) and ``Wb + Rb`` (D, 4H)."""
    inputs = layer.input_size
    b = np.concatenate([bias, np.zeros_like(bias)], axis=1)
    return weights[:, :, :inputs], weights[:, :, inputs:], b
