"""Partition a Relax module for EIE: the offloaded functions carry ``Codegen="eie"``.

``partition_for_eie`` runs ``ConvertToDataflow`` (``FuseOpsByPattern`` only looks inside
dataflow blocks), ``FuseOpsByPattern`` with EIE's patterns, ``MergeCompositeFunctions`` (chains
of EIE layers become one program, activations staying on the machine), ``OffloadRecurrent`` and
``AssignEieSymbols``. Each offloaded function carries the compile options as the ``eie.options``
attribute (JSON), read back by the codegen (``relax.ext.eie``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.ir import IRModule
from tvm.relax.expr_functor import PyExprMutator, mutator

from eiec.byoc.attrs import (
    ATTR_CALIBRATION,
    ATTR_OPTIONS,
    ATTR_TRAIN,
    SYMBOL_PREFIX,
    is_offloaded,
)
from eiec.byoc.calibrate import attach_calibration
from eiec.byoc.codegen import register_codegen
from eiec.byoc.lstm import OffloadRecurrent
from eiec.byoc.options import capacity_of, make_options, options_dict
from eiec.byoc.patterns import Capacity, eie_patterns, ensure_registered, layer_refusal
from eiec.errors import BackendError
from eiec.passes.pass_decorator import eiec_module_pass
from eiec.relax_layers.exprs import static_shape


def symbol_of(func: relax.Function, options_json: str) -> str:
    """A symbol unique to the function's content (weights included) and options.

    Two models in one process never share a symbol unless they compile to the same program.
    """
    digest = hashlib.sha256(f"{tvm_ffi.structural_hash(func)}:{options_json}".encode()).hexdigest()
    return f"{SYMBOL_PREFIX}{digest[:16]}"


@mutator
class _RenameCallees(PyExprMutator):
    """Replace global variables by their new names."""

    def __init__(self, mod: IRModule) -> None:
        super().__init__(mod)
        self.mod = mod
        self.renamed: dict[str, relax.GlobalVar] = {}

    def visit_global_var_(self, op: relax.GlobalVar) -> relax.Expr:
        return self.renamed.get(op.name_hint, op)

    def transform(self, options_json: str) -> IRModule:
        old = []
        for gvar, func in self.mod.functions_items():
            if isinstance(func, relax.Function) and is_offloaded(func):
                func = func.with_attr(ATTR_OPTIONS, options_json)
                symbol = symbol_of(func, options_json)
                func = func.with_attr("global_symbol", symbol)
                self.renamed[gvar.name_hint] = self.builder_.add_func(func, symbol)
                old.append(gvar)
        for gvar, func in self.mod.functions_items():
            if isinstance(func, relax.Function) and not is_offloaded(func):
                self.builder_.update_func(gvar, self.visit_expr(func))
        result = self.builder_.get()
        for gvar in old:
            del result[gvar]
        return result


@eiec_module_pass("AssignEieSymbols")
class AssignEieSymbols:
    """Give each offloaded function its options and a per-content ``global_symbol``
    (``eie_<digest>``), and name its global variable after it.

    ``MergeCompositeFunctions`` derives symbols from op names, so two models would share them
    and the second model's program would run for the first.
    """

    def __init__(self, options_json: str) -> None:
        self.options_json = options_json

    def transform_module(self, mod: IRModule, _ctx: tvm.transform.PassContext) -> IRModule:
        """Rename the offloaded functions and their call sites."""
        return _RenameCallees(mod).transform(self.options_json)


def _local_functions(func: relax.Function) -> list[relax.Function]:
    """The composite functions bound inside an offloaded function."""
    found = []

    def visit(expr: relax.Expr) -> None:
        if isinstance(expr, relax.Function) and expr.attrs and "Composite" in expr.attrs:
            found.append(expr)

    relax.analysis.post_order_visit(func.body, visit)
    return found


def _layer_shape(composite: relax.Function) -> tuple[int, int]:
    """(rows, columns with the bias column) of the layer a composite function computes."""
    matmul, bias = None, False

    def visit(expr: relax.Expr) -> None:
        nonlocal matmul, bias
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            matmul = expr if expr.op.name == "relax.matmul" else matmul
            bias = bias or expr.op.name == "relax.add"

    relax.analysis.post_order_visit(composite.body, visit)
    if matmul is None:
        raise BackendError(
            f"composite function {composite.attrs['Composite']} has no matmul",
            where="eiec.byoc.partition",
        )
    cols, rows = static_shape(matmul.args[1])  # the (K, M) weight, after any transpose
    return rows, cols + bias


def group_refusal(func: relax.Function, capacity: Capacity) -> str | None:
    """Why the layers merged into one offloaded function do not fit the machine together
    (all layers' weights and pointers and all activation vectors share each PE's memories),
    or None."""
    m = capacity.machine
    shapes = [_layer_shape(composite) for composite in _local_functions(func)]
    for rows, cols in shapes:
        if refusal := layer_refusal(rows, cols, capacity):
            return refusal
    if len(shapes) < 2:
        return None
    ptr_bytes = sum((cols + 1) * m.ptr_bits // 8 for _, cols in shapes)
    entries = sum(-(-int(capacity.density * rows * cols) // m.pes) for rows, cols in shapes)
    act_bytes = 2 * sum(-(-cols // m.pes) + -(-rows // m.pes) for rows, cols in shapes)
    if ptr_bytes > m.ptr_sram or entries > m.spmat_sram or act_bytes > m.act_sram:
        return (
            f"{len(shapes)} merged layers need {ptr_bytes} bytes of pointers, about {entries} "
            f"weight entries and {act_bytes} bytes of activations per PE"
        )
    return None


def _offloaded_refusals(mod: IRModule, capacity: Capacity) -> list[str]:
    return [
        f"{gvar.name_hint}: {refusal}"
        for gvar, func in mod.functions_items()
        if isinstance(func, relax.Function) and is_offloaded(func)
        if (refusal := group_refusal(func, capacity))
    ]


def options_to_json(options: Any) -> str:
    """The compile options as canonical JSON (sorted keys): stable across processes."""
    return json.dumps(options_dict(options), sort_keys=True)


def _training_samples(train: Any, calibration: Any) -> np.ndarray:
    """The samples of ``train`` (``{"x": samples of main's input}``), which calibrate too."""
    where = "eiec.byoc.partition_for_eie"
    if not isinstance(train, Mapping) or "x" not in train:
        raise BackendError(
            "train must be {'x': samples of main's input}", where=where, fix="pass train={'x': x}"
        )
    if "y" in train:
        raise BackendError(
            "BYOC trains each offloaded function against its own outputs: labels are not used",
            where=where,
            fix="pass train={'x': x} without y",
        )
    if calibration is not None:
        raise BackendError(
            "give train or calibration, not both: the training samples also calibrate",
            where=where,
            fix="drop calibration=...",
        )
    return np.asarray(train["x"])


def _mark_training(mod: IRModule) -> IRModule:
    """Every offloaded function with calibration inputs marked to train on them."""
    result = IRModule({}, attrs=mod.attrs)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function) and ATTR_CALIBRATION in (func.attrs or {}):
            func = func.with_attr(ATTR_TRAIN, 1)
        result[gvar] = func
    return result


def partition_for_eie(mod: IRModule, **compile_options: Any) -> IRModule:
    """Offload the FC, LSTM and GRU layers EIE can run; the rest stays for the host.

    ``compile_options`` are the fields of ``eiec.compiler.CompileOptions`` (``pes``,
    ``sparsity``, ``bits``...); ``calibration`` holds samples of ``main``'s inputs (an array
    for a one-input ``main``, else a list, samples stacked on a new first axis), from which each
    single-input offloaded function gets its own calibration inputs. ``train={"x": samples}``
    (with ``epochs``, ``seed``) calibrates the same way and trains each such function (prune +
    retrain, share + fine-tune) against its own original outputs on those inputs. Chains of
    consecutive layers become one EIE program. Every layer becomes its own program instead when
    the merged layers would not fit the machine's memories together, or when
    ``MergeCompositeFunctions``
    cannot group the module (TVM 0.27 fails on a call of a private function returning a tuple,
    e.g. an LSTM left on the host).
    """
    ensure_registered()
    register_codegen()
    options = make_options(compile_options)
    capacity = capacity_of(options)
    patterns = eie_patterns(capacity)
    mod = relax.transform.ConvertToDataflow()(mod)
    mod = OffloadRecurrent(capacity)(mod)
    try:
        merged = relax.transform.MergeCompositeFunctions()(
            relax.transform.FuseOpsByPattern(patterns, bind_constants=True)(mod)
        )
    except tvm.error.InternalError:
        merged = None
    if merged is None or _offloaded_refusals(merged, capacity):
        merged = relax.transform.FuseOpsByPattern(
            patterns, bind_constants=True, annotate_codegen=True
        )(mod)
    calibration = compile_options.get("calibration")
    train = compile_options.get("train")
    if train is not None:
        calibration = _training_samples(train, calibration)
    if calibration is not None:
        samples = [calibration] if isinstance(calibration, np.ndarray) else list(calibration)
        merged = attach_calibration(merged, samples, options)
        if train is not None:
            merged = _mark_training(merged)
    result = AssignEieSymbols(options_to_json(options))(merged)
    refusals = _offloaded_refusals(result, capacity)
    if refusals:
        raise BackendError(
            f"offloaded functions do not fit the machine: {'; '.join(refusals)}",
            where="eiec.byoc.partition_for_eie",
            fix="use more PEs (pes=...) or a higher sparsity",
        )
    return result
