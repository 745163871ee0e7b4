"""Which ONNX nodes ``eiec compile`` accepts: a registry of op type -> check.

A check returns the problems of one node (empty when the node is supported). Other tracks
extend the supported set by registering a check, e.g. ``@register_op("LSTM")``; the lowering of
the op then goes into ``eiec.passes.lower_to_eie.LOWERINGS``.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import TensorProto

from eiec.errors import UnsupportedModelError
from eiec.frontend.graph import GraphFacts, attributes, node_label

OpCheck = Callable[[onnx.NodeProto, GraphFacts], list[str]]

#: ONNX op type -> check. The keys are the ops ``eiec compile`` supports.
SUPPORTED_OPS: dict[str, OpCheck] = {}

BYOC_HINT = (
    "EIE runs chains of fully-connected layers (Gemm, MatMul+Add, Relu, Flatten/Reshape to a "
    "vector, Identity, Dropout, Cast to float); for a model that mixes them with other "
    "operators, offload the FC layers with eiec.byoc.partition_for_eie(mod) and let TVM run "
    "the rest"
)


def register_op(op_type: str) -> Callable[[OpCheck], OpCheck]:
    """Decorator: declare ``op_type`` supported, with ``check`` finding a node's problems."""

    def decorate(check: OpCheck) -> OpCheck:
        SUPPORTED_OPS[op_type] = check
        return check

    return decorate


def node_problems(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, list[str]]]:
    """Every node ``eiec compile`` cannot run, with why: its op is not supported, or the
    op's check found problems. ``model`` should be batch 1 with constants folded (shape
    inference run), as ``eiec compile`` checks it."""
    facts = GraphFacts.of(model)
    found = []
    for node in model.graph.node:
        check = SUPPORTED_OPS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if check is None:
            domain = f"{node.domain}." if node.domain not in ("", "ai.onnx") else ""
            found.append((node, [f"op {domain}{node.op_type} is not supported"]))
        elif issues := check(node, facts):
            found.append((node, issues))
    return found


def check_supported(model: onnx.ModelProto, where: str) -> None:
    """Raise one UnsupportedModelError listing every node ``eiec compile`` cannot run."""
    problems = [
        f"{node_label(node)}: {issue}" for node, issues in node_problems(model) for issue in issues
    ]
    if problems:
        count = len(problems)
        raise UnsupportedModelError(
            f"{count} node{'s' if count > 1 else ''} cannot run on EIE: " + "; ".join(problems),
            where=where,
            fix=BYOC_HINT,
        )


def _vector_input(node: onnx.NodeProto, facts: GraphFacts, index: int = 0) -> list[str]:
    name = node.input[index]
    if name in facts.initializers:
        return [f"input '{name}' is a constant; EIE multiplies constant weights by activations"]
    if not facts.is_vector(name):
        shape = facts.shapes.get(name)
        return [
            f"input '{name}' of shape {list(shape) if shape else '?'} is not a vector "
            "(batch 1: at most one dimension larger than 1)"
        ]
    return []


def _constant_matrix(node: onnx.NodeProto, facts: GraphFacts, index: int) -> list[str]:
    name = node.input[index]
    if name not in facts.initializers:
        return [f"weight '{name}' is not a constant initialiser"]
    if facts.initializers[name].ndim != 2:
        return [f"weight '{name}' has rank {facts.initializers[name].ndim}, expected 2"]
    return []


@register_op("Gemm")
def _gemm(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    problems = _vector_input(node, facts) + _constant_matrix(node, facts, 1)
    if len(node.input) > 2 and node.input[2] and node.input[2] not in facts.initializers:
        problems.append(f"bias '{node.input[2]}' is not a constant initialiser")
    return problems


@register_op("MatMul")
def _matmul(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    return _vector_input(node, facts) + _constant_matrix(node, facts, 1)


@register_op("Add")
def _add(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    constant = [name for name in node.input if name in facts.initializers]
    if len(constant) != 1:
        return ["Add is supported only as the bias of a MatMul or Gemm (one constant operand)"]
    (other,) = [name for name in node.input if name not in facts.initializers]
    producer = facts.producer.get(other)
    fused = (
        producer is not None
        and (
            producer.op_type == "MatMul"
            or (producer.op_type == "Gemm" and (len(producer.input) < 3 or not producer.input[2]))
        )
        and len(facts.consumers.get(other, [])) == 1
    )
    if not fused:
        return ["Add is supported only as the bias of a MatMul or Gemm (one constant operand)"]
    return []


@register_op("Relu")
def _relu(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    return []


@register_op("Identity")
def _identity(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    return []


def _to_vector(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    out = node.output[0]
    if facts.is_vector(out):
        return []
    shape = facts.shapes.get(out)
    return [f"output of shape {list(shape) if shape else '?'} is not a vector"]


register_op("Flatten")(_to_vector)
register_op("Reshape")(_to_vector)


@register_op("Dropout")
def _dropout(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    problems = []
    if len(node.input) > 2 and node.input[2]:
        mode = facts.initializers.get(node.input[2])
        if mode is None or bool(mode):
            problems.append("input training_mode must be a constant false (inference)")
    if len(node.output) > 1 and node.output[1] and facts.consumers.get(node.output[1]):
        problems.append("output mask is used (only inference Dropout is supported)")
    return problems


@register_op("Cast")
def _cast(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    to = attributes(node).get("to")
    if to != TensorProto.FLOAT:
        name = TensorProto.DataType.Name(int(to)) if isinstance(to, int) else to
        return [f"attribute to={name} is not supported (only FLOAT)"]
    return []


# The LSTM node and the data movement around it register their checks here, so the registry is
# complete wherever it is read (eiec compile, runtime.split).
from eiec.frontend import lstm as _lstm  # noqa: E402, F401
