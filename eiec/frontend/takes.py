"""``SafeTakes``: import ONNX Gather as a bounds-safe ``take``.

TVM's ONNX frontend turns Gather into ``take(data, where(i < 0, i + dim, i), mode="fast")``, and
legalising a fast ``take`` (FoldConstant and ``tvm.compile`` do) logs "Warning: Fast mode
segfaults when there are out-of-bounds indices". After that negative-index normalisation, an
index is either in range, where every mode computes the same values, or out of range, which ONNX
declares invalid and where ``fast`` reads out of bounds. ``clip`` is therefore exact on every
valid model and safe on invalid ones, and it legalises silently.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator


@tvm.transform.module_pass(opt_level=0, name="SafeTakes")
class SafeTakes:
    """Rewrites every ``take(..., mode="fast")`` to ``mode="clip"``."""

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        """Apply to every Relax function of ``mod``."""
        rewriter = _TakeRewriter(mod)
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
        return rewriter.builder_.get()


@mutator
class _TakeRewriter(PyExprMutator):
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if (
            isinstance(call.op, tvm.ir.Op)
            and call.op.name == "relax.take"
            and str(call.attrs.mode) == "fast"
        ):
            data, indices = call.args
            return relax.op.take(data, indices, axis=call.attrs.axis, mode="clip")
        return call
