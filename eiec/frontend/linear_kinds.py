"""What each Linear of a transformer does, read from the graph: QKV, attention output, MLP up,
MLP down, head.

A Linear is a layer of :func:`eiec.frontend.layers.find_onnx_layers` (a folded model: a tied
head's transposed embedding is then an initialiser). Between Linears, data flows through
*layout* ops (reshapes, transposes, splits, casts, and element-wise ops with a constant, such
as a bias add or attention's scale), *attention* MatMuls (both operands computed), and
*non-linearities* (Tanh, Erf, Relu, Sigmoid, GELU's product x * Phi(x)...). The rules, in order:

- ``qkv``: its output reaches an attention MatMul through layout ops;
- ``attn_out``: its input comes from an attention MatMul through layout ops (and residual
  adds are not crossed);
- ``head``: its output reaches a graph output through layout ops and Softmax / LogSoftmax,
  or through a non-linearity to a Linear that is a head (BERT's pooler before its classifier);
- ``mlp_down``: its input comes from a non-linearity fed by another Linear;
- ``mlp_up``: its output reaches a non-linearity that feeds another Linear;
- ``linear`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx

from eiec.frontend.graph import GraphFacts
from eiec.frontend.layers import OnnxLayer, find_onnx_layers

#: The kinds, in the order reports list them.
KINDS = ("qkv", "attn_out", "mlp_up", "mlp_down", "head", "linear")
#: Ops that move or rescale data without mixing it (with constant operands only).
_LAYOUT = {
    "Reshape",
    "Transpose",
    "Split",
    "Squeeze",
    "Unsqueeze",
    "Slice",
    "Cast",
    "Identity",
    "Flatten",
    "Add",
    "Sub",
    "Mul",
    "Div",
}
_NONLINEAR = {"Tanh", "Erf", "Relu", "Sigmoid", "Gelu", "Pow", "Softplus", "Elu", "LeakyRelu"}
_OUTPUT_TAIL = {"Softmax", "LogSoftmax"}


def _layout(node: onnx.NodeProto, facts: GraphFacts, through: str) -> bool:
    """``node`` only moves or rescales ``through`` (its other operands are constants)."""
    if node.op_type not in _LAYOUT:
        return False
    others = [name for name in node.input[1:] if name and name != through]
    if node.op_type in {"Add", "Sub", "Mul", "Div"}:
        others = [name for name in node.input if name and name != through]
    return all(name in facts.initializers for name in others)


def _nonlinear(node: onnx.NodeProto, facts: GraphFacts) -> bool:
    """An activation function, or a product of two computed tensors (GELU's x * Phi(x))."""
    if node.op_type in _NONLINEAR:
        return True
    return node.op_type == "Mul" and not any(n in facts.initializers for n in node.input)


def _attention(node: onnx.NodeProto, facts: GraphFacts) -> bool:
    return node.op_type == "MatMul" and not any(n in facts.initializers for n in node.input)


def _forward(facts: GraphFacts, start: str) -> Iterator[tuple[onnx.NodeProto, str]]:
    """(node, the tensor it consumes) for every node reached from ``start`` through layout
    ops, the non-layout ones included (the walk stops there)."""
    seen, stack = set(), [start]
    while stack:
        name = stack.pop()
        for node in facts.consumers.get(name, []):
            if (node.name, name) in seen:
                continue
            seen.add((node.name, name))
            yield node, name
            if _layout(node, facts, name):
                stack.extend(node.output)


def _backward(facts: GraphFacts, start: str) -> Iterator[onnx.NodeProto]:
    """Every producer reached from ``start`` backwards through layout ops."""
    seen, stack = set(), [start]
    while stack:
        name = stack.pop()
        node = facts.producer.get(name)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        yield node
        if _layout(node, facts, name) or node.op_type in _LAYOUT:
            data = [n for n in node.input if n and n not in facts.initializers]
            if len(data) == 1:
                stack.extend(data)


def _reaches_output(facts: GraphFacts, start: str, outputs: set[str]) -> bool:
    names = {start} | {out for node, _ in _forward(facts, start) for out in node.output}
    tail = {
        out
        for node, _ in _forward(facts, start)
        if node.op_type in _OUTPUT_TAIL
        for out in node.output
    }
    return bool((names | tail) & outputs)


def linear_kinds(model: onnx.ModelProto) -> list[tuple[OnnxLayer, str]]:
    """Each Linear of the folded ``model`` (graph order) with its kind (module doc)."""
    facts = GraphFacts.of(model)
    layers = find_onnx_layers(model)
    inputs = {layer.node: layer for layer in layers}
    nodes = {node.name: node for node in model.graph.node}
    outputs = {o.name for o in model.graph.output}
    kinds: dict[str, str] = {}

    def feeds_linear(name: str) -> OnnxLayer | None:
        """The Linear a non-linearity's output reaches (through more element-wise ops)."""
        seen, stack = set(), [name]
        while stack:
            for node in facts.consumers.get(stack.pop(), []):
                if node.name in inputs:
                    return inputs[node.name]
                if node.name not in seen and (node.op_type in _NONLINEAR | _LAYOUT):
                    seen.add(node.name)
                    stack.extend(node.output)
        return None

    for layer in reversed(layers):  # heads first: a pooler is a head when its consumer is
        node = nodes[layer.node]
        reached = list(_forward(facts, layer.output))
        before = list(_backward(facts, node.input[0]))
        nonlinear = [n for n, _ in reached if n.op_type in _NONLINEAR]
        downstream = [feeds_linear(out) for n in nonlinear for out in n.output]
        if any(_attention(n, facts) for n, _ in reached):
            kind = "qkv"
        elif any(_attention(n, facts) for n in before):
            kind = "attn_out"
        elif _reaches_output(facts, layer.output, outputs) or any(
            d is not None and kinds.get(d.node) == "head" for d in downstream
        ):
            kind = "head"
        elif any(_nonlinear(n, facts) for n in before):
            kind = "mlp_down"
        elif any(d is not None for d in downstream):
            kind = "mlp_up"
        else:
            kind = "linear"
        kinds[layer.node] = kind
    return [(layer, kinds[layer.node]) for layer in layers]
