"""Import ONNX ``LSTM`` into TVM Relax (TVM 0.27's Relax ONNX frontend has no LSTM converter).

The Relax form (the contract with the compiler and BYOC tracks)
---------------------------------------------------------------
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

Supported: forward, reverse, bidirectional; with or without B, initial_h, initial_c,
sequence_lens (only when constant and equal to T everywhere); any subset of the outputs;
``layout = 0``; the default activations (Sigmoid, Tanh, Tanh). Everything else raises
``UnsupportedModelError`` naming the node and the attribute or input.

The converter is registered through the frontend's ``onnx_frontend._get_convert_map()``, which
``from_onnx`` calls at conversion time; :func:`lstm_converter` wraps it for the duration of a
``with`` block, after checking that the TVM version is the pinned one and that the hook exists.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend

from eiec.errors import CompileError, UnsupportedModelError
from eiec.frontend.fold import fold_constants
from eiec.frontend.graph import GraphFacts, attributes, infer_shapes
from eiec.frontend.support import SUPPORTED_OPS, OpCheck, register_op
from eiec.passes.fc_layers import constant_value, static_shape

#: The TVM release whose ONNX frontend internals the converter hook relies on.
PINNED_TVM = "0.27"

#: Function attribute keys of an imported LSTM function.
ATTR_OP = "eiec.op"
ATTR_ONNX_NODE = "eiec.onnx_node"
ATTR_HIDDEN_SIZE = "eiec.hidden_size"
ATTR_DIRECTION = "eiec.direction"
LSTM_OP = "lstm"

DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}
DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")
#: Input positions of ONNX LSTM (opset 7+).
_X, _W, _R, _B, _SEQUENCE_LENS, _INITIAL_H, _INITIAL_C, _P = range(8)


# --- attribute checks (shared by the ONNX pre-check and the converter) -----------------------


def _where(node_name: str) -> str:
    return f"ONNX node '{node_name}' (LSTM)"


def check_lstm_attributes(node_name: str, attrs: Mapping[str, Any]) -> None:
    """Reject LSTM attributes eiec does not import; ``attrs`` maps names to Python values
    (strings as ``str``, lists as tuples)."""
    where = _where(node_name)
    direction = attrs.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise UnsupportedModelError(
            f"attribute direction={direction!r} is not an LSTM direction",
            where=where,
            fix="use 'forward', 'reverse' or 'bidirectional'",
        )
    if "clip" in attrs:
        raise UnsupportedModelError(
            f"attribute clip={attrs['clip']:g} is not supported",
            where=where,
            fix="eiec imports LSTMs without cell clipping; export the model without clip",
        )
    if int(attrs.get("input_forget", 0)) != 0:
        raise UnsupportedModelError(
            f"attribute input_forget={int(attrs['input_forget'])} is not supported",
            where=where,
            fix="eiec imports LSTMs with separate input and forget gates (input_forget=0)",
        )
    if int(attrs.get("layout", 0)) != 0:
        raise UnsupportedModelError(
            f"attribute layout={int(attrs['layout'])} is not supported",
            where=where,
            fix="export the LSTM with layout=0 (sequence first: X is [seq, batch, input])",
        )
    activations = tuple(attrs.get("activations", ()))
    if activations and activations != DEFAULT_ACTIVATIONS * DIRECTIONS[direction]:
        raise UnsupportedModelError(
            f"attribute activations={list(activations)} is not supported",
            where=where,
            fix="eiec imports LSTMs with the default activations Sigmoid, Tanh, Tanh",
        )
    for name in ("activation_alpha", "activation_beta", "output_sequence"):
        if name in attrs:
            raise UnsupportedModelError(
                f"attribute {name} is not supported",
                where=where,
                fix="export the LSTM with the default activations and without this attribute",
            )


def check_sequence_lens(node_name: str, lens: np.ndarray | None, seq_length: int) -> None:
    """Accept ``sequence_lens`` only as a constant equal to the sequence length everywhere."""
    where = _where(node_name)
    if lens is None:
        raise UnsupportedModelError(
            "input sequence_lens is not a constant",
            where=where,
            fix="eiec runs every sequence for the full length; drop sequence_lens or make it "
            "a constant initialiser equal to the sequence length",
        )
    if np.any(lens != seq_length):
        raise UnsupportedModelError(
            f"input sequence_lens={lens.tolist()} varies (sequence length {seq_length})",
            where=where,
            fix="eiec runs every sequence for the full length; pad the sequences to one length",
        )


def _check_peepholes(node_name: str, has_p: bool) -> None:
    if has_p:
        raise UnsupportedModelError(
            "input P (peephole weights) is not supported",
            where=_where(node_name),
            fix="export the LSTM without peephole connections",
        )


def _onnx_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values (bytes decoded, lists as tuples)."""
    attrs: dict[str, Any] = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        attrs[attribute.name] = _plain(value)
    return attrs


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list | tuple):
        return tuple(_plain(item) for item in value)
    return value


