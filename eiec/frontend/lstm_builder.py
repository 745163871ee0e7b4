"""The private Relax function computing one ONNX ``LSTM`` node (the importer's output form).

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tvm import relax

from eiec.relax_layers.lstm import (
    ATTR_DIRECTION,
    ATTR_HIDDEN_SIZE,
    ATTR_ONNX_NODE,
    ATTR_OP,
    DIRECTIONS,
    LSTM_OP,
)


def function_name(node_name: str) -> str:
    """``lstm_`` plus the node name reduced to identifier characters."""
    body = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", node_name)).strip("_")
    return f"lstm_{body}" if body else "lstm"


@dataclass(frozen=True)
class LstmShape:
    """The static dimensions of one LSTM node."""

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


def build_lstm_function(shape: LstmShape, node_name: str) -> relax.Function:
    """The private Relax function computing one LSTM node (see the module docstring)."""
    t_len, batch, hidden, dirs = shape.seq_length, shape.batch, shape.hidden_size, shape.directions
    dtype = shape.dtype

    def tensor(*dims: int) -> relax.TensorType:
        return relax.TensorType(dims, dtype)

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
                reverse = shape.direction == "reverse" or d == 1
                steps = range(t_len - 1, -1, -1) if reverse else range(t_len)
                outputs: list[relax.Expr | None] = [None] * t_len
                for t in steps:
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
