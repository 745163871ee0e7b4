"""Offload the FC and LSTM layers of any Relax module to EIE within a TVM pipeline (BYOC).

Five lines into an existing pipeline::

    mod = eiec.byoc.partition_for_eie(mod, pes=64, sparsity=0.9)
    mod = eiec.byoc.RunCodegen()(mod)  # relax RunCodegen, then drop the offloaded weights
    ex = tvm.compile(mod, target="llvm")
    vm = relax.VirtualMachine(ex, tvm.cpu())
    with eiec.byoc.profile() as prof: y = vm["main"](x)

Importing this package registers the ``eie`` patterns (the paper's chip) and the ``relax.ext.eie``
codegen.
"""

from __future__ import annotations

from eiec.byoc import codegen as _codegen  # noqa: F401  (registers relax.ext.eie)
from eiec.byoc.partition import AssignEieSymbols, partition_for_eie
from eiec.byoc.patterns import Capacity, dense_refusal, eie_patterns, layer_refusal, register
from eiec.byoc.profile import CallRecord, Profiler, profile
from eiec.byoc.run_codegen import RunCodegen
from eiec.byoc.run_onnx import ByocRun, import_model, run_onnx
from eiec.byoc.store import load, offloaded_symbols, save

register()

__all__ = [
    "AssignEieSymbols",
    "ByocRun",
    "CallRecord",
    "Capacity",
    "Profiler",
    "RunCodegen",
    "dense_refusal",
    "eie_patterns",
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
