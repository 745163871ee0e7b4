"""The compressed weights written back into the ONNX graph (:func:`export_compressed`).

The Relax module after ``ShareWeights`` already is the compressed Relax model; this pass puts
the same pruned, weight-shared values into an ONNX model with the same graph, so a CPU
reference (``onnx.reference``, TVM) runs exactly the weights EIE runs (before their 16-bit
quantisation). Each layer's weight initialiser gets the layer's (K, M) Relax weight in the
initialiser's layout (transposed for a Gemm with ``transB=1``), its bias initialiser the shared
bias. The graph is the canonical one (``eiec.frontend.canonicalize``: Dropout as Identity,
Gemm alpha/beta folded into the initialisers), which computes the same function.
"""

from __future__ import annotations

import numpy as np
import onnx
import tvm
from onnx import numpy_helper

from eiec.errors import CompileError
from eiec.frontend.graph import RECURRENT_ONNX_OPS, copy_without_data
from eiec.frontend.layers import OnnxLayer
from eiec.relax_layers.exprs import transposed
from eiec.relax_layers.fc import find_fc_layers
from eiec.relax_layers.lstm import find_recurrent_layers


def export_onnx(
    model: onnx.ModelProto, layers: list[OnnxLayer], mod: tvm.IRModule
) -> onnx.ModelProto:
    """A copy of ``model`` whose layer initialisers hold ``mod``'s compressed weights (the
    initialisers being replaced are not copied first)."""
    fcs = {layer.name: layer for layer in find_fc_layers(mod["main"])}
    replaced = {layer.weight for layer in layers if layer.name in fcs} | {
        layer.bias
        for layer in layers
        if layer.name in fcs and layer.bias is not None and fcs[layer.name].bias_const is not None
    }
    compressed = copy_without_data(model, replaced)
    _write_fc(compressed, layers, mod)
    return compressed


def _write_fc(compressed: onnx.ModelProto, layers: list[OnnxLayer], mod: tvm.IRModule) -> None:
    inits = {init.name: init for init in compressed.graph.initializer}
    relax_layers = {layer.name: layer for layer in find_fc_layers(mod["main"])}
    for layer in layers:
        fc = relax_layers.get(layer.name)
        if fc is None or layer.weight not in inits:
            raise CompileError(
                f"its weight '{layer.weight}' is not an initialiser of the model, so the "
                "compressed model (the CPU reference that eiec run and verify check the program "
                "against, and --export-onnx's file) cannot hold it",
                where=f"layer {layer.name}",
                fix="store the layer's weight as an initialiser of the ONNX model",
            )
        weight = transposed(fc.weight) if layer.weight_layout == "out_in" else fc.weight
        replace_initializer(inits[layer.weight], weight)
        if layer.bias is not None and fc.bias is not None and layer.bias in inits:
            replace_initializer(inits[layer.bias], fc.bias)


def replace_initializer(tensor: onnx.TensorProto, value: np.ndarray) -> None:
    """Store ``value`` in ``tensor``, in the initialiser's element type and shape."""
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    new = np.ascontiguousarray(value).astype(dtype, copy=False).reshape(tuple(tensor.dims))
    tensor.CopyFrom(numpy_helper.from_array(new, tensor.name))


def recurrent_outputs(model: onnx.ModelProto) -> dict[str, str]:
    """ONNX node name -> its Y output name (empty when Y is unused), for every LSTM and GRU
    node."""
    return {
        node.name: node.output[0] if node.output else ""
        for node in model.graph.node
        if node.op_type in RECURRENT_ONNX_OPS
    }


def export_lstm_onnx(model: onnx.ModelProto, mod: tvm.IRModule) -> onnx.ModelProto:
    """A copy of ``model`` whose LSTM and GRU nodes' W, R and B initialisers hold ``mod``'s
    compressed values (the node found by name; an absent B stays absent: its bias was zero)."""
    compressed = onnx.ModelProto()
    compressed.CopyFrom(model)
    _write_lstm(compressed, mod)
    return compressed


def _write_lstm(compressed: onnx.ModelProto, mod: tvm.IRModule) -> None:
    inits = {init.name: init for init in compressed.graph.initializer}
    nodes = {
        node.name: node for node in compressed.graph.node if node.op_type in RECURRENT_ONNX_OPS
    }
    for layer in find_recurrent_layers(mod):
        node = nodes.get(layer.call.onnx_node)
        names = list(node.input[1:4]) if node is not None else []
        op = layer.call.onnx_op
        if node is None or any(name and name not in inits for name in names):
            raise CompileError(
                f"cannot export {op} layer {layer.name}: no {op} node "
                f"'{layer.call.onnx_node}' with initialiser weights in the model",
                where=f"layer {layer.name}",
            )
        for name, value in zip(names, (layer.w, layer.r, layer.b), strict=False):
            if name:
                replace_initializer(inits[name], value)


def export_compressed(
    model: onnx.ModelProto, layers: list[OnnxLayer], mod: tvm.IRModule
) -> onnx.ModelProto:
    """A copy of ``model`` holding ``mod``'s compressed FC, LSTM and GRU weights (one copy)."""
    compressed = export_onnx(model, layers, mod)
    _write_lstm(compressed, mod)
    return compressed
