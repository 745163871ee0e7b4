"""Build and run helpers of the BYOC flow tests: CPU-only and EIE-offloaded VMs, error bounds."""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax

import eiec.byoc
from eiec.byoc.offload import registered
from eiec.runtime.verify import emulate_with_bounds

#: Compile options of the tests: few PEs (fast to emulate), no pruning beyond the models' zeros.
OPTIONS: dict[str, Any] = {"pes": 4, "sparsity": 0.5}


# LLVM without optimisation: the same numbers, built about 3x faster (one small model per test).
CPU_TARGET = {"kind": "llvm", "opt-level": 0}


def cpu_vm(mod: tvm.IRModule) -> relax.VirtualMachine:
    """The whole module on the CPU."""
    return relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target(CPU_TARGET)), tvm.cpu())


def eie_build(mod: tvm.IRModule, **options: Any) -> tuple[tvm.IRModule, relax.VirtualMachine]:
    """(module after RunCodegen, VM) with the EIE layers offloaded."""
    built = eiec.byoc.RunCodegen()(eiec.byoc.partition_for_eie(mod, **{**OPTIONS, **options}))
    return built, relax.VirtualMachine(
        tvm.compile(built, target=tvm.target.Target(CPU_TARGET)), tvm.cpu()
    )


def run(vm: relax.VirtualMachine, *inputs: np.ndarray) -> np.ndarray:
    """``main`` on numpy inputs, one numpy output."""
    return vm["main"](*(tvm.runtime.tensor(x) for x in inputs)).numpy()


def row_bounds(symbol: str, rows: np.ndarray) -> np.ndarray:
    """Per-element bound on |EIE - float| of the offloaded function ``symbol`` on each row of
    ``rows`` (the fixed-point formats of its program, ``eiec.emulator.bounds``)."""
    offload = registered(symbol)
    assert offload is not None and offload.rows and len(offload.inputs) == 1
    port = offload.program.inputs[0]
    bounds = [
        emulate_with_bounds(offload.program, {port.name: row.reshape(port.shape)}).bounds[
            offload.outputs[0]
        ]
        for row in rows
    ]
    return np.stack([b.reshape(-1) for b in bounds])
