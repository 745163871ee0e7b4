"""ONNX rewrites before TVM's import.

TVM's ONNX front end lacks some ops that exporters write. Before import, :func:`tvm_compatible`
rewrites them into equivalent standard ops, so the whole model still runs in TVM:

- ``ai.onnx.ml.ArrayFeatureExtractor(data, indices)`` (skl2onnx's label lookup after
  ``ArgMax``) becomes ``Gather(data, Reshape(indices, [-1]), axis=-1)``, followed by
  ``Unsqueeze(axes=[0])`` (as the model's opset writes it) when ``data`` is 1-D (the op's
  output is then ``[1, n]``, as onnxruntime and ``onnx.reference`` define it).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from eiec.errors import RuntimeCheckError

#: The opset from which Unsqueeze takes its axes as an input (an attribute before).
UNSQUEEZE_AXES_INPUT = 13


def tvm_compatible(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with the ops TVM's ONNX front end lacks rewritten (module doc)."""
    if not any(n.op_type == "ArrayFeatureExtractor" for n in model.graph.node):
        return model
    result = onnx.ModelProto()
    result.CopyFrom(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(result.graph.node):
        if node.op_type != "ArrayFeatureExtractor":
            nodes.append(node)
            continue
        data, indices = node.input
        rank = _static_rank(result, data)
        if rank is None:
            raise RuntimeCheckError(
                f"ArrayFeatureExtractor on '{data}' of unknown rank",
                where=f"ONNX node {node.name or index}",
                fix="give the data input a static rank (an initialiser or a typed value_info)",
            )
        stem = f"eiec_afe{index}"
        shape = numpy_helper.from_array(np.array([-1], dtype=np.int64), f"{stem}_flat_shape")
        result.graph.initializer.append(shape)
        gathered = node.output[0] if rank > 1 else f"{stem}_gathered"
        nodes.append(
            helper.make_node("Reshape", [indices, shape.name], [f"{stem}_flat"], name=f"{stem}_r")
        )
        nodes.append(
            helper.make_node(
                "Gather", [data, f"{stem}_flat"], [gathered], axis=-1, name=f"{stem}_g"
            )
        )
        if rank == 1 and opset < UNSQUEEZE_AXES_INPUT:
            nodes.append(
                helper.make_node(
                    "Unsqueeze", [gathered], [node.output[0]], name=f"{stem}_u", axes=[0]
                )
            )
        elif rank == 1:
            axes = numpy_helper.from_array(np.array([0], dtype=np.int64), f"{stem}_axes")
            result.graph.initializer.append(axes)
            nodes.append(
                helper.make_node(
                    "Unsqueeze", [gathered, axes.name], [node.output[0]], name=f"{stem}_u"
                )
            )
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    return result


def _static_rank(model: onnx.ModelProto, name: str) -> int | None:
    for init in model.graph.initializer:
        if init.name == name:
            return len(init.dims)
    for node in model.graph.node:
        if node.op_type == "Constant" and name in node.output:
            return len(helper.get_attribute_value(node.attribute[0]).dims)
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if info.name == name and info.type.tensor_type.HasField("shape"):
            return len(info.type.tensor_type.shape.dim)
    return None
