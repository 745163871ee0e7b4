"""Calibration of offloaded functions: their inputs on sample inputs of the whole model.

The compiler picks each buffer's fixed-point format from calibration samples of the program's
input (or, without them, from the assumed ``input_range``). An offloaded function takes an
intermediate tensor of the model, so :func:`attach_calibration` computes it: it builds the
partitioned module's CPU twin (each offloaded function replaced by its plain Relax body, ``main``
also returning the arguments of every offloaded call), runs it on each sample, and attaches the
collected inputs to each single-input offloaded function as the ``eie.calibration`` attribute
(a tensor, so the function's symbol depends on it). Functions with several inputs are compiled
without calibration.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tvm
from tvm import relax
from tvm.ir import IRModule

from eiec.byoc.attrs import ATTR_CALIBRATION, is_offloaded
from eiec.byoc.codegen import inline_function
from eiec.errors import BackendError


def _offloaded_calls(main: relax.Function, offloaded: set[str]) -> list[relax.Call]:
    calls: list[relax.Call] = []

    def visit(expr: relax.Expr) -> None:
        callee = expr.op if isinstance(expr, relax.Call) else None
        if isinstance(callee, relax.GlobalVar) and callee.name_hint in offloaded:
            calls.append(expr)

    relax.analysis.post_order_visit(main.body, visit)
    return calls


def cpu_twin(mod: IRModule) -> tuple[IRModule, list[str]]:
    """The partitioned module with every offloaded function on the CPU and ``main`` returning
    ``(result, *inputs of each single-input offloaded call)``; the symbols of those calls."""
    offloaded = {
        gvar.name_hint
        for gvar, func in mod.functions_items()
        if isinstance(func, relax.Function) and is_offloaded(func)
    }
    twin = IRModule({}, attrs=mod.attrs)
    for gvar, func in mod.functions_items():
        twin[gvar] = inline_function(func) if gvar.name_hint in offloaded else func
    twin = relax.transform.ToNonDataflow()(twin)
    main = twin["main"]
    calls = [c for c in _offloaded_calls(main, offloaded) if len(c.args) == 1]
    outputs = [arg for call in calls for arg in call.args]
    body = main.body
    fields = [body.body, *outputs]
    new_body = relax.SeqExpr(body.blocks, relax.Tuple(fields))
    ret_ty = relax.TupleType([field.ty for field in fields])
    twin["main"] = relax.Function(main.params, new_body, ret_ty, attrs=main.attrs)
    return twin, [call.op.name_hint for call in calls]


def attach_calibration(mod: IRModule, samples: Sequence[np.ndarray]) -> IRModule:
    """``mod`` with each single-input offloaded function carrying its inputs on the samples.

    ``samples`` holds one array per parameter of ``main``, each with the samples stacked along
    a new first axis (one run of ``main`` per sample).
    """
    twin, symbols = cpu_twin(mod)
    if not symbols:
        return mod
    params = mod["main"].params
    if len(samples) != len(params):
        raise BackendError(
            f"calibration has {len(samples)} arrays, main takes {len(params)} inputs",
            where="eiec.byoc.partition_for_eie",
            fix="pass calibration=[samples of each input], samples stacked on the first axis",
        )
    vm = relax.VirtualMachine(tvm.compile(twin, target="llvm"), tvm.cpu())
    collected: dict[str, list[np.ndarray]] = {symbol: [] for symbol in symbols}
    for index in range(len(samples[0])):
        feeds = [tvm.runtime.tensor(np.ascontiguousarray(s[index])) for s in samples]
        result = vm["main"](*feeds)
        for symbol, value in zip(symbols, list(result)[1:], strict=True):
            array = value.numpy()
            collected[symbol].append(array.reshape(-1, array.shape[-1]))
    result_mod = IRModule({}, attrs=mod.attrs)
    for gvar, func in mod.functions_items():
        if gvar.name_hint in collected:
            data = np.concatenate(collected[gvar.name_hint]).astype(np.float32)
            func = func.with_attr(ATTR_CALIBRATION, tvm.runtime.tensor(data))
        result_mod[gvar] = func
    return result_mod
