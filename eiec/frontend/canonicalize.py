"""Rewrite a checked ONNX model into the form the importer expects, without changing its values.

- Batch: the program runs one vector at a time, so each graph input's batch axis is fixed to 1
  (axis 0, or the last axis for an input that feeds a ``Gemm`` with ``transA=1``, or axis 1 for
  an LSTM's or GRU's sequence-first X, followed back through Transposes: axis 0 of a
  ``batch_first`` model's [batch, seq, input]); the runtime splits
  a batch along that axis.
- ``Dropout`` (inference) becomes ``Identity``.
- A weight initialiser several layers share (tied weights) is copied for each of them.
- ``Gemm`` ``alpha``/``beta`` are folded into the weight and bias initialisers, so every layer is
  ``x @ W (+ b)``; the exported compressed model is this canonical graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from eiec.errors import UnsupportedModelError
from eiec.frontend.graph import RECURRENT_ONNX_OPS, attributes, infer_shapes, shape_stub


@dataclass(frozen=True)
class InputSpec:
    """A graph input: its name, shape at batch 1, and the axis a batch is stacked along."""

    name: str
    shape: tuple[int, ...]
    batch_axis: int | None


def fix_batch(model: onnx.ModelProto, where: str) -> tuple[onnx.ModelProto, list[InputSpec]]:
    """A copy of ``model`` whose inputs have batch 1 and only static dimensions."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    graph = fixed.graph
    initializers = {i.name for i in graph.initializer}
    specs = []
    for info in graph.input:
        if info.name in initializers:
            continue
        dims = info.type.tensor_type.shape.dim
        axis = _batch_axis(graph, info.name, len(dims))
        shape = []
        for index, dim in enumerate(dims):
            if index == axis:
                dim.Clear()
                dim.dim_value = 1
            elif not dim.HasField("dim_value"):
                raise UnsupportedModelError(
                    f"input '{info.name}' has a dynamic dimension '{dim.dim_param}' at axis "
                    f"{index}",
                    where=where,
                    fix="export the model with static feature dimensions (only the batch axis "
                    "may be dynamic)",
                )
            shape.append(int(dim.dim_value))
        specs.append(InputSpec(info.name, tuple(shape), axis))
    # Shapes downstream of the inputs are re-inferred at batch 1.
    del graph.value_info[:]
    for info in graph.output:
        if info.type.HasField("tensor_type"):
            info.type.tensor_type.ClearField("shape")
    return fixed, specs


def static_batch(model: onnx.ModelProto) -> int | None:
    """The batch size fixed by the model's run-time inputs at axis 0, their batch axis, when
    one is not 1 (an export traced with 4 samples and no dynamic axis); else None (an LSTM's
    sequence-first X has its batch at axis 1)."""
    weights = {init.name for init in model.graph.initializer}
    for info in model.graph.input:
        dims = info.type.tensor_type.shape.dim
        if info.name in weights or not dims or dims[0].dim_value <= 1:
            continue
        if _batch_axis(model.graph, info.name, len(dims)) == 0:
            return int(dims[0].dim_value)
    return None


