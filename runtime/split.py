"""Split an ONNX model into the part EIE runs and a CPU tail (a classifier's Softmax/ArgMax...).

Exporters end classifiers with ops EIE does not run: ``Softmax``, ``ArgMax`` and, from skl2onnx,
``ai.onnx.ml.ArrayFeatureExtractor`` with a label and a probability output. :func:`split_tail`
cuts such a model at the one tensor where the EIE-supported prefix ends: the *head* (inputs to
that tensor, compiled for EIE) and the *tail* (that tensor to the model's outputs, run on the CPU
by :mod:`eiec.runtime.reference`). A model EIE runs whole (any number of outputs, e.g. an LSTM's
Y, Y_h and Y_c) has no tail.

Which nodes EIE runs is the op table's decision (``eiec.frontend.ops.CHECKS``, on
the model at batch 1 with its constants folded, as ``eiec compile`` checks it): a node runs on
the CPU when it has problems or reads a CPU node's output. The model is split after
``eiec.frontend.fold.fold_constants``, so run-time constants (an exporter's
``Shape``/``Gather``/``Expand`` building a zero initial state) are initialisers, not CPU ops.
Models whose unsupported ops sit in front of or between FC layers cannot be split this way;
:func:`eie_split` returns None for them and ``eiec run`` takes the BYOC path
(``eiec.byoc.partition_for_eie``).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx.utils import Extractor

from eiec.errors import UnsupportedModelError
from eiec.frontend.canonicalize import fix_batch
from eiec.frontend.fold import fold_constants
from eiec.frontend.ops import CHECKS, LAYER_OPS
from eiec.frontend.support import node_problems

BYOC_HINT = (
    "run models with unsupported ops before or between FC layers through "
    "eiec.byoc.partition_for_eie (eiec run does), which leaves those ops to TVM on the CPU"
)


@dataclass(frozen=True)
class TailSplit:
    """The EIE head, the CPU tail (None when EIE runs every node) and the tensor between
    (None without a tail)."""

    head: onnx.ModelProto
    tail: onnx.ModelProto | None
    boundary: str | None
    tail_ops: tuple[str, ...] = ()


def cpu_outputs(model: onnx.ModelProto) -> set[str]:
    """The outputs of the nodes of ``model`` that EIE cannot run (front end's check at batch 1,
    constants folded); nodes that fold to constants at batch 1 are not among them."""
    batch1, _ = fix_batch(model, f"graph '{model.graph.name}'")
    return {out for node, _ in node_problems(fold_constants(batch1), CHECKS) for out in node.output}


def _feeds(model: onnx.ModelProto) -> list[str]:
    initialisers = {init.name for init in model.graph.initializer}
    return [vi.name for vi in model.graph.input if vi.name not in initialisers]


def _label(node: onnx.NodeProto) -> str:
    return node.name or node.output[0]


def _split(model: onnx.ModelProto) -> TailSplit | str:
    """The split of the folded ``model``, or why there is none (module doc)."""
    graph = model.graph
    unsupported = cpu_outputs(model)
    cpu_tensors: set[str] = set()
    cpu_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if unsupported.intersection(node.output) or cpu_tensors.intersection(node.input):
            cpu_nodes.append(node)
            cpu_tensors.update(node.output)
    if not cpu_nodes:
        return TailSplit(head=model, tail=None, boundary=None)
    outputs = [o.name for o in graph.output]
    feeds = _feeds(model)
    head_tensors = {out for node in graph.node if node not in cpu_nodes for out in node.output}
    initialisers = {init.name for init in graph.initializer}
    handed = {
        name
        for node in cpu_nodes
        for name in node.input
        if name and name not in cpu_tensors and name not in initialisers
    }
    handed |= {name for name in outputs if name in head_tensors}
    if handed & set(feeds) or len(handed) != 1:
        first = cpu_nodes[0]
        return (
            f"the CPU ops ({', '.join(sorted({n.op_type for n in cpu_nodes}))}, first "
            f"'{_label(first)}') read {sorted(handed)}, not one tensor computed by the FC layers"
        )
    stranded = [n for n in cpu_nodes if n.op_type in LAYER_OPS]
    if stranded:
        return (
            f"{stranded[0].op_type} layer '{_label(stranded[0])}' follows an op EIE does not "
            f"run ({cpu_nodes[0].op_type} '{_label(cpu_nodes[0])}')"
        )
    (boundary,) = handed
    extractor = Extractor(onnx.shape_inference.infer_shapes(model))
    head = extractor.extract_model(feeds, [boundary])
    tail = extractor.extract_model([boundary], outputs)
    for part in (head, tail):
        del part.opset_import[:]
        part.opset_import.extend(model.opset_import)
        part.ir_version = model.ir_version
    return TailSplit(
        head=head,
        tail=tail,
        boundary=boundary,
        tail_ops=tuple(node.op_type for node in cpu_nodes),
    )


def eie_split(model: onnx.ModelProto) -> TailSplit | None:
    """The model as an EIE head and a CPU tail (see :func:`split_tail`), or None when ops EIE
    does not run sit before or between its layers (the BYOC path)."""
    result = _split(fold_constants(model))
    return None if isinstance(result, str) else result


def split_tail(model: onnx.ModelProto) -> TailSplit:
    """Cut ``model`` (constants folded) after its EIE-supported prefix (module doc).

    The prefix must hand exactly one tensor to the CPU nodes, no CPU node may read a graph
    input and no layer (Gemm, MatMul, LSTM, GRU) may be left to the CPU; otherwise
    UnsupportedModelError names the tensors or nodes involved.
    """
    result = _split(fold_constants(model))
    if isinstance(result, str):
        raise UnsupportedModelError(result, where=f"graph '{model.graph.name}'", fix=BYOC_HINT)
    return result
