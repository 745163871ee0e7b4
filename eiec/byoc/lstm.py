"""``OffloadRecurrent``: offload the calls of imported LSTM and GRU functions to EIE.

The importer (``eiec/frontend/lstm_converter.py``) makes each ONNX LSTM or GRU a call of a
private module-level function (attribute ``eiec.op = "lstm"`` or ``"gru"``) with the weights as
constant arguments.
A DPL pattern could match the call but ``FuseOpsByPattern`` would leave the callee outside the
offloaded function, where the codegen cannot see it; this pass instead replaces each call whose
W, R and B are float32 constants by a call of a new ``Codegen="eie"`` function of the
remaining (runtime) arguments. That function binds a copy of the callee locally and calls
it with the constants; the codegen lifts it back to module level, the form the compiler reads.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.ir import GenericConst, IRModule
from tvm.relax.expr_functor import PyExprMutator, mutator

from eiec.byoc.attrs import ATTR_RECURRENT_NAME, CODEGEN, is_offloaded
from eiec.byoc.patterns import DTYPE, Capacity, layer_refusal
from eiec.codegen.lstm import program_shape
from eiec.passes.pass_decorator import eiec_module_pass
from eiec.relax_layers.exprs import static_shape
from eiec.relax_layers.lstm import (
    ATTR_DIRECTION,
    ATTR_HIDDEN_SIZE,
    ATTR_LINEAR_BEFORE_RESET,
    ATTR_OP,
    recurrent_function,
)

_W, _R, _B = 1, 2, 3


def recurrent_refusal(call: relax.Call, func: relax.Function, capacity: Capacity) -> str | None:
    """Why an LSTM or GRU call cannot run on EIE, or None when it can. Each direction is one
    layer (LSTM: 4H rows over the I + H + 1 columns [x; h; 1], the paper's form; GRU:
    :func:`eiec.codegen.lstm.program_shape`); all directions share the PEs' memories."""
    x = call.args[0]
    if isinstance(x, GenericConst):
        return "the input sequence is a constant (fold the layer on the host instead)"
    for index, label in ((_W, "W"), (_R, "R"), (_B, "B")):
        arg = call.args[index]
        if not isinstance(arg, GenericConst):
            return f"the weight {label} is not a constant"
        if str(arg.ty.dtype) != DTYPE:
            return f"the weight {label} is {arg.ty.dtype}, not {DTYPE}"
    if str(x.ty.dtype) != DTYPE:
        return f"the input is {x.ty.dtype}, not {DTYPE}"
    attrs = func.attrs
    hidden = int(attrs[ATTR_HIDDEN_SIZE])
    directions = 2 if str(attrs[ATTR_DIRECTION]) == "bidirectional" else 1
    input_size = static_shape(call.args[_W])[2]
    lbr = bool(int(attrs.get(ATTR_LINEAR_BEFORE_RESET, 0)))
    rows, cols = program_shape(str(attrs[ATTR_OP]), lbr, hidden, input_size)
    return layer_refusal(directions * rows, cols, capacity)


def _offload_function(call: relax.Call, func: relax.Function, name: str) -> relax.Function:
    """``Codegen="eie"`` function of the call's non-constant arguments computing the call."""
    local = func.with_attr(ATTR_RECURRENT_NAME, name)
    runtime = [
        (p, arg)
        for p, arg in zip(func.params, call.args, strict=True)
        if not isinstance(arg, GenericConst)
    ]
    params = [relax.Var(p.name, arg.ty) for p, arg in runtime]
    by_param = {p: new for (p, _), new in zip(runtime, params, strict=True)}
    bb = relax.BlockBuilder()
    with bb.function("eie_recurrent", params):
        callee = bb.emit(local, "recurrent")
        args = [by_param.get(p, arg) for p, arg in zip(func.params, call.args, strict=True)]
        result = bb.emit(relax.Call(callee, args))
        bb.emit_func_output(result)
    return bb.get()["eie_recurrent"].with_attr("Codegen", CODEGEN)


@mutator
class _Offloader(PyExprMutator):
    def __init__(self, mod: IRModule, capacity: Capacity) -> None:
        super().__init__(mod)
        self.mod = mod
        self.capacity = capacity
        self.offloaded: set[str] = set()

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        func = recurrent_function(self.mod, call.op)
        if func is None or recurrent_refusal(call, func, self.capacity) is not None:
            return call
        name = call.op.name_hint
        symbol = f"eie_{func.attrs[ATTR_OP]}"
        gvar = self.builder_.add_func(_offload_function(call, func, name), symbol)
        self.offloaded.add(name)
        runtime = [arg for arg in call.args if not isinstance(arg, GenericConst)]
        return relax.Call(gvar, runtime)

    def transform(self) -> IRModule:
        for gvar, func in self.mod.functions_items():
            if not isinstance(func, relax.Function) or is_offloaded(func):
                continue
            if recurrent_function(self.mod, gvar) is not None:
                continue
            self.builder_.update_func(gvar, self.visit_expr(func))
        result = self.builder_.get()
        for gvar in list(result.get_global_vars()):
            if gvar.name_hint in self.offloaded and not _called(result, gvar):
                del result[gvar]
        return result


def _called(mod: IRModule, gvar: relax.GlobalVar) -> bool:
    found = []

    def visit(expr: relax.Expr) -> None:
        if isinstance(expr, relax.GlobalVar) and expr.same_as(gvar):
            found.append(expr)

    for other, func in mod.functions_items():
        if isinstance(func, relax.Function) and not other.same_as(gvar):
            relax.analysis.post_order_visit(func.body, visit)
    return bool(found)


@eiec_module_pass("OffloadRecurrent")
class OffloadRecurrent:
    """Offload every imported LSTM and GRU EIE can run (module docstring)."""

    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity

    def transform_module(self, mod: IRModule, _ctx: tvm.transform.PassContext) -> IRModule:
        """The module with the LSTM / GRU calls replaced by calls of offloaded functions."""
        return _Offloader(mod, self.capacity).transform()
