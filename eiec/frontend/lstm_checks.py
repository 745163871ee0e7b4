"""Checks of ONNX ``LSTM`` and ``GRU`` nodes: what eiec imports (the converter's and the
pre-import checks) and what ``eiec compile`` runs on EIE around them (the op table's checks of
LSTM and GRU, and of the data movement on sequences: Transpose, Reshape, Squeeze, Unsqueeze,
Flatten, Gather).

Supported: forward, reverse, bidirectional; with or without B, initial_h (LSTM: initial_c),
sequence_lens (only when constant and equal to T everywhere); any subset of the outputs;
``layout = 0``; the default activations (LSTM: Sigmoid, Tanh, Tanh; GRU: Sigmoid, Tanh); GRU
with ``linear_before_reset`` 0 or 1. Everything else raises ``UnsupportedModelError`` naming the
node and the attribute or input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from eiec.errors import UnsupportedModelError
from eiec.frontend.graph import (
    RECURRENT_ONNX_OPS,
    GraphFacts,
    OpCheck,
    attributes,
    infer_shapes,
)
from eiec.relax_layers.lstm import DIRECTIONS

#: Each op's default activations (per direction).
DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh")}
#: Input positions of ONNX LSTM (opset 7+); GRU has the first six.
IN_X, IN_W, IN_R, IN_B, IN_SEQUENCE_LENS, IN_INITIAL_H, IN_INITIAL_C, IN_P = range(8)


def where_of(node_name: str, op_type: str = "LSTM") -> str:
    """How messages name an LSTM or GRU node."""
    return f"ONNX node '{node_name}' ({op_type})"


def check_recurrent_attributes(op_type: str, node_name: str, attrs: Mapping[str, Any]) -> None:
    """Reject LSTM / GRU attributes eiec does not import; ``attrs`` maps names to Python values
    (strings as ``str``, lists as tuples)."""
    where = where_of(node_name, op_type)
    direction = attrs.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise UnsupportedModelError(
            f"attribute direction={direction!r} is not an {op_type} direction",
            where=where,
            fix="use 'forward', 'reverse' or 'bidirectional'",
        )
    if "clip" in attrs:
        raise UnsupportedModelError(
            f"attribute clip={attrs['clip']:g} is not supported",
            where=where,
            fix=f"eiec imports {op_type}s without {'cell ' if op_type == 'LSTM' else ''}clipping; "
            "export the model without clip",
        )
    if int(attrs.get("linear_before_reset", 0)) not in (0, 1):
        raise UnsupportedModelError(
            f"attribute linear_before_reset={int(attrs['linear_before_reset'])} is not 0 or 1",
            where=where,
            fix="export the GRU with linear_before_reset 0 or 1",
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
            fix=f"export the {op_type} with layout=0 (sequence first: X is [seq, batch, input])",
        )
    activations = tuple(attrs.get("activations", ()))
    defaults = DEFAULT_ACTIVATIONS[op_type]
    if activations and activations != defaults * DIRECTIONS[direction]:
        raise UnsupportedModelError(
            f"attribute activations={list(activations)} is not supported",
            where=where,
            fix=f"eiec imports {op_type}s with the default activations {', '.join(defaults)}",
        )
    for name in ("activation_alpha", "activation_beta", "output_sequence"):
        if name in attrs:
            raise UnsupportedModelError(
                f"attribute {name} is not supported",
                where=where,
                fix=f"export the {op_type} with the default activations and without this attribute",
            )


def check_sequence_lens(
    node_name: str, lens: np.ndarray | None, seq_length: int, op_type: str = "LSTM"
) -> None:
    """Accept ``sequence_lens`` only as a constant equal to the sequence length everywhere."""
    where = where_of(node_name, op_type)
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


def check_peepholes(node_name: str, has_p: bool) -> None:
    """Reject peephole weights (input P)."""
    if has_p:
        raise UnsupportedModelError(
            "input P (peephole weights) is not supported",
            where=where_of(node_name),
            fix="export the LSTM without peephole connections",
        )


def onnx_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values (bytes decoded, lists as tuples)."""
    attrs: dict[str, Any] = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        attrs[attribute.name] = plain(value)
    return attrs


