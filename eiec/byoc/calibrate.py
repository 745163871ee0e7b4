"""Calibration of offloaded functions: their inputs on sample inputs of the whole model.

The compiler picks each buffer's fixed-point format from calibration samples of the program's
input (or, without them, from the assumed ``input_range``). An offloaded function takes an
intermediate tensor of the model, so :func:`attach_calibration` computes it: it builds the
partitioned module's CPU twin (each offloaded function replaced by its plain Relax body, ``main``
also returning the arguments of every offloaded call), runs it on each sample, and attaches the
collected inputs to each single-input offloaded function as the ``eie.calibration`` attribute
(a tensor, so the function's symbol depends on it). Functions with several inputs are compiled
without calibration. The twin takes the offloaded FC layers' weights and biases as parameters
(:class:`CpuTwin`): it is built once, and changing a function's weights costs no new build.

With ``options`` whose pruning criterion refits (``...,refit``) the calibration is sequential,
as SparseGPT's: the offloaded functions are taken in the order ``main`` calls them, each one's
calibration inputs are computed with every earlier function's weights replaced by its
compressed ones (:func:`eiec.byoc.codegen.compressed_constants`, the weights its program is
compiled from), and the dense model's inputs are attached
beside them (``eie.calibration_reference``): the refit of each layer then matches the original
layer's output from the inputs the compressed model actually gives it, correcting the error of
the layers before it. It costs one run of the twin per offloaded function and sample, and one
compression of each function (remembered for its codegen: ``eiec.passes.prune_weights``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax
from tvm.ir import IRModule
from tvm.relax.expr_functor import mutator

from eiec.byoc.attrs import ATTR_CALIBRATION, ATTR_REFERENCE, is_offloaded
from eiec.byoc.codegen import compressed_constants, inline_function
from eiec.compiler import CompileOptions
from eiec.errors import BackendError
from eiec.passes.prune_weights import refits
from eiec.relax_layers.fc import LayerConstantRewriter, find_fc_layers


def _offloaded_calls(main: relax.Function, offloaded: set[str]) -> list[relax.Call]:
    calls: list[relax.Call] = []

    def visit(expr: relax.Expr) -> None:
        callee = expr.op if isinstance(expr, relax.Call) else None
        if isinstance(callee, relax.GlobalVar) and callee.name_hint in offloaded:
            calls.append(expr)

    relax.analysis.post_order_visit(main.body, visit)
    return calls


@mutator
class _LiftedRewriter(LayerConstantRewriter):
    """Reads the FC layers' weights and biases from parameters."""


@dataclass(frozen=True)
class _Slot:
    """One FC weight or bias of an offloaded function, fed to the twin's ``main`` as ``param``
    (its shape and dtype those of the constant it replaces)."""

    symbol: str
    layer: str
    bias: bool
    param: relax.Var
    shape: tuple[int, ...]
    dtype: str
    initial: np.ndarray = field(compare=False, repr=False)


def _lift(func: relax.Function, symbol: str) -> tuple[relax.Function, list[_Slot]]:
    """``func`` (plain Relax) with the weight and bias of each FC layer as parameters after
    its own, and the slots for ``main``'s matching parameters (with the constants' values)."""
    weights: dict[relax.Var, relax.Expr] = {}
    biases: dict[relax.Var, relax.Expr] = {}
    inner: list[relax.Var] = []
    slots: list[_Slot] = []
    for layer in find_fc_layers(func):
        parts = [(layer.var, layer.weight_const, False, weights)]
        if layer.bias_var is not None:
            parts.append((layer.bias_var, layer.bias_const, True, biases))
        for var, constant, bias, table in parts:
            name = f"{layer.name}_{'bias' if bias else 'weight'}"
            table[var] = relax.Var(name, constant.ty)
            inner.append(table[var])
            value = constant.value.numpy()
            param = relax.Var(name, constant.ty)
            slots.append(
                _Slot(symbol, layer.name, bias, param, value.shape, str(value.dtype), value)
            )
    body = _LiftedRewriter(IRModule({"main": func}), weights, biases).visit_expr(func)
    return relax.Function([*body.params, *inner], body.body, body.ret_ty), slots


