"""Import ONNX ``LSTM`` and ``GRU`` into TVM Relax (TVM 0.27's Relax ONNX frontend has no
converter for either).

:class:`LSTMConverter` and :class:`GRUConverter` make each node a call of the private function
:func:`eiec.frontend.lstm_builder.build_lstm_function` (``build_gru_function``) builds. The
converters are registered through the frontend's ``onnx_frontend._get_convert_map()``, which
``from_onnx`` calls at conversion time; :func:`recurrent_converters` wraps it for the duration
of a ``with`` block, after checking that the TVM version is the pinned one and that the hook
exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend

from eiec.errors import CompileError, UnsupportedModelError
from eiec.frontend.lstm_builder import (
    RecurrentShape,
    build_gru_function,
    build_lstm_function,
    function_name,
)
from eiec.frontend.lstm_checks import (
    IN_B,
    IN_INITIAL_C,
    IN_INITIAL_H,
    IN_P,
    IN_R,
    IN_SEQUENCE_LENS,
    IN_W,
    IN_X,
    check_peepholes,
    check_recurrent_attributes,
    check_sequence_lens,
    plain,
    where_of,
)
from eiec.relax_layers.exprs import const, constant_value, static_shape
from eiec.relax_layers.lstm import DIRECTIONS, GRU_OP, LSTM_OP, RECURRENT_OPS

#: The TVM release whose ONNX frontend internals the converter hook relies on.
PINNED_TVM = "0.27"


class _RecurrentConverter(onnx_frontend.OnnxOpConverter):
    """ONNX ``LSTM`` / ``GRU`` (opset 7 and later) to a call of a private Relax function."""

    #: ``eiec.op`` of the functions this converter builds.
    op = LSTM_OP

    @classmethod
    def _impl_v7(
        cls,
        bb: relax.BlockBuilder,
        inputs: Sequence[relax.Expr | None],
        attr: dict[str, Any],
        params: object,
    ) -> relax.Expr:
        op_type, gates = RECURRENT_OPS[cls.op]
        node_name = attr["tvm_custom"]["name"] or op_type
        attrs = {key: plain(value) for key, value in attr.items() if key != "tvm_custom"}
        check_recurrent_attributes(op_type, node_name, attrs)
        args = list(inputs) + [None] * (8 - len(inputs))
        if cls.op == LSTM_OP:
            check_peepholes(node_name, args[IN_P] is not None)
        shape = _shape_of(op_type, gates, node_name, args, attrs)
        if args[IN_SEQUENCE_LENS] is not None:
            values = _constant_value(args[IN_SEQUENCE_LENS], params)
            check_sequence_lens(node_name, values, shape.seq_length, op_type)

        dirs, hidden = shape.directions, shape.hidden_size
        zeros_state = np.zeros((dirs, shape.batch, hidden), dtype=shape.dtype)
        defaults = {
            IN_B: np.zeros((dirs, 2 * gates * hidden), dtype=shape.dtype),
            IN_INITIAL_H: zeros_state,
            IN_INITIAL_C: zeros_state,
        }
        used = (IN_X, IN_W, IN_R, IN_B, IN_INITIAL_H)
        if cls.op == LSTM_OP:
            used += (IN_INITIAL_C,)
            func = build_lstm_function(shape, node_name)
        else:
            lbr = bool(int(attrs.get("linear_before_reset", 0)))
            func = build_gru_function(shape, node_name, lbr)
        call_args = [args[k] if args[k] is not None else const(defaults[k]) for k in used]
        gvar = bb.add_func(func, function_name(node_name, cls.op))
        return bb.emit(relax.Call(gvar, call_args))


class LSTMConverter(_RecurrentConverter):
    """ONNX ``LSTM`` (opset 7 and later) to a call of a private Relax function."""

    op = LSTM_OP


class GRUConverter(_RecurrentConverter):
    """ONNX ``GRU`` (opset 7 and later) to a call of a private Relax function."""

    op = GRU_OP


def _constant_value(expr: relax.Expr, params: object) -> np.ndarray | None:
    """The value of a constant, or of an initialiser kept as a parameter
    (``from_onnx(keep_params_in_input=True)`` passes ``[nodes, {name: (var, value)}]``)."""
    if isinstance(expr, tvm.ir.GenericConst):
        return constant_value(expr)
    if isinstance(expr, relax.Var) and isinstance(params, list | tuple) and len(params) > 1:
        for var, value in params[1].values():
            if var.same_as(expr):
                return value.numpy()
    return None


def _shape_of(
    op_type: str,
    gates: int,
    node_name: str,
    args: Sequence[relax.Expr | None],
    attrs: Mapping[str, Any],
) -> RecurrentShape:
    """Static dimensions of the node, checked against each other."""
    where = where_of(node_name, op_type)
    shapes = {}
    for index, label in ((IN_X, "X"), (IN_W, "W"), (IN_R, "R")):
        dims = static_shape(args[index])
        if dims is None or len(dims) != 3:
            raise UnsupportedModelError(
                f"input {label} has no static rank-3 shape ({args[index].ty})",
                where=where,
                fix="give the model's inputs static shapes (shape_dict) or export with fixed sizes",
            )
        shapes[label] = dims
    direction = attrs.get("direction", "forward")
    dirs = DIRECTIONS[direction]
    t_len, batch, input_size = shapes["X"]
    hidden = shapes["R"][2]
    expected = {"W": (dirs, gates * hidden, input_size), "R": (dirs, gates * hidden, hidden)}
    for label, dims in expected.items():
        if shapes[label] != dims:
            raise UnsupportedModelError(
                f"input {label} has shape {list(shapes[label])}, expected {list(dims)}",
                where=where,
                fix=f"check the {op_type}'s weights against direction and hidden_size",
            )
    if int(attrs.get("hidden_size", hidden)) != hidden:
        raise UnsupportedModelError(
            f"attribute hidden_size={attrs['hidden_size']} disagrees with R's shape "
            f"{list(shapes['R'])}",
            where=where,
            fix="fix hidden_size or R",
        )
    optional = {
        IN_B: ("B", (dirs, 2 * gates * hidden)),
        IN_INITIAL_H: ("initial_h", (dirs, batch, hidden)),
    }
    if op_type == "LSTM":
        optional[IN_INITIAL_C] = ("initial_c", (dirs, batch, hidden))
    for index, (label, dims) in optional.items():
        if args[index] is not None and static_shape(args[index]) != dims:
            raise UnsupportedModelError(
                f"input {label} has shape {_shape_text(args[index])}, expected {list(dims)} "
                "(directions, batch of X, hidden)",
                where=where,
                fix="give one initial state per sequence of the batch (at batch 1: one state)",
            )
    dtype = str(args[IN_X].ty.dtype)
    return RecurrentShape(t_len, batch, input_size, hidden, direction, dtype)


def _shape_text(expr: relax.Expr) -> str:
    dims = static_shape(expr)
    return str(list(dims)) if dims is not None else str(expr.ty)


def _check_tvm() -> None:
    version = str(tvm.__version__)
    fix = f"install apache-tvm {PINNED_TVM} (the version pyproject.toml pins) or port the hook"
    if not version.startswith(PINNED_TVM + "."):
        raise CompileError(
            f"the LSTM/GRU importer hooks onnx_frontend._get_convert_map of TVM {PINNED_TVM}, "
            f"but TVM {version} is installed",
            where="eiec/frontend/lstm_converter.py",
            fix=fix,
        )
    if not callable(getattr(onnx_frontend, "_get_convert_map", None)):
        raise CompileError(
            f"TVM {version}'s Relax ONNX frontend has no _get_convert_map, which the LSTM/GRU "
            "importer hooks",
            where="eiec/frontend/lstm_converter.py",
            fix=fix,
        )


@contextlib.contextmanager
def recurrent_converters() -> Iterator[None]:
    """Within the block, TVM's Relax ONNX frontend converts ``LSTM`` with :class:`LSTMConverter`
    and ``GRU`` with :class:`GRUConverter`.

    Fails with ``CompileError`` unless TVM is the pinned version with the ``_get_convert_map``
    hook; restores the original hook on exit.
    """
    _check_tvm()
    original = onnx_frontend._get_convert_map

    def convert_map() -> dict[str, type]:
        table = original()
        table["LSTM"] = LSTMConverter
        table["GRU"] = GRUConverter
        return table

    onnx_frontend._get_convert_map = convert_map
    try:
        yield
    finally:
        onnx_frontend._get_convert_map = original
