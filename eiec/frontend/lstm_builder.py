"""The private Relax functions computing one ONNX ``LSTM`` or ``GRU`` node (the importer's
output form).

Every ONNX LSTM node becomes one private module-level Relax function and one call of it in
``main``::

    lv = cls.lstm_N(X, W, R, B, initial_h, initial_c)   # -> (Y, Y_h, Y_c)

- ``lstm_N`` is ``"lstm_"`` plus the node name reduced to ``[A-Za-z0-9_]`` (``/lstm/LSTM`` ->
  ``lstm_lstm_LSTM``; deduplicated by the block builder). Its attributes:
  ``eiec.op = "lstm"``, ``eiec.onnx_node`` (the original node name), ``eiec.hidden_size`` (H),
  ``eiec.direction`` (``"forward"``, ``"reverse"`` or ``"bidirectional"``).
- The six arguments always exist and keep ONNX's layouts and gate order (i, o, f, c), with
  D directions, T steps, batch Bt, input size I: ``X [T, Bt, I]``, ``W [D, 4H, I]``,
  ``R [D, 4H, H]``, ``B [D, 8H]`` (``[Wb; Rb]``), ``initial_h`` and ``initial_c [D, Bt, H]``.
  An absent B or initial state is passed as a zero constant; ONNX initialisers are passed as
  Relax constants, so the compiler reads W, R, B (and constant initial states) from the call.
- The result is ``Tuple(Y [T, D, Bt, H], Y_h [D, Bt, H], Y_c [D, Bt, H])``; the frontend binds
  each used ONNX output to a ``TupleGetItem`` of the call.
- The body is the unrolled recurrence in primitive Relax ops, so TVM compiles it for the CPU like
  any other function: per direction, ``XW = X @ W[d]^T + Wb + Rb`` for all steps at once, then per
  step (reverse: from the last step to the first) ``g = XW[t] + h @ R[d]^T``, split into
  i, o, f, c; ``c = sigmoid(f) * c + sigmoid(i) * tanh(c~)``; ``h = sigmoid(o) * tanh(c)``.

A GRU node likewise becomes ``lv = cls.gru_N(X, W, R, B, initial_h)  # -> (Y, Y_h)``, gate order
(z, r, h), ``W [D, 3H, I]``, ``R [D, 3H, H]``, ``B [D, 6H]``, attributes as above plus
``eiec.linear_before_reset`` (0 or 1). Per direction ``XW = X @ W[d]^T + Wb + Rb'`` (Rb' is Rb
without its h block when ``linear_before_reset = 1``), then per step
``z, r = sigmoid(XW[t][z, r] + h @ R[d][z, r]^T)``, ``h~ = tanh(XW[t][h] + (r * h) @ R[d][h]^T)``
(``linear_before_reset = 1``: ``tanh(XW[t][h] + r * (h @ R[d][h]^T + Rb_h))``) and
``h = (1 - z) * h~ + z * h``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tvm import relax

from eiec.relax_layers.lstm import (
    ATTR_DIRECTION,
    ATTR_HIDDEN_SIZE,
    ATTR_LINEAR_BEFORE_RESET,
    ATTR_ONNX_NODE,
    ATTR_OP,
    DIRECTIONS,
    GRU_OP,
    LSTM_OP,
)


def function_name(node_name: str, op: str = LSTM_OP) -> str:
    """``lstm_`` (``gru_``) plus the node name reduced to identifier characters."""
    body = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", node_name)).strip("_")
    return f"{op}_{body}" if body else op


@dataclass(frozen=True)
class RecurrentShape:
    """The static dimensions of one LSTM or GRU node."""

    seq_length: int
    batch: int
    input_size: int
    hidden_size: int
    direction: str
    dtype: str

    @property
    def directions(self) -> int:
        """1 for forward / reverse, 2 for bidirectional."""
        return DIRECTIONS[self.direction]


def _slice(bb: relax.BlockBuilder, x: relax.Expr, axis: int, begin: int, end: int) -> relax.Expr:
    return bb.emit(relax.op.strided_slice(x, axes=[axis], begin=[begin], end=[end]))


def _direction_row(bb: relax.BlockBuilder, x: relax.Expr, d: int) -> relax.Expr:
    """``x[d]`` of a direction-major tensor."""
    return bb.emit(relax.op.squeeze(_slice(bb, x, 0, d, d + 1), axis=[0]))


def _tensor_type(shape: RecurrentShape) -> Callable[..., relax.TensorType]:
    def tensor(*dims: int) -> relax.TensorType:
        return relax.TensorType(dims, shape.dtype)

    return tensor


def _steps(shape: RecurrentShape, d: int) -> range:
    """The time steps of direction ``d`` in the order it runs them."""
    reverse = shape.direction == "reverse" or d == 1
    return range(shape.seq_length - 1, -1, -1) if reverse else range(shape.seq_length)


def build_lstm_function(shape: RecurrentShape, node_name: str) -> relax.Function:
    """The private Relax function computing one LSTM node (see the module docstring)."""
    t_len, batch, hidden, dirs = shape.seq_length, shape.batch, shape.hidden_size, shape.directions
    tensor = _tensor_type(shape)

    params = [
        relax.Var("X", tensor(t_len, batch, shape.input_size)),
        relax.Var("W", tensor(dirs, 4 * hidden, shape.input_size)),
        relax.Var("R", tensor(dirs, 4 * hidden, hidden)),
        relax.Var("B", tensor(dirs, 8 * hidden)),
        relax.Var("initial_h", tensor(dirs, batch, hidden)),
        relax.Var("initial_c", tensor(dirs, batch, hidden)),
    ]
    x, w, r, b, h0, c0 = params
    op = relax.op
    bb = relax.BlockBuilder()
    with bb.function("lstm", params=params, private=True):
        with bb.dataflow():
            ys, hs, cs = [], [], []
            for d in range(dirs):
                w_t = bb.emit(op.permute_dims(_direction_row(bb, w, d), [1, 0]))
                r_t = bb.emit(op.permute_dims(_direction_row(bb, r, d), [1, 0]))
                b_d = _direction_row(bb, b, d)
                bias = bb.emit(
                    op.add(
                        _slice(bb, b_d, 0, 0, 4 * hidden),
                        _slice(bb, b_d, 0, 4 * hidden, 8 * hidden),
                    )
                )
                xw = bb.emit(op.add(op.matmul(x, w_t), bias))
                h, c = _direction_row(bb, h0, d), _direction_row(bb, c0, d)
                outputs: list[relax.Expr | None] = [None] * t_len
                for t in _steps(shape, d):
                    xw_t = bb.emit(op.squeeze(_slice(bb, xw, 0, t, t + 1), axis=[0]))
                    gates = bb.emit(op.add(xw_t, op.matmul(h, r_t)))
                    split = bb.emit(op.split(gates, 4, axis=1))
                    i, o, f, g = (relax.TupleGetItem(split, k) for k in range(4))
                    c = bb.emit(
                        op.add(
                            op.multiply(op.sigmoid(f), c), op.multiply(op.sigmoid(i), op.tanh(g))
                        )
                    )
                    h = bb.emit(op.multiply(op.sigmoid(o), op.tanh(c)))
                    outputs[t] = h
                ys.append(bb.emit(op.stack(outputs, axis=0)))
                hs.append(h)
                cs.append(c)
            y = bb.emit(op.stack(ys, axis=1))
            result = bb.emit_output(
                relax.Tuple([y, bb.emit(op.stack(hs, axis=0)), bb.emit(op.stack(cs, axis=0))])
            )
        bb.emit_func_output(result)
    func = bb.get()["lstm"]
    return func.with_attrs(
        {
            ATTR_OP: LSTM_OP,
            ATTR_ONNX_NODE: node_name,
            ATTR_HIDDEN_SIZE: shape.hidden_size,
            ATTR_DIRECTION: shape.direction,
        }
    )


def build_gru_function(
    shape: RecurrentShape, node_name: str, linear_before_reset: bool
) -> relax.Function:
    """The private Relax function computing one GRU node (see the module docstring)."""
    t_len, batch, hidden, dirs = shape.seq_length, shape.batch, shape.hidden_size, shape.directions
    tensor = _tensor_type(shape)
    params = [
        relax.Var("X", tensor(t_len, batch, shape.input_size)),
        relax.Var("W", tensor(dirs, 3 * hidden, shape.input_size)),
        relax.Var("R", tensor(dirs, 3 * hidden, hidden)),
        relax.Var("B", tensor(dirs, 6 * hidden)),
        relax.Var("initial_h", tensor(dirs, batch, hidden)),
    ]
    x, w, r, b, h0 = params
    op = relax.op
    bb = relax.BlockBuilder()
    with bb.function("gru", params=params, private=True):
        with bb.dataflow():
            ys, hs = [], []
            for d in range(dirs):
                w_t = bb.emit(op.permute_dims(_direction_row(bb, w, d), [1, 0]))
                r_t = bb.emit(op.permute_dims(_direction_row(bb, r, d), [1, 0]))
                r_zr = _slice(bb, r_t, 1, 0, 2 * hidden)
                r_h = _slice(bb, r_t, 1, 2 * hidden, 3 * hidden)
                b_d = _direction_row(bb, b, d)
                wb = _slice(bb, b_d, 0, 0, 3 * hidden)
                rb = _slice(bb, b_d, 0, 3 * hidden, 6 * hidden)
                rb_h = _slice(bb, rb, 0, 2 * hidden, 3 * hidden)
                if linear_before_reset:  # Rb_h is added inside the reset gate's product
                    rb = bb.emit(
                        op.concat([_slice(bb, rb, 0, 0, 2 * hidden), op.zeros_like(rb_h)], axis=0)
                    )
                xw = bb.emit(op.add(op.matmul(x, w_t), op.add(wb, rb)))
                h = _direction_row(bb, h0, d)
                outputs: list[relax.Expr | None] = [None] * t_len
                for t in _steps(shape, d):
                    xw_t = bb.emit(op.squeeze(_slice(bb, xw, 0, t, t + 1), axis=[0]))
                    xw_zr = _slice(bb, xw_t, 1, 0, 2 * hidden)
                    xw_h = _slice(bb, xw_t, 1, 2 * hidden, 3 * hidden)
                    zr = bb.emit(op.sigmoid(op.add(xw_zr, op.matmul(h, r_zr))))
                    z, reset = _slice(bb, zr, 1, 0, hidden), _slice(bb, zr, 1, hidden, 2 * hidden)
                    if linear_before_reset:
                        recurrent = op.multiply(reset, op.add(op.matmul(h, r_h), rb_h))
                    else:
                        recurrent = op.matmul(op.multiply(reset, h), r_h)
                    n = bb.emit(op.tanh(op.add(xw_h, recurrent)))
                    h = bb.emit(
                        op.add(op.multiply(op.subtract(op.ones_like(z), z), n), op.multiply(z, h))
                    )
                    outputs[t] = h
                ys.append(bb.emit(op.stack(outputs, axis=0)))
                hs.append(h)
            y = bb.emit(op.stack(ys, axis=1))
            result = bb.emit_output(relax.Tuple([y, bb.emit(op.stack(hs, axis=0))]))
        bb.emit_func_output(result)
    func = bb.get()["gru"]
    return func.with_attrs(
        {
            ATTR_OP: GRU_OP,
            ATTR_ONNX_NODE: node_name,
            ATTR_HIDDEN_SIZE: shape.hidden_size,
            ATTR_DIRECTION: shape.direction,
            ATTR_LINEAR_BEFORE_RESET: int(linear_before_reset),
        }
    )
