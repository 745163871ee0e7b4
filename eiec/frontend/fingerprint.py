"""Fingerprints of what a program was compiled from (the program's ``.origin`` header).

:func:`model_fingerprint` hashes an ONNX model's structure: its nodes (names, ops, inputs,
outputs, attributes), graph inputs and outputs, and initialisers, where the values of those an
EIE layer may store (inputs of Gemm, MatMul, Add, LSTM and
GRU nodes) count by name, type and shape
only: pruning, weight sharing and retraining change them, and the program holds them;
:func:`weights_fingerprint` hashes those values (which model's weights a program was compiled
from).
:func:`options_text` writes compile options as ``key=value`` words (arrays as a digest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

#: Ops whose initialiser inputs an EIE layer may store (their values are not fingerprinted).
LAYER_OPS = frozenset({"Gemm", "MatMul", "Add", "LSTM", "GRU"})
#: The metadata key of an exported compressed model: the fingerprint of its source model.
ORIGIN_KEY = "eiec.origin"


def _stored(graph: onnx.GraphProto) -> set[str]:
    """The tensors whose values :func:`model_fingerprint` leaves out (inputs of ``LAYER_OPS``)."""
    return {name for node in graph.node if node.op_type in LAYER_OPS for name in node.input}


def weights_fingerprint(model: onnx.ModelProto) -> str:
    """SHA-256 (hex) of the values :func:`model_fingerprint` leaves out: the initialisers EIE
    layers may store, by name, element type, shape and value (the program's ``.origin``
    records it for its source model and for the compressed model compiling it exports)."""
    graph = model.graph
    stored = _stored(graph)
    digest = hashlib.sha256()
    for init in sorted(graph.initializer, key=lambda t: t.name):
        if init.name in stored:
            values = np.ascontiguousarray(numpy_helper.to_array(init))
            digest.update(f"{init.name}:{values.dtype}:{list(values.shape)}:".encode())
            digest.update(values.tobytes())
    return digest.hexdigest()


def model_fingerprint(model: onnx.ModelProto) -> str:
    """SHA-256 (hex) of ``model``'s structure (module docstring)."""
    graph = model.graph
    stored = _stored(graph)
    digest = hashlib.sha256()
    for part in (*graph.node, *graph.input, *graph.output):
        digest.update(part.SerializeToString(deterministic=True))
    for init in sorted(graph.initializer, key=lambda t: t.name):
        if init.name in stored:
            digest.update(f"{init.name}:{init.data_type}:{list(init.dims)}".encode())
        else:
            digest.update(init.SerializeToString(deterministic=True))
    return digest.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """A short digest of an array's dtype, shape and bytes."""
    data = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{data.dtype}:{data.shape}".encode() + data.tobytes())
    return "sha256:" + digest.hexdigest()[:16]


def options_text(options: Mapping[str, Any]) -> str:
    """``key=value`` words, in the mapping's order; arrays as :func:`array_digest`, mappings as
    ``{k:v,...}``, None left out."""
    return " ".join(
        f"{key.replace('_', '-')}={_value(value)}"
        for key, value in options.items()
        if value is not None
    )


def _value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return array_digest(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_value(v)}" for k, v in value.items()) + "}"
    return str(value)
