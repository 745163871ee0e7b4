"""Run a whole ONNX model with its FC/LSTM layers on EIE and everything else on the CPU.

The path for models with ops EIE does not run anywhere in the graph (convolutions in front, a
Softmax/ArgMax tail, element-wise ops between layers): import (LSTM-aware, ``ArrayFeatureExtractor``
rewritten), ``partition_for_eie``, ``RunCodegen``, ``tvm.compile``, then one VM run per sample
under a profiler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import tvm

from eiec.byoc.cpu import cpu_vm
from eiec.byoc.partition import partition_for_eie
from eiec.byoc.profile import Profiler, profile
from eiec.byoc.run_codegen import RunCodegen
from eiec.frontend.canonicalize import batch_of_one
from eiec.frontend.checks import check_inputs
from eiec.frontend.compat import tvm_compatible
from eiec.frontend.feeds import model_feeds
from eiec.frontend.load import load_model
from eiec.frontend.tvm_import import import_onnx


@dataclass
class ByocRun:
    """The outputs (by ONNX output name, samples stacked on the first axis), the profile of the
    offloaded calls, and the module after ``RunCodegen`` (for :func:`eiec.byoc.save`)."""

    outputs: dict[str, np.ndarray]
    profile: Profiler
    module: tvm.IRModule


def import_model(model: str | onnx.ModelProto) -> tvm.IRModule:
    """The Relax module of an ONNX model (file or proto), weights as constants."""
    return import_onnx(tvm_compatible(load_model(model)))


def run_onnx(
    model: str | onnx.ModelProto,
    inputs: Mapping[str, np.ndarray] | np.ndarray,
    **compile_options: Any,
) -> ByocRun:
    """Run ``model`` on every sample of ``inputs`` (the first axis of each array is the batch;
        each sample keeps a leading axis of 1) with the FC/LSTM layers offloaded to EIE. A model
    whose inputs fix a batch other than 1 runs at batch 1
    (:func:`eiec.frontend.canonicalize.batch_of_one`)."""
    proto = batch_of_one(load_model(model), "eiec.byoc.run_onnx")
    check_inputs(proto, inputs, "eiec.byoc.run_onnx", batch_axis=0)
    mod = import_model(proto)
    built = RunCodegen()(partition_for_eie(mod, **compile_options))
    vm = cpu_vm(built)  # the CPU's ops built with their matmuls scheduled (same bits), cached
    feeds = model_feeds(proto, inputs)
    names = [out.name for out in proto.graph.output]
    collected: list[list[np.ndarray]] = [[] for _ in names]
    with profile() as prof:
        for index in range(len(feeds[0])):
            result = vm["main"](*(tvm.runtime.tensor(f[index : index + 1]) for f in feeds))
            values = list(result) if len(names) > 1 else [result]
            for out, value in zip(collected, values, strict=True):
                out.append(value.numpy())
    outputs = {name: np.concatenate(out) for name, out in zip(names, collected, strict=True)}
    return ByocRun(outputs=outputs, profile=prof, module=built)
