"""Load and check an ONNX model: the one entry point that turns a path into a checked ModelProto."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from eiec.errors import ModelLoadError
from eiec.frontend.checks import check_model


@dataclass(frozen=True)
class LoadedModel:
    """A model :func:`load_model` has read and checked (``proto``), with the path it was read
    from (``source``, which messages name): given to :func:`load_model` or to the compiler,
    it is neither read nor checked again."""

    proto: onnx.ModelProto
    source: str


def load_checked(model: str | Path) -> LoadedModel:
    """:func:`load_model` of the file ``model``, kept with its path."""
    return LoadedModel(load_model(model), str(model))


def load_model(model: str | Path | onnx.ModelProto | LoadedModel) -> onnx.ModelProto:
    """The model at ``model`` (or the given proto), checked by ``onnx.checker``, its weights
    listed as graph inputs made constants (:func:`without_weight_inputs`).

    Raises ModelLoadError naming the file and the reason (missing, not ONNX, invalid, or a
    tensor eiec cannot compute with: ``eiec.frontend.checks.check_model``). A
    :class:`LoadedModel` was checked when it was loaded: its proto is returned as it is.
    """
    if isinstance(model, LoadedModel):
        return model.proto
    if isinstance(model, onnx.ModelProto):
        where = f"model {model.graph.name or '<in memory>'}"
        proto = model
    else:
        path = Path(model)
        where = str(path)
        if not path.is_file():
            raise ModelLoadError(
                "model file not found" if not path.exists() else "not a file",
                where=where,
                fix="give the path of an .onnx file",
            )
        if path.stat().st_size == 0:
            raise ModelLoadError(
                "the file is empty", where=where, fix="give the path of an .onnx file"
            )
        try:
            proto = onnx.load(str(path))
        except Exception as error:  # protobuf raises DecodeError and friends
            external = _EXTERNAL.search(str(error))
            if external:
                raise ModelLoadError(
                    f"the weights of '{external['tensor']}' are stored in {external['file']}, "
                    "which is missing",
                    where=where,
                    fix="keep the external-data files beside the model, as onnx.save wrote them",
                ) from None
            raise ModelLoadError(
                f"not an ONNX model: {_first_line(error)}",
                where=where,
                fix="export the model with torch.onnx.export, skl2onnx or onnx.save",
            ) from error
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as error:
        raise ModelLoadError(
            f"invalid ONNX model: {_first_line(error)}",
            where=where,
            fix="repair the model so that onnx.checker.check_model accepts it",
        ) from error
    if len(proto.graph.node) == 0:
        raise ModelLoadError("the model's graph has no nodes", where=where)
    proto = dense_constants(without_weight_inputs(proto))
    check_model(proto, where)
    return proto


def weights_from_inputs(
    model: onnx.ModelProto, arrays: Mapping[str, np.ndarray]
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """(``model``, ``arrays``) with each graph input that only feeds the weight or bias of a
    Gemm/MatMul and is given one array of exactly its declared shape made an initialiser of
    that value (a weight given as an input is compiled as the constant it is for the run), and
    the arrays left to feed. ``model`` itself when there is none."""
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, index))
    bound = {}
    for info in model.graph.input:
        array = arrays.get(info.name)
        uses = consumers.get(info.name, [])
        dims = [d.dim_value if d.HasField("dim_value") else None for d in
                info.type.tensor_type.shape.dim]  # fmt: skip
        if (
            array is not None
            and uses
            and all(n.op_type in ("Gemm", "MatMul") and i in (1, 2) for n, i in uses)
            and list(np.shape(array)) == dims
        ):
            bound[info.name] = np.asarray(array)
    if not bound:
        return model, dict(arrays)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [info for info in copy.graph.input if info.name not in bound]
    del copy.graph.input[:]
    copy.graph.input.extend(kept)
    for name, array in bound.items():
        dtype = onnx.helper.tensor_dtype_to_np_dtype(
            next(i for i in model.graph.input if i.name == name).type.tensor_type.elem_type
        )
        copy.graph.initializer.append(numpy_helper.from_array(array.astype(dtype), name))
    return copy, {name: value for name, value in arrays.items() if name not in bound}


def dense_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its sparse tensors (``Constant`` nodes' ``sparse_value``, the graph's
    ``sparse_initializer``) stored dense, as every other weight: a copy when it has any."""
    graph = model.graph
    sparse_nodes = [
        i for i, n in enumerate(graph.node)
        if n.op_type == "Constant" and any(a.name == "sparse_value" for a in n.attribute)
    ]  # fmt: skip
    if not sparse_nodes and not graph.sparse_initializer:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for sparse in copy.graph.sparse_initializer:
        copy.graph.initializer.append(_dense(sparse, sparse.values.name))
    del copy.graph.sparse_initializer[:]
    for index in sparse_nodes:
        node = copy.graph.node[index]
        attribute = next(a for a in node.attribute if a.name == "sparse_value")
        dense = onnx.helper.make_attribute("value", _dense(attribute.sparse_tensor, node.output[0]))
        node.attribute.remove(attribute)
        node.attribute.append(dense)
    return copy


def _dense(sparse: onnx.SparseTensorProto, name: str) -> onnx.TensorProto:
    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
    shape = tuple(int(d) for d in sparse.dims)
    dense = np.zeros(shape, dtype=values.dtype)
    if indices.ndim == 2:  # [nnz, rank] coordinates
        indices = np.ravel_multi_index(tuple(indices.T), shape)
    dense.reshape(-1)[indices.reshape(-1)] = values.reshape(-1)
    return numpy_helper.from_array(dense, name)


def without_weight_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without the graph inputs that an initialiser of the same name gives a value
    (older exporters, opset <= 8 and ``keep_initializers_as_inputs=True``, list every weight
    as an input): eiec compiles those weights as the constants they hold. A copy when there are
    any (IR version at least 4, which lets initialisers stand alone); else ``model`` itself."""
    weights = {init.name for init in model.graph.initializer}
    if not any(info.name in weights for info in model.graph.input):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [info for info in copy.graph.input if info.name not in weights]
    del copy.graph.input[:]
    copy.graph.input.extend(kept)
    copy.ir_version = max(copy.ir_version, 4)
    return copy


#: onnx.load's message for a missing external-data file.
_EXTERNAL = re.compile(
    r"Data of TensorProto \( tensor name: (?P<tensor>.*?)\) should be stored in (?P<file>.*?), "
    r"but it is not regular file"
)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
