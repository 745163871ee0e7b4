"""The fully-connected layers of a canonical ONNX model and their program names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import onnx

from eiec.errors import CompileError
from eiec.frontend.graph import GraphFacts, attributes
from eiec.relax_layers.names import identifier


@dataclass(frozen=True)
class OnnxLayer:
    """One FC layer of the ONNX graph.

    ``weight_layout`` is ``"out_in"`` for a Gemm with ``transB=1`` (PyTorch) and ``"in_out"``
    otherwise (MatMul, skl2onnx). ``output`` is the tensor after the bias and an optional Relu:
    the value the program writes back.
    """

    name: str
    node: str
    op: str
    weight: str
    weight_layout: str
    bias: str | None
    bias_node: str | None
    output: str

    @property
    def aliases(self) -> tuple[str, ...]:
        """Names a user may give for this layer: program name, ONNX node name, weight name."""
        return tuple(dict.fromkeys(n for n in (self.name, self.node, self.weight) if n))


def _base_name(node: onnx.NodeProto, weight: str, index: int) -> str:
    """PyTorch names nodes ``/fc1/Gemm``: the layer is ``fc1``. Else the node or weight name."""
    if node.name:
        parts = [p for p in node.name.split("/") if p]
        if len(parts) > 1 and parts[-1].split("_")[0] in ("Gemm", "MatMul"):
            parts = parts[:-1]
        return identifier("/".join(parts), "fc")
    stem = weight.removesuffix(".weight").removesuffix("_weight")
    return identifier(stem, "fc") if stem else f"fc{index}"


def find_onnx_layers(model: onnx.ModelProto) -> list[OnnxLayer]:
    """Every Gemm / MatMul(+Add) with a constant weight, in graph order, with unique names."""
    facts = GraphFacts.of(model)
    layers: list[OnnxLayer] = []
    taken: set[str] = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.op_type not in ("Gemm", "MatMul") or node.input[1] not in facts.initializers:
            continue
        weight = node.input[1]
        layout = "out_in" if node.op_type == "Gemm" and attributes(node).get("transB") else "in_out"
        bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 else None
        bias_node = None
        output = node.output[0]
        follower = _sole_consumer(facts, output)
        if bias is None and follower is not None and follower.op_type == "Add":
            bias = next(n for n in follower.input if n != output)
            bias_node = follower.name
            output = follower.output[0]
            follower = _sole_consumer(facts, output)
        if follower is not None and follower.op_type == "Relu":
            output = follower.output[0]
        name = _base_name(node, weight, len(layers))
        unique, suffix = name, 2
        while unique in taken:
            unique, suffix = f"{name}_{suffix}", suffix + 1
        taken.add(unique)
        layers.append(
            OnnxLayer(
                unique, node.name, node.op_type, weight, layout, bias or None, bias_node, output
            )
        )
    return layers


def _sole_consumer(facts: GraphFacts, name: str) -> onnx.NodeProto | None:
    consumers = facts.consumers.get(name, [])
    outputs = {o.name for o in facts.model.graph.output}
    return consumers[0] if len(consumers) == 1 and name not in outputs else None


def layer_aliases(layers: list[OnnxLayer]) -> dict[str, str]:
    """Each name a user may give (:attr:`OnnxLayer.aliases`) -> its layer's name, leaving out
    a name several layers share (ONNX nodes of the same name: :func:`check_unambiguous`)."""
    owners: dict[str, set[str]] = {}
    for layer in layers:
        for alias in layer.aliases:
            owners.setdefault(alias, set()).add(layer.name)
    return {alias: names.pop() for alias, names in owners.items() if len(names) == 1}


def check_unambiguous(keys: Iterable[str], layers: list[OnnxLayer], option: str) -> None:
    """CompileError when a key of a per-layer ``option`` names several layers (an ONNX node
    name that several nodes have), saying which layers and their own names."""
    unique = {layer.name for layer in layers} | set(layer_aliases(layers))
    for key in keys:
        owners = [layer.name for layer in layers if key in layer.aliases]
        if key not in unique and len(owners) > 1:
            raise CompileError(
                f"{option}: '{key}' names {len(owners)} layers ({', '.join(owners)}): ONNX "
                "nodes of the model share that name",
                fix=f"give each layer by its own name: {', '.join(f'{n}=S' for n in owners)}",
            )
