"""The front end in one call: ONNX file -> checked, folded, canonical model -> Relax module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
import tvm

from eiec.frontend.canonicalize import InputSpec, canonicalize, fix_batch
from eiec.frontend.fold import fold_constants
from eiec.frontend.importer import import_canonical
from eiec.frontend.layers import OnnxLayer, find_onnx_layers
from eiec.frontend.load import LoadedModel, load_model
from eiec.frontend.ops import BYOC_HINT, CHECKS
from eiec.frontend.support import check_supported


@dataclass
class ImportedModel:
    """An ONNX model ready for the passes.

    ``model`` is the canonical ONNX graph (batch 1, constants folded, Dropout as Identity, Gemm
    alpha/beta in the initialisers); ``original`` the model as loaded.
    """

    source: str
    original: onnx.ModelProto
    model: onnx.ModelProto
    inputs: list[InputSpec]
    outputs: list[str]
    layers: list[OnnxLayer]
    module: tvm.IRModule


def read_onnx(model: str | Path | onnx.ModelProto | LoadedModel) -> ImportedModel:
    """Load, check, fold, check support, canonicalise and import ``model`` (a
    :class:`eiec.frontend.load.LoadedModel` is not loaded or checked again)."""
    proto = load_model(model)
    if isinstance(model, LoadedModel):
        source = model.source
    else:
        source = str(model) if not isinstance(model, onnx.ModelProto) else "<model>"
    batch1, inputs = fix_batch(proto, source)  # the one copy of the model; the rest in place
    folded = fold_constants(batch1, copy=False)
    check_supported(folded, source, CHECKS, BYOC_HINT)
    canonical = canonicalize(folded, copy=False)
    layers = find_onnx_layers(canonical)
    module = import_canonical(canonical, layers)
    outputs = [o.name for o in canonical.graph.output]
    return ImportedModel(source, proto, canonical, inputs, outputs, layers, module)
