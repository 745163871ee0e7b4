"""Calibration of offloaded functions: their inputs on sample inputs of the whole model.

The compiler picks each buffer's fixed-point format from calibration samples of the program's
input (or, without them, from the assumed ``input_range``). An offloaded function takes an
intermediate tensor of the model, so :func:`attach_calibration` computes it: it builds the
partitioned module's CPU twin (each offloaded function replaced by its plain Relax body, ``main``
also returning the arguments of every offloaded call), runs it on each sample, and attaches the
collected inputs to each single-input offloaded function as the ``eie.calibration`` attribute
(a tensor, so the function's symbol depends on it). Functions with several inputs are compiled
without calibration. The twin (:class:`CpuTwin`) takes the offloaded FC layers' weights and
biases as parameters and is cut into segments at the offloaded calls: it is built once, and new
weights for one function recompute only the segments after its calls.

With ``options`` whose pruning criterion refits (``...,refit``) the calibration is sequential,
as SparseGPT's: the offloaded functions are taken in the order ``main`` calls them, each one's
calibration inputs are computed with every earlier function's weights replaced by its
compressed ones (:func:`eiec.byoc.codegen.compressed_constants`, the weights its program is
compiled from), and the dense model's inputs are attached
beside them (``eie.calibration_reference``): the refit of each layer then matches the original
layer's output from the inputs the compressed model actually gives it, correcting the error of
the layers before it. It costs about two runs of the model per sample (the dense one, then
each segment once more with the weights before it compressed), and one compression of each
function (remembered for its codegen: ``eiec.passes.prune_weights``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.ir import IRModule
from tvm.relax.expr_functor import mutator

from eiec.byoc.attrs import ATTR_CALIBRATION, ATTR_REFERENCE, is_offloaded
from eiec.byoc.codegen import compressed_constants, inline_function
from eiec.byoc.cpu import cpu_vm
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
    """The partitioned module on the CPU (TVM), built once, cut into segments at the offloaded
    calls so that changing one function's weights recomputes only what follows its calls.

    Every offloaded function is replaced by its plain Relax body taking the weights and
    biases of its FC layers as parameters (:meth:`set_constants` swaps them for the
    compressed ones without a new build). ``main``'s bindings up to the last offloaded call
    are cut before each offloaded call: segment ``i`` ends just before call ``i`` and returns
    the values later segments or the calibration read. Each sample keeps the values computed
    so far; :meth:`collect` runs only the segments whose inputs changed since (the same TVM
    operators on the same values: the same results as one run of the whole model).
    ``symbols``: the callees of the single-input offloaded calls, in call order."""

    def __init__(self, mod: IRModule) -> None:
        offloaded = {
            gvar.name_hint
            for gvar, func in mod.functions_items()
            if isinstance(func, relax.Function) and is_offloaded(func)
        }
        main = relax.transform.ToNonDataflow()(mod)["main"]
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
        fed: dict[str, list[relax.Var]] = {}
        for slot in self.slots:
            fed.setdefault(slot.symbol, []).append(slot.param)
        given = [b for block in main.body.blocks for b in block.bindings]
        # (Lifted functions alike are one: the callees' names are read from ``given``.)
        every = [_feed(b, lifted, fed) for b in given]
        cuts = [i for i, b in enumerate(given) if _callee(b) in lifted]
        #: The callee of each offloaded call, in order (call i starts segment i + 1).
        self.callees = [_callee(given[i]) for i in cuts]
        #: (callee, its argument) of each single-input offloaded call, in order.
        self.reads = [
            (_callee(given[i]), given[i].value.args[0])
            for i in cuts
            if len(given[i].value.args) == 1
        ]
        self.symbols = [symbol for symbol, _ in self.reads]
        #: (function, inputs, outputs) of each segment.
        self.segments: list[tuple[str, list[relax.Var], list[relax.Var]]] = []
        read = {var for _, var in self.reads}
        # Values a segment may take: main's inputs, the weights, what bindings compute (not
        # symbolic dimensions, which the tensors' shapes define).
        values = {*main.params, *(slot.param for slot in self.slots), *(b.var for b in every)}
        starts = [0, *cuts]
        for index, (start, stop) in enumerate(zip(starts, cuts, strict=False)):
            part = every[start:stop]
            defined = {b.var: None for b in part}  # (in order)
            used = [v for b in part for v in relax.analysis.free_vars(b.value)]
            later = {v for b in every[stop : cuts[-1]] for v in relax.analysis.free_vars(b.value)}
            inputs = list(dict.fromkeys(v for v in used if v in values and v not in defined))
            outputs = [v for v in defined if v in later or v in read]
            body = relax.SeqExpr([relax.BindingBlock(part)], relax.Tuple(outputs))
            ret_ty = relax.TupleType([v.ty for v in outputs])
            func = relax.utils.copy_with_new_vars(relax.Function(inputs, body, ret_ty))
            name = builder.add_func(func, f"segment_{index}").name_hint  # (alike: one)
            self.segments.append((name, inputs, outputs))
        self.vm = None  # nothing to run without an offloaded call
        if self.segments:
            twin = relax.transform.ToNonDataflow()(builder.get())
            self.vm = cpu_vm(twin)
        self.inputs = list(main.params)
        self.values = {slot.param: tvm.runtime.tensor(slot.initial) for slot in self.slots}
        self._samples: Sequence[np.ndarray] | None = None
        self._states: list[dict[relax.Var, Any]] = []
        self._valid = 0  # segments whose values are up to date

    def set_constants(
        self, symbol: str, constants: dict[str, tuple[np.ndarray, np.ndarray | None]]
    ) -> None:
        """Feed ``symbol``'s FC layers these (K, M) weights and biases (by layer name; a bias
        of None keeps the layer's), cast and shaped as the constants they replace."""
        for slot in self.slots:
            if slot.symbol != symbol or slot.layer not in constants:
                continue
            value = constants[slot.layer][slot.bias]
            if value is not None:
                value = np.asarray(value).astype(slot.dtype, copy=False).reshape(slot.shape)
                self.values[slot.param] = tvm.runtime.tensor(np.ascontiguousarray(value))
        first = next((i for i, callee in enumerate(self.callees) if callee == symbol), None)
        if first is not None:
            self._valid = min(self._valid, first + 1)

    def collect(
        self, samples: Sequence[np.ndarray], symbols: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The inputs of the offloaded calls of ``symbols`` (default: all) over the samples,
        rows x features, float32."""
        wanted = set(self.symbols if symbols is None else symbols)
        if samples is not self._samples:
            self._samples, self._valid = samples, 0
            self._states = [
                {
                    param: tvm.runtime.tensor(np.ascontiguousarray(s[index]))
                    for param, s in zip(self.inputs, samples, strict=True)
                }
                for index in range(len(samples[0]))
            ]
        positions = [i for i, callee in enumerate(self.callees) if callee in wanted]
        need = max(positions, default=-1) + 1
        for state in self._states:
            for index in range(self._valid, need):
                name, inputs, outputs = self.segments[index]
                fed = [state[v] if v in state else self.values[v] for v in inputs]
                result = self.vm[name](*fed)  # type: ignore[index]
                state.update(zip(outputs, list(result), strict=True))
        self._valid = max(self._valid, need)
        collected: dict[str, list[np.ndarray]] = {s: [] for s in self.symbols if s in wanted}
        for state in self._states:
            for symbol, var in self.reads:
                if symbol in wanted:
                    array = state[var].numpy()
                    collected[symbol].append(array.reshape(-1, array.shape[-1]))
        return {
            symbol: np.concatenate(arrays).astype(np.float32)
            for symbol, arrays in collected.items()
        }


def _callee(binding: relax.Binding) -> str | None:
    value = binding.value
    if isinstance(value, relax.Call) and isinstance(value.op, relax.GlobalVar):
        return value.op.name_hint
    return None


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
                current = twin.collect(samples, [symbol])
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