def check_lstm_nodes(model: onnx.ModelProto) -> None:
    """Check every LSTM node of ``model`` before import (attributes, peepholes, constant
    sequence_lens), so errors surface without the TVM frontend's conversion noise.

    ``sequence_lens`` is compared with the sequence length when shape inference knows X's shape.
    """
    graph = infer_shapes(model).graph
    constants = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            constants[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
    seq_lengths = {}
    for info in [*graph.input, *graph.value_info]:
        dims = info.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            seq_lengths[info.name] = int(dims[0].dim_value)
    for index, node in enumerate(graph.node):
        if node.op_type != "LSTM":
            continue
        name = node.name or f"LSTM_{index}"
        check_lstm_attributes(name, _onnx_attrs(node))
        inputs = list(node.input) + [""] * (8 - len(node.input))
        _check_peepholes(name, inputs[_P] != "")
        lens = inputs[_SEQUENCE_LENS]
        if lens and lens not in constants:
            check_sequence_lens(name, None, 0)
        if lens and inputs[_X] in seq_lengths:
            check_sequence_lens(name, constants[lens], seq_lengths[inputs[_X]])


# --- the Relax function of one LSTM node ------------------------------------------------------


def _function_name(node_name: str) -> str:
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


# --- the converter ----------------------------------------------------------------------------


class LSTMConverter(onnx_frontend.OnnxOpConverter):
    """ONNX ``LSTM`` (opset 7 and later) to a call of a private Relax function."""

    @classmethod
    def _impl_v7(
        cls,
        bb: relax.BlockBuilder,
        inputs: Sequence[relax.Expr | None],
        attr: dict[str, Any],
        params: object,
    ) -> relax.Expr:
        node_name = attr["tvm_custom"]["name"] or "LSTM"
        attrs = {key: _plain(value) for key, value in attr.items() if key != "tvm_custom"}
        check_lstm_attributes(node_name, attrs)
        args = list(inputs) + [None] * (8 - len(inputs))
        _check_peepholes(node_name, args[_P] is not None)
        shape = _shape_of(node_name, args, attrs)
        if args[_SEQUENCE_LENS] is not None:
            values = _constant_value(args[_SEQUENCE_LENS], params)
            check_sequence_lens(node_name, values, shape.seq_length)

        dirs, hidden = shape.directions, shape.hidden_size
        zeros_state = np.zeros((dirs, shape.batch, hidden), dtype=shape.dtype)
        defaults = {
            _B: np.zeros((dirs, 8 * hidden), dtype=shape.dtype),
            _INITIAL_H: zeros_state,
            _INITIAL_C: zeros_state,
        }
        call_args = [
            args[k] if args[k] is not None else relax.const(defaults[k])
            for k in (_X, _W, _R, _B, _INITIAL_H, _INITIAL_C)
        ]
        func = build_lstm_function(shape, node_name)
        gvar = bb.add_func(func, _function_name(node_name))
        return bb.emit(relax.Call(gvar, call_args))


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
    node_name: str, args: Sequence[relax.Expr | None], attrs: Mapping[str, Any]
) -> LstmShape:
    """Static dimensions of the node, checked against each other."""
    where = _where(node_name)
    shapes = {}
    for index, label in ((_X, "X"), (_W, "W"), (_R, "R")):
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
    expected = {"W": (dirs, 4 * hidden, input_size), "R": (dirs, 4 * hidden, hidden)}
    for label, dims in expected.items():
        if shapes[label] != dims:
            raise UnsupportedModelError(
                f"input {label} has shape {list(shapes[label])}, expected {list(dims)}",
                where=where,
                fix="check the LSTM's weights against direction and hidden_size",
            )
    if int(attrs.get("hidden_size", hidden)) != hidden:
        raise UnsupportedModelError(
            f"attribute hidden_size={attrs['hidden_size']} disagrees with R's shape "
            f"{list(shapes['R'])}",
            where=where,
            fix="fix hidden_size or R",
        )
    optional = {
        _B: ("B", (dirs, 8 * hidden)),
        _INITIAL_H: ("initial_h", (dirs, batch, hidden)),
        _INITIAL_C: ("initial_c", (dirs, batch, hidden)),
    }
    for index, (label, dims) in optional.items():
        if args[index] is not None and static_shape(args[index]) != dims:
            raise UnsupportedModelError(
                f"input {label} has shape {_shape_text(args[index])}, expected {list(dims)} "
                "(directions, batch of X, hidden)",
                where=where,
                fix="give one initial state per sequence of the batch (at batch 1: one state)",
            )
    dtype = str(args[_X].ty.dtype)
    return LstmShape(t_len, batch, input_size, hidden, direction, dtype)


