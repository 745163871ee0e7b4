"""Calibration of offloaded functions: their inputs on sample inputs of the whole model.

The compiler picks each buffer's fixed-point format from calibration samples of the program's
input (or, without them, from the assumed ``input_range``). An offloaded function takes an
intermediate tensor of the model, so :func:`attach_calibration` computes it: it builds the
partitioned module's CPU twin (each offloaded function replaced by its plain Relax body, ``main``
also returning the arguments of every offloaded call), runs it on each sample, and attaches the
collected inputs to each single-input offloaded function as the ``eie.calibration`` attribute
(a tensor, so the function's symbol depends on it). Functions with several inputs are compiled
without calibration.

With ``options`` whose pruning criterion refits (``...,refit``) the calibration is sequential,
as SparseGPT's: the offloaded functions are taken in the order ``main`` calls them, each one's
calibration inputs are computed with every earlier function replaced by its compressed twin
(:func:`eiec.byoc.codegen.compressed_function`), and the dense model's inputs are attached
beside them (``eie.calibration_reference``): the refit of each layer then matches the original
layer's output from the inputs the compressed model actually gives it, correcting the error of
the layers before it. It costs one CPU build and run of the twin per offloaded function.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tvm
from tvm import relax
from tvm.ir import IRModule

from eiec.byoc.attrs import ATTR_CALIBRATION, ATTR_REFERENCE, is_offloaded
from eiec.byoc.codegen import compressed_function, inline_function
from eiec.compiler import CompileOptions
from eiec.errors import BackendError
from eiec.passes.prune_weights import refits


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


def _collect(
    twin: IRModule, symbols: list[str], samples: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """The inputs of each offloaded call of ``twin`` (:func:`cpu_twin`) over the samples, rows x
    features, float32."""
    vm = relax.VirtualMachine(tvm.compile(twin, target="llvm"), tvm.cpu())
    collected: dict[str, list[np.ndarray]] = {symbol: [] for symbol in symbols}
    for index in range(len(samples[0])):
        feeds = [tvm.runtime.tensor(np.ascontiguousarray(s[index])) for s in samples]
        result = vm["main"](*feeds)
        for symbol, value in zip(symbols, list(result)[1:], strict=True):
            array = value.numpy()
            collected[symbol].append(array.reshape(-1, array.shape[-1]))
    return {
        symbol: np.concatenate(arrays).astype(np.float32) for symbol, arrays in collected.items()
    }


def attach_calibration(
    mod: IRModule, samples: Sequence[np.ndarray], options: CompileOptions | None = None
) -> IRModule:
    """``mod`` with each single-input offloaded function carrying its inputs on the samples
    (sequentially with ``options`` whose criterion refits: module doc).

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
    dense = _collect(twin, symbols, samples)
    attrs = {symbol: {ATTR_CALIBRATION: inputs} for symbol, inputs in dense.items()}
    if options is not None and refits(options.prune):
        ordered = list(dict.fromkeys(symbols))
        current = dense
        for index, symbol in enumerate(ordered):
            if index:
                current = _collect(twin, symbols, samples)
            attrs[symbol] = {ATTR_CALIBRATION: current[symbol], ATTR_REFERENCE: dense[symbol]}
            if index + 1 < len(ordered):
                func = _with_attrs(mod[symbol], attrs[symbol])
                twin[twin.get_global_var(symbol)] = compressed_function(func, options)
    result_mod = IRModule({}, attrs=mod.attrs)
    for gvar, func in mod.functions_items():
        if gvar.name_hint in attrs:
            func = _with_attrs(func, attrs[gvar.name_hint])
        result_mod[gvar] = func
    return result_mod


def _with_attrs(func: relax.Function, attrs: dict[str, np.ndarray]) -> relax.Function:
    for name, value in attrs.items():
        func = func.with_attr(name, tvm.runtime.tensor(value))
    return func
