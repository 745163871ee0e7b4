"""Offload the FC and LSTM layers of any Relax module to EIE within a TVM pipeline (BYOC).

Five lines into an existing pipeline::

    mod = eiec.byoc.partition_for_eie(mod, pes=64, sparsity=0.9)
    mod = eiec.byoc.RunCodegen()(mod)  # relax RunCodegen, then drop the offloaded weights
    ex = tvm.compile(mod, target="llvm")
    vm = relax.VirtualMachine(ex, tvm.cpu())
    with eiec.byoc.profile() as prof: y = vm["main"](x)

``partition_for_eie`` registers the ``eie`` patterns (the paper's chip) in TVM's pattern registry
and the ``relax.ext.eie`` codegen; :func:`ensure_registered` registers the patterns alone.
"""

from __future__ import annotations

from eiec.byoc.partition import AssignEieSymbols, partition_for_eie
from eiec.byoc.patterns import (
    Capacity,
    dense_refusal,
    eie_patterns,
    ensure_registered,
    layer_refusal,
    register,
)
from eiec.byoc.profile import CallRecord, Profiler, profile
from eiec.byoc.run_codegen import RunCodegen
from eiec.byoc.run_onnx import ByocRun, import_model, run_onnx
from eiec.byoc.store import load, offloaded_symbols, save

__all__ = [
    "AssignEieSymbols",
    "ByocRun",
    "CallRecord",
    "Capacity",
    "Profiler",
    "RunCodegen",
    "dense_refusal",
    "eie_patterns",
    "ensure_registered",
    "import_model",
    "layer_refusal",
    "load",
    "offloaded_symbols",
    "partition_for_eie",
    "profile",
    "register",
    "run_onnx",
    "save",
]