def _shape_text(expr: relax.Expr) -> str:
    dims = static_shape(expr)
    return str(list(dims)) if dims is not None else str(expr.ty)


def _check_tvm() -> None:
    version = str(tvm.__version__)
    fix = f"install apache-tvm {PINNED_TVM} (the version pyproject.toml pins) or port the hook"
    if not version.startswith(PINNED_TVM + "."):
        raise CompileError(
            f"the LSTM importer hooks onnx_frontend._get_convert_map of TVM {PINNED_TVM}, "
            f"but TVM {version} is installed",
            where="eiec/frontend/lstm.py",
            fix=fix,
        )
    if not callable(getattr(onnx_frontend, "_get_convert_map", None)):
        raise CompileError(
            f"TVM {version}'s Relax ONNX frontend has no _get_convert_map, which the LSTM "
            "importer hooks",
            where="eiec/frontend/lstm.py",
            fix=fix,
        )


@contextlib.contextmanager
def lstm_converter() -> Iterator[None]:
    """Within the block, TVM's Relax ONNX frontend converts ``LSTM`` with :class:`LSTMConverter`.

    Fails with ``CompileError`` unless TVM is the pinned version with the ``_get_convert_map``
    hook; restores the original hook on exit.
    """
    _check_tvm()
    original = onnx_frontend._get_convert_map

    def convert_map() -> dict[str, type]:
        table = original()
        table["LSTM"] = LSTMConverter
        return table

    onnx_frontend._get_convert_map = convert_map
    try:
        yield
    finally:
        onnx_frontend._get_convert_map = original


def import_onnx(
    model: onnx.ModelProto, shape_dict: Mapping[str, Sequence[int]] | None = None
) -> tvm.IRModule:
    """Relax module of an ONNX model that may contain LSTM nodes.

    ``shape_dict`` (input name -> static shape) overrides the graph inputs' shapes. Folds
    constant subgraphs (zero initial states an exporter builds from
    ``Shape``/``Gather``/``Concat``/``Expand``) with ``eiec.frontend.fold.fold_constants``, names
    unnamed LSTM nodes ``LSTM_<index>``, checks the LSTM nodes, then runs TVM's ``from_onnx``
    with the LSTM converter registered.
    """
    folded = fold_constants(_with_input_shapes(model, shape_dict or {}))
    for index, node in enumerate(folded.graph.node):
        if node.op_type == "LSTM" and not node.name:
            node.name = f"LSTM_{index}"
    check_lstm_nodes(folded)
    from eiec.frontend.tvm_import import relax_from_onnx  # it imports this module

    return relax_from_onnx(folded)


