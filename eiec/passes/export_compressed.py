"""ExportCompressed: the compressed weights written back into the ONNX graph.

The Relax module after ``ShareWeights`` already is the compressed Relax model; this pass puts
the same pruned, weight-shared values into an ONNX model with the same graph, so a CPU
reference (``onnx.reference``, TVM) runs exactly the weights EIE runs (before their 16-bit
quantisation). Each layer's weight initialiser gets the layer's (K, M) Relax weight in the
initialiser's layout (transposed for a Gemm with ``transB=1``), its bias initialiser the shared
bias. The graph is the canonical one (``eiec.frontend.canonicalize``: Dropout as Identity,
Gemm alpha/beta folded into the initialisers), which computes the same function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import tvm
from onnx import numpy_helper

from eiec.errors import CompileError
from eiec.frontend.layers import OnnxLayer
from eiec.passes.fc_layers import find_fc_layers
from eiec.passes.pass_decorator import eiec_module_pass


def export_onnx(
    model: onnx.ModelProto, layers: list[OnnxLayer], mod: tvm.IRModule
) -> onnx.ModelProto:
    """A copy of ``model`` whose layer initialisers hold ``mod``'s compressed weights."""
    compressed = onnx.ModelProto()
    compressed.CopyFrom(model)
    inits = {init.name: init for init in compressed.graph.initializer}
    relax_layers = {layer.name: layer for layer in find_fc_layers(mod["main"])}
    for layer in layers:
        fc = relax_layers.get(layer.name)
        if fc is None or layer.weight not in inits:
            raise CompileError(
                f"cannot export layer {layer.name}: its weight '{layer.weight}' is not an "
                "initialiser of the model or not a layer of the module",
                where=f"layer {layer.name}",
            )
        weight = fc.weight.T if layer.weight_layout == "out_in" else fc.weight
        replace_initializer(inits[layer.weight], weight)
        if layer.bias is not None and fc.bias is not None and layer.bias in inits:
            replace_initializer(inits[layer.bias], fc.bias)
    return compressed


def replace_initializer(tensor: onnx.TensorProto, value: np.ndarray) -> None:
    """Store ``value`` in ``tensor``, in the initialiser's element type and shape."""
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    new = np.ascontiguousarray(value).astype(dtype, copy=False).reshape(tuple(tensor.dims))
    tensor.CopyFrom(numpy_helper.from_array(new, tensor.name))


@eiec_module_pass("ExportCompressed")
@dataclass
class ExportCompressed:
    """Export ``main``'s compressed weights into ``model`` (see :func:`export_onnx`).

    The module is returned unchanged; ``compressed`` holds the ONNX model afterwards.
    """

    model: onnx.ModelProto
    layers: list[OnnxLayer]
    compressed: onnx.ModelProto | None = field(default=None, init=False)

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        self.compressed = export_onnx(self.model, self.layers, mod)
        return mod