class CpuTwin:
    """The partitioned module on the CPU (TVM), built once: every offloaded function replaced
    by its plain Relax body, ``main`` also returning the arguments of every single-input
    offloaded call (``symbols``: the callees, in call order) and taking the weights and biases
    of the offloaded FC layers as parameters after the model's inputs, so that
    :meth:`set_constants` swaps a function's weights (for its compressed ones) without a new
    build."""

    def __init__(self, mod: IRModule) -> None:
        offloaded = {
            gvar.name_hint
            for gvar, func in mod.functions_items()
            if isinstance(func, relax.Function) and is_offloaded(func)
        }
        main = relax.transform.ToNonDataflow()(mod)["main"]
        calls = [c for c in _offloaded_calls(main, offloaded) if len(c.args) == 1]
        self.symbols = [call.op.name_hint for call in calls]
        builder = relax.BlockBuilder(
            IRModule(
                {g: f for g, f in mod.functions_items() if g.name_hint not in {*offloaded, "main"}},
                attrs=mod.attrs,
            )
        )
        self.slots: list[_Slot] = []
        lifted: dict[str, relax.GlobalVar] = {}  # new variables: the functions' types change
        for gvar, func in mod.functions_items():
            if gvar.name_hint in offloaded:
                func, slots = _lift(inline_function(func), gvar.name_hint)
                self.slots += slots
                lifted[gvar.name_hint] = builder.add_func(func, gvar.name_hint)
        twin = builder.get()
        fed: dict[str, list[relax.Var]] = {}
        for slot in self.slots:
            fed.setdefault(slot.symbol, []).append(slot.param)
        blocks = [
            relax.BindingBlock([_feed(binding, lifted, fed) for binding in block.bindings])
            for block in main.body.blocks
        ]
        outputs = [arg for call in calls for arg in call.args]
        fields = [main.body.body, *outputs]
        body = relax.SeqExpr(blocks, relax.Tuple(fields))
        ret_ty = relax.TupleType([field.ty for field in fields])
        params = [*main.params, *(slot.param for slot in self.slots)]
        twin[mod.get_global_var("main")] = relax.Function(params, body, ret_ty, attrs=main.attrs)
        twin = relax.transform.ToNonDataflow()(twin)
        self.vm = relax.VirtualMachine(tvm.compile(twin, target="llvm"), tvm.cpu())
        self.values = [tvm.runtime.tensor(slot.initial) for slot in self.slots]

    def set_constants(
        self, symbol: str, constants: dict[str, tuple[np.ndarray, np.ndarray | None]]
    ) -> None:
        """Feed ``symbol``'s FC layers these (K, M) weights and biases (by layer name; a bias
        of None keeps the layer's), cast and shaped as the constants they replace."""
        for index, slot in enumerate(self.slots):
            if slot.symbol != symbol or slot.layer not in constants:
                continue
            value = constants[slot.layer][slot.bias]
            if value is not None:
                value = np.asarray(value).astype(slot.dtype, copy=False).reshape(slot.shape)
                self.values[index] = tvm.runtime.tensor(np.ascontiguousarray(value))

    def collect(self, samples: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs of each offloaded call over the samples, rows x features, float32."""
        collected: dict[str, list[np.ndarray]] = {symbol: [] for symbol in self.symbols}
        for index in range(len(samples[0])):
            feeds = [tvm.runtime.tensor(np.ascontiguousarray(s[index])) for s in samples]
            result = self.vm["main"](*feeds, *self.values)
            for symbol, value in zip(self.symbols, list(result)[1:], strict=True):
                array = value.numpy()
                collected[symbol].append(array.reshape(-1, array.shape[-1]))
        return {
            symbol: np.concatenate(arrays).astype(np.float32)
            for symbol, arrays in collected.items()
        }


def _feed(
    binding: relax.Binding, lifted: dict[str, relax.GlobalVar], fed: dict[str, list[relax.Var]]
) -> relax.Binding:
    """``binding`` with a call of an offloaded function calling its lifted twin (``lifted``,
    by name) with its weights (``fed``) after its own arguments."""
    value = binding.value
    if isinstance(value, relax.Call) and isinstance(value.op, relax.GlobalVar):
        name = value.op.name_hint
        if name in lifted:
            args = [*value.args, *fed.get(name, [])]
            return relax.VarBinding(binding.var, relax.Call(lifted[name], args))
    return binding


def attach_calibration(
    mod: IRModule, samples: Sequence[np.ndarray], options: CompileOptions | None = None
) -> IRModule:
    """``mod`` with each single-input offloaded function carrying its inputs on the samples
    (sequentially with ``options`` whose criterion refits: module doc).

    ``samples`` holds one array per parameter of ``main``, each with the samples stacked along
    a new first axis (one run of ``main`` per sample).
    """
    params = mod["main"].params
    if len(samples) != len(params):
        raise BackendError(
            f"calibration has {len(samples)} arrays, main takes {len(params)} inputs",
            where="eiec.byoc.partition_for_eie",
            fix="pass calibration=[samples of each input], samples stacked on the first axis",
        )
    twin = CpuTwin(mod)
    if not twin.symbols:
        return mod
    dense = twin.collect(samples)
    attrs = {symbol: {ATTR_CALIBRATION: inputs} for symbol, inputs in dense.items()}
    if options is not None and refits(options.prune):
        ordered = list(dict.fromkeys(twin.symbols))
        current = dense
        for index, symbol in enumerate(ordered):
            if index:
                current = twin.collect(samples)
            attrs[symbol] = {ATTR_CALIBRATION: current[symbol], ATTR_REFERENCE: dense[symbol]}
            if index + 1 < len(ordered):
                func = _with_attrs(mod[symbol], attrs[symbol])
                twin.set_constants(symbol, compressed_constants(func, options))
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
