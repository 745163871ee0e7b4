"""Read-only facts about an ONNX graph that the support check and the layer finder share, and
ONNX shape inference that does not copy the weights."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
from google.protobuf.message import Message
from onnx import TensorProto, numpy_helper

#: Float initialisers with more elements than this go to ONNX shape inference as dims only.
_WEIGHT_ELEMENTS = 1024
#: The recurrent ONNX ops eiec imports (``eiec.frontend.lstm_checks``).
RECURRENT_ONNX_OPS = ("LSTM", "GRU")


class TensorValues(Mapping[str, np.ndarray]):
    """Initialisers by name, each converted to numpy on first use (a check that only asks
    whether a name is a constant, or for its shape, reads no weights)."""

    def __init__(self, tensors: Mapping[str, onnx.TensorProto] | None = None) -> None:
        self._tensors = dict(tensors or {})
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = numpy_helper.to_array(self._tensors[name])
        return self._arrays[name]

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        self._arrays[name] = value

    def __contains__(self, name: object) -> bool:
        return name in self._arrays or name in self._tensors

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._tensors, *self._arrays]))

    def __len__(self) -> int:
        return len(set(self._tensors) | set(self._arrays))


@dataclass
class GraphFacts:
    """Initialisers, static shapes, producers and consumers of an ONNX graph's tensors."""

    model: onnx.ModelProto
    initializers: TensorValues = field(default_factory=TensorValues)
    shapes: dict[str, tuple[int | str | None, ...]] = field(default_factory=dict)
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)

    @classmethod
    def of(cls, model: onnx.ModelProto) -> GraphFacts:
        """Facts of ``model`` (expects shape inference to have run)."""
        graph = model.graph
        inputs = {i.name for i in graph.input}
        constants = {init.name: init for init in graph.initializer if init.name not in inputs}
        facts = cls(model=model, initializers=TensorValues(constants))
        for init in graph.initializer:
            facts.shapes[init.name] = tuple(int(d) for d in init.dims)
        for info in [*graph.input, *graph.value_info, *graph.output]:
            if info.name in facts.shapes or not info.type.HasField("tensor_type"):
                continue
            tensor = info.type.tensor_type
            if tensor.HasField("shape"):
                facts.shapes[info.name] = tuple(
                    int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None)
                    for d in tensor.shape.dim
                )
        for node in graph.node:
            for name in node.output:
                facts.producer[name] = node
            for name in node.input:
                if name:
                    facts.consumers.setdefault(name, []).append(node)
        return facts

    @property
    def graph_inputs(self) -> list[onnx.ValueInfoProto]:
        """The graph inputs that are fed at run time (not initialisers)."""
        return [i for i in self.model.graph.input if i.name not in self.initializers]

    def is_vector(self, name: str) -> bool:
        """True when ``name`` has a known shape with at most one dimension larger than 1."""
        shape = self.shapes.get(name)
        if shape is None or not all(isinstance(d, int) for d in shape):
            return False
        return sum(1 for d in shape if d != 1) <= 1


#: A support check: the problems of one node (empty when EIE runs it), given the graph's facts.
OpCheck = Callable[[onnx.NodeProto, GraphFacts], list[str]]


def attributes(node: onnx.NodeProto) -> dict[str, object]:
    """The node's attributes as Python values."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def node_label(node: onnx.NodeProto) -> str:
    """How error messages name a node: ``'name' (Op)``, or the op and first output if unnamed."""
    if node.name:
        return f"'{node.name}' ({node.op_type})"
    return f"{node.op_type} -> '{node.output[0]}'"


def infer_shapes(
    model: onnx.ModelProto, *, data_prop: bool = False, weights: bool = True, strict: bool = False
) -> onnx.ModelProto:
    """``onnx.shape_inference.infer_shapes(model, data_prop=data_prop)`` without handing the
    weights to ONNX, which serialises the model and parses it back (seconds for AlexNet's FC).

    Float initialisers of more than ``_WEIGHT_ELEMENTS`` elements go in as name, type and dims,
    all that inference reads of a float tensor (data propagation computes integer shape
    tensors), and get their data back in the result unless ``weights`` is False (for callers
    that only read shapes). ``strict``: also check types, and fail on any node ONNX cannot
    infer (``check_type`` and ``strict_mode``). Raises what ONNX raises.
    """
    large = {init.name: init for init in model.graph.initializer if _is_weight(init)}
    stub = copy_without_data(model, set(large))
    inferred = onnx.shape_inference.infer_shapes(
        stub, data_prop=data_prop, check_type=strict, strict_mode=strict
    )
    if weights:
        for init in inferred.graph.initializer:
            if init.name in large:
                init.CopyFrom(large[init.name])
    return inferred


def annotate_shapes(model: onnx.ModelProto, *, data_prop: bool = False) -> None:
    """Put :func:`infer_shapes`' result into ``model`` itself: everything but the initialisers
    (which inference does not change) is replaced by the inferred model's, so the weights are
    neither copied nor moved. Raises what ONNX raises, leaving ``model`` as it was."""
    inferred = infer_shapes(model, data_prop=data_prop, weights=False)
    graph = model.graph
    for descriptor, _ in graph.ListFields():
        if descriptor.name != "initializer":
            graph.ClearField(descriptor.name)
    _copy_fields(inferred.graph, graph, skip="initializer")
    for descriptor, _ in model.ListFields():
        if descriptor.name != "graph":
            model.ClearField(descriptor.name)
    _copy_fields(inferred, model, skip="graph")


def shape_stub(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` for shape inference only: its float weights without their data
    (:func:`copy_without_data`), as :func:`infer_shapes` hands them to ONNX."""
    return copy_without_data(
        model, {init.name for init in model.graph.initializer if _is_weight(init)}
    )


def _is_weight(init: onnx.TensorProto) -> bool:
    """A float initialiser of more than ``_WEIGHT_ELEMENTS`` elements, stored as raw data."""
    return (
        init.data_type == TensorProto.FLOAT
        and init.HasField("raw_data")
        and math.prod(init.dims) > _WEIGHT_ELEMENTS
    )


def copy_without_data(model: onnx.ModelProto, names: set[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose initialisers named in ``names`` keep only their name, element
    type and dims (no copy of their data), each in its place."""
    stub = onnx.ModelProto()
    _copy_fields(model, stub, skip="graph")
    _copy_fields(model.graph, stub.graph, skip="initializer")
    for init in model.graph.initializer:
        if init.name in names:
            stub.graph.initializer.add(name=init.name, data_type=init.data_type, dims=init.dims)
        else:
            stub.graph.initializer.add().CopyFrom(init)
    return stub


def _copy_fields(source: Message, target: Message, *, skip: str) -> None:
    """Copy every set field of ``source`` but ``skip`` into the empty ``target``."""
    for descriptor, value in source.ListFields():
        if descriptor.name == skip:
            continue
        if descriptor.is_repeated:
            getattr(target, descriptor.name).extend(value)
        elif descriptor.message_type is not None:
            getattr(target, descriptor.name).CopyFrom(value)
        else:
            setattr(target, descriptor.name, value)
