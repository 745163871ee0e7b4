"""``relax.ext.eie``: the codegen ``RunCodegen`` calls for the functions marked ``Codegen="eie"``.

For each function it builds a standalone Relax module (:func:`offloaded_module`: composite
calls inlined, LSTM / GRU functions lifted to module level, as the importer makes them), compiles it
with ``eiec.compiler.compile_relax`` and registers the runner under the function's
``global_symbol``. It returns no runtime module: the VM finds the runners in the global registry
when it starts, so a fresh process must :func:`eiec.byoc.load` the programs first.
:func:`register_codegen` registers it (``partition_for_eie`` and ``RunCodegen`` call it).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import tvm
from tvm import relax
from tvm.ir import GenericConst, IRModule
from tvm.relax.expr_functor import mutator

from eiec.byoc.attrs import (
    ATTR_CALIBRATION,
    ATTR_OPTIONS,
    ATTR_RECURRENT_NAME,
    ATTR_REFERENCE,
    ATTR_TRAIN,
)
from eiec.byoc.offload import Offload, register, registered
from eiec.byoc.options import options_from_json
from eiec.compiler import CompileOptions, compile_relax, compression_passes
from eiec.errors import BackendError, EiecError
from eiec.passes.pass_decorator import run_pass
from eiec.relax_layers.exprs import const
from eiec.relax_layers.fc import LayerConstantRewriter, find_fc_layers, rewrite_layers

_PERMUTE = tvm.ir.Op.get("relax.permute_dims")


def _is_recurrent(func: relax.Function) -> bool:
    return func.attrs is not None and ATTR_RECURRENT_NAME in func.attrs


def _has_recurrent(func: relax.Function) -> bool:
    found = []

    def visit(expr: relax.Expr) -> None:
        if isinstance(expr, relax.Function) and _is_recurrent(expr):
            found.append(expr)

    relax.analysis.post_order_visit(func.body, visit)
    return bool(found)


class _Inliner:
    """Re-emits an offloaded function's body into a block builder: calls of local composite
    functions inlined, local LSTM / GRU functions added to the module as global functions."""

    def __init__(self, bb: relax.BlockBuilder, lift_recurrent: bool) -> None:
        self.bb = bb
        self.lift_recurrent = lift_recurrent

    def seq(self, body: relax.Expr, env: dict[relax.Var, relax.Expr]) -> relax.Expr:
        if not isinstance(body, relax.SeqExpr):
            return self.expr(body, env)
        for block in body.blocks:
            for binding in block.bindings:
                value = binding.value
                if isinstance(value, relax.Function):
                    env[binding.var] = value
                else:
                    env[binding.var] = self.value(value, env)
        return self.expr(body.body, env)

    def value(self, value: relax.Expr, env: dict[relax.Var, relax.Expr]) -> relax.Expr:
        if isinstance(value, relax.Call) and isinstance(env.get(value.op), relax.Function):
            callee = env[value.op]
            args = [self.expr(arg, env) for arg in value.args]
            if _is_recurrent(callee) and self.lift_recurrent:
                name = str(callee.attrs[ATTR_RECURRENT_NAME])
                gvar = self.bb.add_func(callee.without_attr(ATTR_RECURRENT_NAME), name)
                return self.bb.emit(relax.Call(gvar, args))
            inner = dict(zip(callee.params, args, strict=True))
            return self.seq(callee.body, inner)
        result = self.expr(value, env)
        # Constants stay inline: the compiler reads weights from the matmul's arguments.
        return result if isinstance(result, GenericConst) else self.bb.emit(result)

    def expr(self, expr: relax.Expr, env: dict[relax.Var, relax.Expr]) -> relax.Expr:
        if isinstance(expr, relax.Var):
            return env[expr]
        if isinstance(expr, relax.Tuple):
            return relax.Tuple([self.expr(field, env) for field in expr.fields])
        if isinstance(expr, relax.TupleGetItem):
            return relax.TupleGetItem(self.expr(expr.tuple_value, env), expr.index)
        if isinstance(expr, relax.Call):
            args = [self.expr(arg, env) for arg in expr.args]
            if expr.op.same_as(_PERMUTE) and isinstance(args[0], GenericConst):
                # Gemm's transB: the compiler takes matmul(x, W) with W a constant.
                axes = expr.attrs.axes
                value = args[0].value.numpy()
                return const(np.transpose(value, None if axes is None else list(axes)))
            return relax.Call(expr.op, args, expr.attrs)
        if not isinstance(expr, relax.Function | relax.SeqExpr | relax.If):
            return expr  # a leaf: constant, shape, prim value
        raise BackendError(
            f"cannot offload a {type(expr).__name__} expression",
            where="eiec.byoc.codegen",
            fix="report this model: the partitioner offloaded an unexpected expression",
        )


def _row_param(param: relax.Var) -> relax.Var:
    """``param`` with its leading dimensions set to 1 (the program runs one row)."""
    ty = param.ty
    last = ty.shape.values[-1]
    shape = [1] * (len(ty.shape.values) - 1) + [int(last.value)]
    return relax.Var(param.name, relax.TensorType(shape, ty.dtype))


def _build(func: relax.Function, params: list[relax.Var], lift_recurrent: bool) -> IRModule:
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            env: dict[relax.Var, relax.Expr] = dict(zip(func.params, params, strict=True))
            result = _Inliner(bb, lift_recurrent).seq(func.body, env)
            output = bb.emit_output(result)
        bb.emit_func_output(output)
    return relax.transform.CanonicalizeBindings()(bb.get())


def offloaded_module(func: relax.Function) -> tuple[IRModule, bool]:
    """A standalone module whose ``main`` computes ``func``, and whether it runs row by row.

    FC chains are compiled for one row (leading dimensions 1, which may be symbolic in
    ``func``); functions holding an LSTM or GRU keep their shapes.
    """
    rows = not _has_recurrent(func)
    params = [_row_param(p) for p in func.params] if rows else list(func.params)
    return _build(func, params, lift_recurrent=True), rows


def rows_module(mod: IRModule) -> IRModule:
    """``mod``, an FC chain compiled for one row (:func:`offloaded_module`), taking any number
    of rows at once: its parameters' first dimension symbolic (each row's result is the
    same, one run instead of one per row)."""
    main = mod["main"]
    rows = tvm.tirx.Var("rows", "int64")
    params = [
        relax.Var(p.name, relax.TensorType([rows, *p.ty.shape.values[1:]], p.ty.dtype))
        for p in main.params
    ]
    return _build(main, params, lift_recurrent=False)


def inline_function(func: relax.Function) -> relax.Function:
    """``func`` as a plain Relax function for the CPU (composites, LSTMs and GRUs inlined)."""
    params = [relax.Var(p.name, p.ty) for p in func.params]
    main = _build(func, params, lift_recurrent=False)["main"]
    return relax.Function(main.params, main.body, main.ret_ty)


@mutator
class _CompressedRewriter(LayerConstantRewriter):
    """Substitutes the compressed weights."""


def compressed_function(func: relax.Function, options: CompileOptions) -> relax.Function:
    """``func`` for the CPU (:func:`inline_function`) with the weights and biases of its FC
    layers as the compiler compresses them (:func:`compressed_constants`). LSTM and GRU layers
    stay as they are."""
    plain = IRModule({"main": inline_function(func)})
    constants = compressed_constants(func, options)
    return rewrite_layers(plain, constants, _CompressedRewriter)["main"]


def compressed_constants(
    func: relax.Function, options: CompileOptions
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The (K, M) weight and the bias of each FC layer of ``func``, by layer name, as the
    compiler compresses them (pruned and shared, float32) with ``options`` and the function's
    calibration attributes."""
    if ATTR_CALIBRATION in (func.attrs or {}):
        reference = func.attrs[ATTR_REFERENCE].numpy() if ATTR_REFERENCE in func.attrs else None
        options = replace(
            options,
            calibration=func.attrs[ATTR_CALIBRATION].numpy(),
            calibration_reference=reference,
        )
    mod, _ = offloaded_module(func)
    compressed = run_pass(compression_passes(options, {}), mod)
    return {
        layer.name: (np.asarray(layer.weight), layer.bias)
        for layer in find_fc_layers(compressed["main"])
    }