def batch_of_one(model: onnx.ModelProto, where: str) -> onnx.ModelProto:
    """``model`` itself, or, when its inputs fix a batch other than 1 at axis 0
    (:func:`static_batch`), a copy of it at batch 1, which runs sample by sample (eiec's
    runners take a batch of any size). UnsupportedModelError when the graph's shapes depend on
    that batch (a Reshape to a constant shape holding it)."""
    batch = static_batch(model)
    if batch is None:
        return model
    one = onnx.ModelProto()
    one.CopyFrom(model)
    weights = {init.name for init in one.graph.initializer}
    for info in one.graph.input:
        dims = info.type.tensor_type.shape.dim
        if info.name not in weights and dims and dims[0].dim_value == batch:
            dims[0].dim_value = 1
    del one.graph.value_info[:]
    for info in one.graph.output:
        dims = info.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == batch:
            dims[0].dim_value = 1
    try:
        infer_shapes(one, weights=False, strict=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnsupportedModelError(
            f"the model's inputs fix a batch of {batch} samples and its graph's shapes depend "
            f"on it, so it cannot run one sample at a time: {text}",
            where=where,
            fix="export the model with a dynamic batch axis (torch.onnx.export's dynamic_axes "
            "or dynamic_shapes) or with a batch of 1",
        ) from None
    return one


_BATCH = "eiec_batch"


def output_batch_axes(model: onnx.ModelProto, inputs: list[InputSpec]) -> list[int | None]:
    """For each graph output of the batch-1 ``model``, the axis a batch of the inputs stacks
    along (None when no input has a batch axis).

    Shape inference with a symbolic batch dimension finds it (e.g. axis 2 of an LSTM's Y [seq,
    dirs, batch, hidden]). Where inference loses the symbol (a reshape to constant dims), it is
    axis 0 if that axis has size 1, else the output's only axis of size 1, else None.
    """
    if not any(spec.batch_axis is not None for spec in inputs):
        return [None] * len(model.graph.output)
    probe = shape_stub(model)  # only shapes are inferred: no copy of the weights
    specs = {spec.name: spec for spec in inputs}
    for info in probe.graph.input:
        spec = specs.get(info.name)
        if spec is not None and spec.batch_axis is not None:
            dim = info.type.tensor_type.shape.dim[spec.batch_axis]
            dim.Clear()
            dim.dim_param = _BATCH
    del probe.graph.value_info[:]
    for info in probe.graph.output:
        if info.type.HasField("tensor_type"):
            info.type.tensor_type.ClearField("shape")
    symbolic = _output_dims(probe)
    static = _output_dims(model)
    axes: list[int | None] = []
    for dims, fixed in zip(symbolic, static, strict=True):
        found = [i for i, dim in enumerate(dims) if dim.dim_param == _BATCH]
        ones = [
            i for i, dim in enumerate(fixed) if dim.HasField("dim_value") and dim.dim_value == 1
        ]
        if len(found) == 1:
            axes.append(found[0])
        elif ones and (ones[0] == 0 or len(ones) == 1):
            axes.append(ones[0])
        else:
            axes.append(None)
    return axes


def port_batch_axes(
    model: onnx.ModelProto, where: str
) -> tuple[dict[str, int | None], dict[str, int | None]]:
    """(input name -> batch axis, output name -> batch axis) of ``model`` at any batch: the axes
    ``eiec compile`` gives the program's ports (:func:`fix_batch`, :func:`output_batch_axes`).
    Only shapes are read (no copy of the weights)."""
    batch1, specs = fix_batch(shape_stub(model), where)
    outputs = output_batch_axes(batch1, specs)
    names = [info.name for info in batch1.graph.output]
    return {spec.name: spec.batch_axis for spec in specs}, dict(zip(names, outputs, strict=True))


def _output_dims(model: onnx.ModelProto) -> list[list[onnx.TensorShapeProto.Dimension]]:
    """The inferred dimensions of each graph output (empty when unknown)."""
    try:
        inferred = infer_shapes(model, weights=False)
    except Exception:  # inference is best effort; unknown shapes give no batch axis
        inferred = model
    return [list(info.type.tensor_type.shape.dim) for info in inferred.graph.output]


#: Recurrent ops whose X is [seq, batch, input] (layout 0): the batch is X's axis 1.
_RECURRENT = ("LSTM", "GRU")
#: Ops that pass a tensor on unchanged (as far as its axes go) on the way to a recurrent layer.
_PASS_THROUGH = ("Identity", "Cast", "Dropout")


def _batch_axis(graph: onnx.GraphProto, name: str, rank: int) -> int | None:
    if rank < 2:
        return None
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for used in dict.fromkeys(node.input):
            consumers.setdefault(used, []).append(node)
    for node in consumers.get(name, []):
        if node.op_type == "Gemm" and node.input[0] == name and attributes(node).get("transA"):
            return rank - 1
    if rank == 3:
        sequence = _sequence_batch_axis(consumers, name, list(range(rank)), depth=8)
        if sequence is not None:
            return sequence
    return 0


def _sequence_batch_axis(
    consumers: dict[str, list[onnx.NodeProto]], name: str, axes: list[int], depth: int
) -> int | None:
    """The axis of the graph input that becomes the batch axis (1) of a recurrent layer's X,
    following ``name`` (whose axis k is the input's ``axes[k]``) through Transposes (a
    ``batch_first`` model's) and pass-through ops; None when it reaches no recurrent layer."""
    if depth == 0:
        return None
    for node in consumers.get(name, []):
        if not node.input or node.input[0] != name:
            continue
        if node.op_type in _RECURRENT:
            return axes[1]
        if node.op_type == "Transpose":
            perm = attributes(node).get("perm") or list(range(len(axes)))[::-1]
            found = _sequence_batch_axis(
                consumers, node.output[0], [axes[int(p)] for p in perm], depth - 1
            )
        elif node.op_type in _PASS_THROUGH:
            found = _sequence_batch_axis(consumers, node.output[0], axes, depth - 1)
        else:
            continue
        if found is not None:
            return found
    return None


def canonicalize(model: onnx.ModelProto, *, copy: bool = True) -> onnx.ModelProto:
    """A copy (``model`` itself when ``copy`` is False) with Dropout as Identity, Gemm
    alpha/beta folded into the initialisers (kept for an operand that is computed, e.g. by a
    Constant node before folding) and unnamed LSTM / GRU nodes named (the compressed model's
    export finds each by name)."""
    result = model
    if copy:
        result = onnx.ModelProto()
        result.CopyFrom(model)
    graph = result.graph
    _name_recurrent_nodes(graph)
    _untie_weights(graph)
    inits = {init.name: init for init in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    for node in graph.node:
        if node.op_type == "Dropout":
            outputs = [node.output[0]]
            inputs = [node.input[0]]
            node.ClearField("attribute")
            del node.input[:]
            node.input.extend(inputs)
            del node.output[:]
            node.output.extend(outputs)
            node.op_type = "Identity"
        elif node.op_type == "Gemm":
            attrs = attributes(node)
            folded = []
            for index, key in ((1, "alpha"), (2, "beta")):
                scale = float(attrs.get(key, 1.0))
                name = node.input[index] if index < len(node.input) else ""
                if scale != 1.0 and name in inits:
                    node.input[index] = _scaled(graph, inits, uses, name, scale)
                # A computed operand (a Constant node's output before folding) keeps its factor.
                if scale == 1.0 or not name or name in inits:
                    folded.append(key)
            kept = [a for a in node.attribute if a.name not in folded]
            node.ClearField("attribute")
            node.attribute.extend(kept)
    return result


def _untie_weights(graph: onnx.GraphProto) -> None:
    """Give each Gemm/MatMul its own copy of a weight (or Gemm bias) initialiser that several
    use (tied weights, e.g. an autoencoder's or a language model's embedding and head): EIE
    stores, prunes and shares each layer's weights on their own. The first user keeps the
    name; the others' copies are named ``NAME_2``, ``NAME_3``..."""
    inits = {init.name: init for init in graph.initializer}
    taken = set(inits) | {name for node in graph.node for name in (*node.input, *node.output)}
    used: set[str] = set()
    for node in graph.node:
        if node.op_type not in ("Gemm", "MatMul"):
            continue
        for index in (1, 2) if node.op_type == "Gemm" else (1,):
            name = node.input[index] if index < len(node.input) else ""
            if name not in inits:
                continue
            if name not in used:
                used.add(name)
                continue
            suffix = 2
            while f"{name}_{suffix}" in taken:
                suffix += 1
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[name])
            copy.name = f"{name}_{suffix}"
            graph.initializer.append(copy)
            taken.add(copy.name)
            node.input[index] = copy.name


def _name_recurrent_nodes(graph: onnx.GraphProto) -> None:
    """Name the k-th LSTM (GRU) node ``LSTM_k`` (``GRU_k``) when it has no name: they are never
    folded, so the folded batch-1 graph and the loaded graph name them alike."""
    taken = {node.name for node in graph.node}
    for op_type in RECURRENT_ONNX_OPS:
        _name_nodes(graph, op_type, taken)


def _name_nodes(graph: onnx.GraphProto, op_type: str, taken: set[str]) -> None:
    nodes = [node for node in graph.node if node.op_type == op_type]
    for ordinal, node in enumerate(nodes):
        if not node.name:
            name = f"{op_type}_{ordinal}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _scaled(
    graph: onnx.GraphProto,
    inits: dict[str, onnx.TensorProto],
    uses: dict[str, int],
    name: str,
    scale: float,
) -> str:
    """The name of an initialiser holding ``scale * name`` (in place when used only once)."""
    array = numpy_helper.to_array(inits[name])
    scaled = (array.astype(np.float64) * scale).astype(array.dtype)
    if uses.get(name, 0) == 1:
        inits[name].CopyFrom(numpy_helper.from_array(scaled, name))
        return name
    new_name = f"{name}.scaled"
    while new_name in inits:
        new_name += "_"
    tensor = numpy_helper.from_array(scaled, new_name)
    graph.initializer.append(tensor)
    inits[new_name] = tensor
    return new_name
