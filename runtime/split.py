"""Split an ONNX model into the part EIE runs and a CPU tail (a classifier's Softmax/ArgMax...).

Exporters end classifiers with ops EIE does not run: ``Softmax``, ``ArgMax`` and, from skl2onnx,
``ai.onnx.ml.ArrayFeatureExtractor`` with a label and a probability output. :func:`split_tail`
cuts such a model at the one tensor where the EIE-supported prefix ends: the *head* (inputs to
that tensor, compiled for EIE) and the *tail* (that tensor to the model's outputs, run on the CPU
by :mod:`eiec.runtime.reference`). Models whose unsupported ops sit in front of or between FC
layers need the general path, ``eiec.byoc.partition_for_eie``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import onnx
from onnx.utils import Extractor

from eiec.errors import UnsupportedModelError

BYOC_HINT = (
    "run models with unsupported ops before or between FC layers through "
    "eiec.byoc.partition_for_eie, which leaves those ops to TVM on the CPU"
)


@dataclass(frozen=True)
class TailSplit:
    """The EIE head, the CPU tail (None when EIE runs every node) and the tensor between."""

    head: onnx.ModelProto
    tail: onnx.ModelProto | None
    boundary: str
    tail_ops: tuple[str, ...] = ()


def supported_ops() -> frozenset[str]:
    """The ONNX op types ``eiec compile`` accepts (the front end's registry)."""
    import eiec.compiler  # noqa: F401  (the compiler's imports register every op it accepts)
    from eiec.frontend.support import SUPPORTED_OPS

    return frozenset(SUPPORTED_OPS)


def _feeds(model: onnx.ModelProto) -> list[str]:
    initialisers = {init.name for init in model.graph.initializer}
    return [vi.name for vi in model.graph.input if vi.name not in initialisers]


def split_tail(model: onnx.ModelProto, supported: Collection[str] | None = None) -> TailSplit:
    """Cut ``model`` after its EIE-supported prefix (module doc).

    A node runs on the CPU when its op is not supported or it consumes a CPU node's output.
    The prefix must hand exactly one tensor to the CPU nodes, no CPU node may read a graph
    input and no FC layer (Gemm, MatMul) may be left to the CPU; otherwise
    UnsupportedModelError names the tensors or nodes involved.
    """
    ops = supported_ops() if supported is None else frozenset(supported)
    graph = model.graph
    cpu_tensors: set[str] = set()
    cpu_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        on_cpu = node.op_type not in ops or node.domain not in ("", "ai.onnx")
        if on_cpu or any(name in cpu_tensors for name in node.input):
            cpu_nodes.append(node)
            cpu_tensors.update(node.output)
    outputs = [o.name for o in graph.output]
    if not cpu_nodes:
        if len(outputs) != 1:
            raise UnsupportedModelError(
                f"the model has {len(outputs)} outputs; an EIE program has one",
                where=f"graph '{graph.name}'",
                fix="export one output tensor",
            )
        return TailSplit(head=model, tail=None, boundary=outputs[0])
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
    where = f"graph '{graph.name}'"
    if handed & set(feeds) or len(handed) != 1:
        first = cpu_nodes[0]
        raise UnsupportedModelError(
            f"the CPU ops ({', '.join(sorted({n.op_type for n in cpu_nodes}))}, first "
            f"'{first.name or first.output[0]}') read {sorted(handed)}, not one tensor computed "
            "by the FC layers",
            where=where,
            fix=BYOC_HINT,
        )
    (boundary,) = handed
    stranded = [n for n in cpu_nodes if n.op_type in ("Gemm", "MatMul")]
    if stranded:
        raise UnsupportedModelError(
            f"FC layer '{stranded[0].name or stranded[0].output[0]}' follows an op EIE does "
            f"not run ({cpu_nodes[0].op_type} '{cpu_nodes[0].name or cpu_nodes[0].output[0]}')",
            where=where,
            fix=BYOC_HINT,
        )
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
