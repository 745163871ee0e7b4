"""The support checks of the FC ops ``eiec compile`` accepts, and the check of a whole model.

A check returns the problems of one node (empty when the node is supported). Which op has which
check is the op table's decision (``eiec.ops``), passed in as ``checks``.
"""

from __future__ import annotations

from collections.abc import Mapping

import onnx
from onnx import TensorProto

from eiec.errors import UnsupportedModelError
from eiec.frontend.graph import GraphFacts, OpCheck, attributes, node_label


def node_problems(
    model: onnx.ModelProto, checks: Mapping[str, OpCheck]
) -> list[tuple[onnx.NodeProto, list[str]]]:
    """Every node ``eiec compile`` cannot run, with why: its op has no check in ``checks``
    (op type -> check), or the op's check found problems. ``model`` should be batch 1 with
    constants folded (shape inference run), as ``eiec compile`` checks it."""
    facts = GraphFacts.of(model)
    found = []
    for node in model.graph.node:
        check = checks.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if check is None:
            domain = f"{node.domain}." if node.domain not in ("", "ai.onnx") else ""
            found.append((node, [f"op {domain}{node.op_type} is not supported"]))
        elif issues := check(node, facts):
            found.append((node, issues))
    return found


def check_supported(
    model: onnx.ModelProto, where: str, checks: Mapping[str, OpCheck], hint: str
) -> None:
    """Raise one UnsupportedModelError listing every node ``eiec compile`` cannot run, with
    ``hint`` as the fix; when their problems are of more than ``NAMED_GROUPS`` kinds (a model
    built around other operators, e.g. a transformer), a short line naming their op types and
    pointing to ``eiec run`` instead."""
    found = node_problems(model, checks)
    if not found:
        return
    count = len(found)
    groups: dict[tuple[str, str], list[onnx.NodeProto]] = {}
    for node, issues in found:
        for issue in issues:
            groups.setdefault((node.op_type, issue), []).append(node)
    parts = []
    for (op, issue), nodes in groups.items():
        text = f"{node_label(nodes[0])}: {issue}"
        others = nodes[1:]
        if others:
            names = ", ".join(f"'{n.name or n.output[0]}'" for n in others[:NAMED_NODES])
            rest = f" and {len(others) - NAMED_NODES} more" if len(others) > NAMED_NODES else ""
            text += f" (so do {len(others)} more {op} node(s): {names}{rest})"
        parts.append(text)
    if len(parts) > NAMED_GROUPS:
        ops = list(dict.fromkeys(node.op_type for node, _ in found))
        named = ", ".join(ops[:NAMED_OPS]) + (
            f" and {len(ops) - NAMED_OPS} more" if len(ops) > NAMED_OPS else ""
        )
        raise UnsupportedModelError(
            f"{count} nodes of {len(ops)} op types cannot run on EIE ({named}): the model "
            "computes on the CPU around its FC layers, and eiec compile only builds programs "
            "EIE runs alone",
            where=where,
            fix=quantized_hint(model)
            or "use eiec run MODEL INPUTS.npy instead, which offloads the FC layers to EIE "
            "through BYOC and runs the other operators on TVM's CPU",
        )
    raise UnsupportedModelError(
        f"{count} node{'s' if count > 1 else ''} cannot run on EIE: " + "; ".join(parts),
        where=where,
        fix=quantized_hint(model) or hint,
    )


def quantized_hint(model: onnx.ModelProto) -> str | None:
    """What to do with a model onnxruntime quantised (its ``QUANTIZED_OPS``), else None."""
    quantized = sorted({n.op_type for n in model.graph.node if n.op_type in QUANTIZED_OPS})
    if not quantized:
        return None
    return (
        f"the model is quantised ({', '.join(quantized)}): give eiec the float model, before "
        "onnxruntime's quantize_static/quantize_dynamic; eiec quantises the weights itself "
        "(4-bit shared codebooks, 16-bit fixed point)"
    )


#: Nodes named in a group of nodes with the same problem (the rest are counted), and groups
#: listed (the message stays a readable line).
NAMED_NODES = 2
NAMED_GROUPS = 4
#: Op types named in the short error of a model with more kinds of problem than that.
NAMED_OPS = 5
#: Ops of models quantised by onnxruntime (QDQ and QOperator formats, dynamic quantisation).
QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
    "QLinearMatMul", "QLinearConv", "ConvInteger", "QGemm", "DynamicQuantizeMatMul",
})  # fmt: skip


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
    rank = len(facts.shapes[name])  # an initialiser's dims: its weights are not read
    if rank != 2:
        return [f"weight '{name}' has rank {rank}, expected 2"]
    return []


def gemm(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """A Gemm multiplies a vector by a constant matrix, with a constant bias if any."""
    problems = _vector_input(node, facts) + _constant_matrix(node, facts, 1)
    if len(node.input) > 2 and node.input[2] and node.input[2] not in facts.initializers:
        problems.append(f"bias '{node.input[2]}' is not a constant initialiser")
    return problems


def matmul(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """A MatMul multiplies a vector by a constant matrix."""
    return _vector_input(node, facts) + _constant_matrix(node, facts, 1)


def add(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """An Add is the constant bias of a MatMul or a bias-less Gemm, its only use."""
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


def no_problems(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """The check of an op that always runs (Relu, Identity)."""
    return []


def to_vector(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """The output is a vector (Flatten, Reshape)."""
    out = node.output[0]
    if facts.is_vector(out):
        return []
    shape = facts.shapes.get(out)
    return [f"output of shape {list(shape) if shape else '?'} is not a vector"]


def dropout(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """Inference Dropout only (constant false training_mode, mask unused)."""
    problems = []
    if len(node.input) > 2 and node.input[2]:
        mode = facts.initializers.get(node.input[2])
        if mode is None or bool(mode):
            problems.append("input training_mode must be a constant false (inference)")
    if len(node.output) > 1 and node.output[1] and facts.consumers.get(node.output[1]):
        problems.append("output mask is used (only inference Dropout is supported)")
    return problems


def cast(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """A Cast to float only."""
    to = attributes(node).get("to")
    if to != TensorProto.FLOAT:
        name = TensorProto.DataType.Name(int(to)) if isinstance(to, int) else to
        return [f"attribute to={name} is not supported (only FLOAT)"]
    return []