def _port_names(ports: list, params: list[str], role: str, symbol: str) -> tuple[str, ...]:
    names = [port.name for port in ports]
    if sorted(names) == sorted(params):
        return tuple(params)
    if len(names) == len(params):
        return tuple(names)
    raise BackendError(
        f"the program of {symbol} has {role} ports {names}, expected {len(params)}",
        where=symbol,
    )


def compile_function(func: relax.Function, symbol: str) -> Offload:
    """Compile one offloaded function to an EIE program (see the module docstring)."""
    options = options_from_json(str(func.attrs[ATTR_OPTIONS]))
    if ATTR_CALIBRATION in func.attrs:
        options.calibration = func.attrs[ATTR_CALIBRATION].numpy()
        if ATTR_REFERENCE in func.attrs:
            options.calibration_reference = func.attrs[ATTR_REFERENCE].numpy()
        if ATTR_TRAIN in func.attrs:  # distillation on the function's own inputs
            options.train = {"x": options.calibration}
    mod, rows = offloaded_module(func)
    compiled = compile_relax(mod, options)
    program = compiled.program
    params = [p.name for p in mod["main"].params]
    n_out = len(func.ret_ty.fields) if isinstance(func.ret_ty, relax.TupleType) else 1
    outputs = [port.name for port in program.outputs]
    if len(outputs) != n_out:
        raise BackendError(
            f"the program of {symbol} has {len(outputs)} outputs, the function {n_out}",
            where=symbol,
        )
    return Offload(
        symbol=symbol,
        program=program,
        inputs=_port_names(program.inputs, params, "input", symbol),
        outputs=tuple(outputs),
        rows=rows,
        compiled=compiled,
    )


_pending = threading.local()


def take_error() -> EiecError | None:
    """The ``EiecError`` the last codegen call raised (TVM's FFI only passes its text on)."""
    error, _pending.error = getattr(_pending, "error", None), None
    return error


def eie_codegen(
    functions: list[relax.Function], _options: Mapping, _constant_names: Mapping
) -> list:
    """Compile and register every function; returns no runtime module (module docstring)."""
    for func in functions:
        symbol = str(func.attrs["global_symbol"])
        if registered(symbol) is None:
            try:
                offload = compile_function(func, symbol)
            except EiecError as error:
                _pending.error = error
                raise
            register(offload)
    return []


def register_codegen() -> None:
    """Register :func:`eie_codegen` as TVM's ``relax.ext.eie`` (idempotent)."""
    tvm.register_global_func("relax.ext.eie", eie_codegen, override=True)