def plain(value: Any) -> Any:
    """An attribute value as plain Python (bytes decoded, lists as tuples)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list | tuple):
        return tuple(plain(item) for item in value)
    return value


def check_recurrent_nodes(model: onnx.ModelProto) -> None:
    """Check every LSTM and GRU node of ``model`` before import (attributes, peepholes, constant
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
        if node.op_type not in RECURRENT_ONNX_OPS:
            continue
        op = node.op_type
        name = node.name or f"{op}_{index}"
        check_recurrent_attributes(op, name, onnx_attrs(node))
        inputs = list(node.input) + [""] * (8 - len(node.input))
        check_peepholes(name, inputs[IN_P] != "")
        lens = inputs[IN_SEQUENCE_LENS]
        if lens and lens not in constants:
            check_sequence_lens(name, None, 0, op)
        if lens and inputs[IN_X] in seq_lengths:
            check_sequence_lens(name, constants[lens], seq_lengths[inputs[IN_X]], op)


#: Ops that move a sequence's data without computing: they re-view the LSTM's / GRU's buffers.
SEQUENCE_OPS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Gather")


def sequence_tensors(facts: GraphFacts) -> set[str]:
    """LSTM / GRU inputs X and outputs, what data movement (``SEQUENCE_OPS``) makes of them,
    and the tensors data movement makes X from (a ``batch_first`` model's Transpose of its
    input)."""
    found: set[str] = set()
    for node in facts.model.graph.node:
        if node.op_type in RECURRENT_ONNX_OPS:
            found.add(node.input[0])
            found.update(name for name in node.output if name)
        elif node.op_type in SEQUENCE_OPS and node.input and node.input[0] in found:
            found.update(name for name in node.output if name)
    return found | _sequence_sources(facts, found)


def _sequence_sources(facts: GraphFacts, found: set[str]) -> set[str]:
    """The tensors that data movement (``SEQUENCE_OPS`` but Gather) turns into a tensor of
    ``found``, transitively."""
    sources: set[str] = set()
    pending = list(found)
    while pending:
        producer = facts.producer.get(pending.pop())
        if producer is None or producer.op_type not in SEQUENCE_OPS or producer.op_type == "Gather":
            continue
        source = producer.input[0] if producer.input else ""
        if source and source not in found and source not in sources:
            sources.add(source)
            pending.append(source)
    return sources


def recurrent_problems(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """Why an LSTM or GRU node cannot run on EIE (empty: it can)."""
    inputs = list(node.input) + [""] * (8 - len(node.input))
    name = node.name or node.output[0]
    try:
        check_recurrent_attributes(node.op_type, name, onnx_attrs(node))
        check_peepholes(name, inputs[IN_P] != "")
    except UnsupportedModelError as error:
        return [error.what]
    problems = [
        f"{label} '{inputs[index]}' is not a constant initialiser"
        for index, label in ((IN_W, "weight"), (IN_R, "recurrence weight"), (IN_B, "bias"))
        if inputs[index] and inputs[index] not in facts.initializers
    ]
    x_shape = facts.shapes.get(inputs[IN_X])
    for index, label in ((IN_INITIAL_H, "initial_h"), (IN_INITIAL_C, "initial_c")):
        state = facts.initializers.get(inputs[index])
        if inputs[index] and state is None:
            problems.append(f"{label} '{inputs[index]}' is computed at run time")
        elif state is not None and x_shape is not None and state.shape[1:2] != x_shape[1:2]:
            problems.append(
                f"{label} '{inputs[index]}' of shape {list(state.shape)} is not for batch "
                f"{x_shape[1]} (one initial state per sequence of the batch)"
            )
    lens = inputs[IN_SEQUENCE_LENS]
    if lens and (lens not in facts.initializers or x_shape is None):
        problems.append("input sequence_lens is not a constant")
    elif lens and np.any(facts.initializers[lens] != x_shape[0]):
        problems.append(f"input sequence_lens={facts.initializers[lens].tolist()} varies")
    return problems


def transpose_problems(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """A Transpose of a sequence may only move axes of size 1."""
    shape = facts.shapes.get(node.input[0])
    perm = attributes(node).get("perm")
    if shape is None or perm is None:
        return ["transpose of a sequence of unknown shape or permutation"]
    moved = [axis for axis in perm if shape[axis] != 1]
    if moved != sorted(moved):
        return [f"perm={list(perm)} reorders the sequence's axes {list(shape)}"]
    return []


def gather_problems(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """A Gather of a sequence may only pick one constant time step, along an axis with only
    axes of size 1 before it (axis 0, or axis 1 of a ``batch_first`` [1, seq, hidden])."""
    indices = facts.initializers.get(node.input[1])
    shape = facts.shapes.get(node.input[0])
    axis = int(attributes(node).get("axis", 0))
    if shape is not None and axis < 0:
        axis += len(shape)
    leading = None if shape is None else shape[:axis]
    if leading is None or any(d != 1 for d in leading) or indices is None or indices.size != 1:
        return [
            "only one constant time step of a sequence can be gathered, along its first axis "
            "larger than 1"
        ]
    return []


def on_sequences(own: OpCheck | None, otherwise: OpCheck | None, op_type: str) -> OpCheck:
    """A check of ``op_type``: ``own`` on LSTM / GRU sequences (None: always fine),
    ``otherwise`` elsewhere (None: the op is supported only on sequences)."""

    def check(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
        if node.input and node.input[0] in sequence_tensors(facts):
            return own(node, facts) if own is not None else []
        if otherwise is not None:
            return otherwise(node, facts)
        return [f"op {op_type} is supported only on LSTM / GRU sequences"]

    return check
