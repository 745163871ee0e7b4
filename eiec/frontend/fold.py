"""Constant folding of ONNX graphs: subgraphs that depend only on initialisers and static shapes.

Exporters compute many tensors at run time that are really constants: PyTorch's LSTM export
builds its zero initial state as ``ConstantOfShape(Concat(Unsqueeze(Gather(Shape(x), 0)), ...))``
and reshapes go through ``Shape -> Gather -> Concat``. EIE needs them as constants, so
:func:`fold_constants` evaluates every node whose inputs are all known (initialisers,
``Constant`` nodes, results of folded nodes, and ``Shape``/``Size`` of tensors whose shape shape
inference determined) with ``onnx.reference.ReferenceEvaluator`` and replaces it by an
initialiser. That covers every exporter's way of building an LSTM's W, R and B from its
parameters (``Slice``/``Concat``/``Unsqueeze``/``Squeeze``/``Transpose``/``Split``/``Gather`` of
initialisers, as torch's dynamo exporter writes them): any op ``onnx.reference`` implements.
Nodes that produce graph outputs, random-number nodes, nodes with subgraphs, and nodes whose
inferred outputs hold more than ``MAX_GROWTH_ELEMENTS`` elements and more than their inputs
(an ``Expand``/``Tile``/``ConstantOfShape`` blowing up a constant the model computes anyway)
are kept.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from eiec.frontend.graph import TensorValues, annotate_shapes

#: Nodes that must not be evaluated at compile time (their result is not a constant).
_NOT_FOLDABLE = frozenset(
    {
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "If",
        "Loop",
        "Scan",
    }
)


#: Largest output (elements) a fold may create beyond the size of the node's inputs.
MAX_GROWTH_ELEMENTS = 1 << 20


def fold_constants(
    model: onnx.ModelProto, *, max_rounds: int = 8, copy: bool = True
) -> onnx.ModelProto:
    """A copy of ``model`` (``model`` itself when ``copy`` is False) with its constant subgraphs
    replaced by initialisers.

    Shape inference and folding alternate (up to ``max_rounds``) because a folded shape tensor
    can make further shapes static. With ``copy`` the input model is not modified; the
    weights are copied at most once either way.
    """
    folded = model
    if copy:
        folded = onnx.ModelProto()
        folded.CopyFrom(model)
    for _ in range(max_rounds):
        _infer(folded)
        if not _fold_once(folded):
            break
    _drop_unused_initializers(folded.graph)
    _infer(folded)
    return folded


def _infer(model: onnx.ModelProto) -> None:
    # Shape inference is best effort here; the checker reports real errors.
    with contextlib.suppress(Exception):
        annotate_shapes(model, data_prop=True)


def _static_shapes(graph: onnx.GraphProto) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, for every tensor whose dimensions are all known integers."""
    shapes: dict[str, tuple[int, ...]] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if not info.type.HasField("tensor_type"):
            continue
        tensor = info.type.tensor_type
        if not tensor.HasField("shape"):
            continue
        dims = tensor.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = tuple(int(d.dim_value) for d in dims)
    for init in graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    return shapes


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {entry.domain: int(entry.version) for entry in model.opset_import}


def _shape_value(node: onnx.NodeProto, shape: tuple[int, ...]) -> np.ndarray:
    """The result of ``Shape`` (with its ``start``/``end`` attributes) or ``Size``."""
    if node.op_type == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    start = attrs.get("start", 0)
    end = attrs.get("end", len(shape))
    return np.array(shape[slice(start, end)], dtype=np.int64)


def _fold_once(model: onnx.ModelProto) -> bool:
    """Fold every foldable node once; True when anything changed."""
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    known = TensorValues(
        {
            init.name: init
            for init in graph.initializer
            if init.name not in graph_inputs  # an initialiser that is also an input can be fed
        }
    )
    shapes = _static_shapes(graph)
    outputs = {o.name for o in graph.output}
    opsets = _opsets(model)
    kept: list[onnx.NodeProto] = []
    new_constants: dict[str, np.ndarray] = {}
    for node in graph.node:
        value = _evaluate(node, known, shapes, opsets) if not outputs & set(node.output) else None
        if value is None:
            kept.append(node)
            continue
        for name, array in zip(node.output, value, strict=True):
            if name:
                known[name] = array
                new_constants[name] = array
    if not new_constants:
        return False
    used = {name for node in kept for name in node.input} | outputs
    del graph.node[:]
    graph.node.extend(kept)
    for name, array in new_constants.items():
        if name in used:
            graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
    # Value infos of folded tensors are now implied by the initialisers.
    stale = [vi for vi in graph.value_info if vi.name in new_constants]
    for info in stale:
        graph.value_info.remove(info)
    return True


def _evaluate(
    node: onnx.NodeProto,
    known: TensorValues,
    shapes: dict[str, tuple[int, ...]],
    opsets: dict[str, int],
) -> list[np.ndarray] | None:
    """The node's outputs when they are compile-time constants, else None."""
    if node.op_type in _NOT_FOLDABLE or node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type in ("Shape", "Size") and node.input[0] in shapes:
        return [_shape_value(node, shapes[node.input[0]])]
    inputs = [name for name in node.input if name]
    if not all(name in known for name in inputs):
        return None
    if any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
    ):
        return None
    if _grows_too_much(node, inputs, shapes):
        return None
    evaluator = ReferenceEvaluator(node, opsets={"": opsets.get("", opsets.get("ai.onnx", 21))})
    feeds = {name: known[name] for name in inputs}
    try:
        results = evaluator.run(None, feeds)
    except Exception:  # onnx.reference's own limits (np.choose in GatherElements, > 64 rows)
        return None  # not folded: the node runs where the rest of the graph does
    return [np.asarray(r) for r in results]


def _grows_too_much(
    node: onnx.NodeProto, inputs: list[str], shapes: dict[str, tuple[int, ...]]
) -> bool:
    """Whether the node's outputs (where shape inference knows them) hold more than
    ``MAX_GROWTH_ELEMENTS`` elements and more than its inputs."""
    produced = sum(math.prod(shapes[name]) for name in node.output if name in shapes)
    given = sum(math.prod(shapes[name]) for name in inputs if name in shapes)
    return produced > max(MAX_GROWTH_ELEMENTS, given)


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    graph_inputs = {i.name for i in graph.input}
    keep = [i for i in graph.initializer if i.name in used or i.name in graph_inputs]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
