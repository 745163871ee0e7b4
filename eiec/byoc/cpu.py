"""Builds of Relax modules for the host CPU that compute the bits of ``tvm.compile(mod,
target="llvm")``, faster: the CPU twin of the calibration, the compressed functions the
offloaded calls are checked against, and the CPU reference of a whole model.

``tvm.compile``'s default pipeline (``relax.pipeline.default_build_pipeline``: legalise, no
fusion) leaves each matmul a naive loop nest. :func:`cpu_executable` legalises first (after
the same sampling and sort/scan dispatch), schedules the matmul-like reductions with
``eiec.training.schedule_rules.Matmul`` on one thread, then runs that same default pipeline
(which finds them legalised). The rule tiles and vectorises but still sums every output
element over ``k`` in ascending order from zero, one rounding per product and per addition, so
the results are the same bits (about 10x faster on a [1280, 512] x [512, 128] layer); dlight's
CPU GEMV and reduction rules, which split reductions, are not used. One thread: the checks run
beside the emulator on a shared machine, and the default build is serial too.

Builds are kept across processes in ``$XDG_CACHE_HOME/eiec/cpu`` (``eiec.isa.cache``) as shared
libraries keyed by the module (its text and structural hash, constants included), the target,
TVM's version and this module's and the schedule rules' source: a run of a model it has run
before loads its CPU reference and calibration twin instead of building and JIT-compiling them.
A miss costs about what the JIT would (the library is compiled to object code instead, then
linked); ``EIEC_NO_CACHE=1`` turns the cache off, and an unreadable, unwritable or damaged
cache only costs the build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tvm
import tvm_ffi
from tvm import relax

from eiec.isa import cache
from eiec.training import schedule_rules
from eiec.training.schedule_rules import Matmul, schedule_matmuls

#: The target of every CPU build (the host CPU, as ``tvm.compile(mod, target="llvm")``).
TARGET = "llvm"
#: Size limit of the cached builds: the least recently used are removed beyond it.
CACHE_LIMIT = 256 << 20


def scheduled(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """``mod`` legalised as the default pipeline legalises it, its matmul-like PrimFuncs
    scheduled in their order (module doc)."""
    with target:
        legal = tvm.transform.Sequential(
            [
                relax.backend.DispatchSampling(),
                relax.backend.DispatchSortScan(),
                relax.transform.LegalizeOps(),
            ]
        )(mod)
        return schedule_matmuls(legal, (Matmul(parallel=False),))


def cpu_executable(mod: tvm.IRModule) -> Any:
    """``mod`` built for the host CPU by TVM's default pipeline, its matmuls scheduled first,
    or loaded from eiec's cache (module doc): a VM executable or a loaded library, which
    ``relax.VirtualMachine`` both take."""
    target = tvm.target.Target(TARGET)
    path, key = _cache_entry(mod, target)
    if path is not None:
        loaded = cache.load_library(path, key)
        if loaded is not None:
            return loaded
    executable = tvm.compile(scheduled(mod, target), target=target)
    if path is not None:
        cache.store_library(executable, path, key, CACHE_LIMIT)
        loaded = cache.load_library(path, key)  # (object code already: no JIT)
        if loaded is not None:
            return loaded
    return executable


def _cache_entry(mod: tvm.IRModule, target: tvm.target.Target) -> tuple[Path | None, str]:
    """Where the build of ``mod`` is cached and its key; no path when the cache is off."""
    if not cache.enabled():
        return None, ""
    try:
        folder = cache.cache_dir() / "cpu"
    except RuntimeError:  # no home directory
        return None, ""
    sources = [Path(__file__), Path(schedule_rules.__file__)]
    # The text omits constants' values; the structural hash covers them.
    key = cache.digest(
        mod.script(),
        str(tvm_ffi.structural_hash(mod)),
        str(target),
        tvm.__version__,
        cache.files_digest(sources),
    )
    return folder / f"{key[:32]}.so", key


def cpu_vm(mod: tvm.IRModule) -> relax.VirtualMachine:
    """A virtual machine running :func:`cpu_executable` of ``mod`` on the host CPU."""
    return relax.VirtualMachine(cpu_executable(mod), tvm.cpu())