def _with_input_shapes(
    model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]
) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs named in ``shapes`` have those static shapes."""
    if not shapes:
        return model
    result = onnx.ModelProto()
    result.CopyFrom(model)
    for info in result.graph.input:
        if info.name in shapes:
            dims = info.type.tensor_type.shape.dim
            del dims[:]
            for size in shapes[info.name]:
                dims.add().dim_value = int(size)
    return result


# --- reading an imported LSTM back (compiler and BYOC) ----------------------------------------


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


# --- what `eiec compile` accepts around LSTMs (eiec.frontend.support) --------------------------

#: Ops that move a sequence's data without computing: they re-view the LSTM's buffers.
_SEQUENCE_OPS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Gather")


def sequence_tensors(facts: GraphFacts) -> set[str]:
    """LSTM inputs X and outputs, and what data movement (``_SEQUENCE_OPS``) makes of them."""
    found: set[str] = set()
    for node in facts.model.graph.node:
        if node.op_type == "LSTM":
            found.add(node.input[0])
            found.update(name for name in node.output if name)
        elif node.op_type in _SEQUENCE_OPS and node.input and node.input[0] in found:
            found.update(name for name in node.output if name)
    return found


def _lstm_problems(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    inputs = list(node.input) + [""] * (8 - len(node.input))
    name = node.name or node.output[0]
    try:
        check_lstm_attributes(name, _onnx_attrs(node))
        _check_peepholes(name, inputs[_P] != "")
    except UnsupportedModelError as error:
        return [error.what]
    problems = [
        f"{label} '{inputs[index]}' is not a constant initialiser"
        for index, label in ((_W, "weight"), (_R, "recurrence weight"), (_B, "bias"))
        if inputs[index] and inputs[index] not in facts.initializers
    ]
    x_shape = facts.shapes.get(inputs[_X])
    for index, label in ((_INITIAL_H, "initial_h"), (_INITIAL_C, "initial_c")):
        state = facts.initializers.get(inputs[index])
        if inputs[index] and state is None:
            problems.append(f"{label} '{inputs[index]}' is computed at run time")
        elif state is not None and x_shape is not None and state.shape[1:2] != x_shape[1:2]:
            problems.append(
                f"{label} '{inputs[index]}' of shape {list(state.shape)} is not for batch "
                f"{x_shape[1]} (one initial state per sequence of the batch)"
            )
    lens = inputs[_SEQUENCE_LENS]
    if lens and (lens not in facts.initializers or x_shape is None):
        problems.append("input sequence_lens is not a constant")
    elif lens and np.any(facts.initializers[lens] != x_shape[0]):
        problems.append(f"input sequence_lens={facts.initializers[lens].tolist()} varies")
    return problems


def _transpose_problems(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    shape = facts.shapes.get(node.input[0])
    perm = attributes(node).get("perm")
    if shape is None or perm is None:
        return ["transpose of a sequence of unknown shape or permutation"]
    moved = [axis for axis in perm if shape[axis] != 1]
    if moved != sorted(moved):
        return [f"perm={list(perm)} reorders the sequence's axes {list(shape)}"]
    return []


def _gather_problems(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    indices = facts.initializers.get(node.input[1])
    if int(attributes(node).get("axis", 0)) != 0 or indices is None or indices.size != 1:
        return ["only one constant time step (axis 0) of a sequence can be gathered"]
    return []


def _on_sequences(op_type: str, own: OpCheck | None) -> OpCheck:
    """``op_type``'s check: ``own`` on LSTM sequences, the previous check elsewhere."""
    previous = SUPPORTED_OPS.get(op_type)

    def check(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
        if node.input and node.input[0] in sequence_tensors(facts):
            return own(node, facts) if own is not None else []
        if previous is not None:
            return previous(node, facts)
        return [f"op {op_type} is supported only on LSTM sequences"]

    return check


register_op("LSTM")(_lstm_problems)
register_op("Transpose")(_on_sequences("Transpose", _transpose_problems))
register_op("Gather")(_on_sequences("Gather", _gather_problems))
for _op in ("Reshape", "Squeeze", "Unsqueeze", "Flatten"):
    register_op(_op)(_on_sequences(_op, None))
