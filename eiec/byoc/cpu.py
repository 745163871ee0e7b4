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
"""

from __future__ import annotations

import tvm
from tvm import relax

from eiec.training.schedule_rules import Matmul, schedule_matmuls

#: The target of every CPU build (the host CPU, as ``tvm.compile(mod, target="llvm")``).
TARGET = "llvm"


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


def cpu_executable(mod: tvm.IRModule) -> relax.VMExecutable:
    """``mod`` built for the host CPU by TVM's default pipeline, its matmuls scheduled first
    (module doc)."""
    target = tvm.target.Target(TARGET)
    return tvm.compile(scheduled(mod, target), target=target)


def cpu_vm(mod: tvm.IRModule) -> relax.VirtualMachine:
    """A virtual machine running :func:`cpu_executable` of ``mod`` on the host CPU."""
    return relax.VirtualMachine(cpu_executable(mod), tvm.cpu())
