"""The BYOC patterns of EIE: a fully connected layer with a constant weight, + bias, + ReLU.

A layer is ``matmul(x, W)`` or ``matmul(x, permute_dims(W))`` (what ``from_onnx`` makes of
``Gemm`` with ``transB=1``) with ``W`` a 2-D constant, optionally followed by ``add(., b)`` with a
constant bias and by ``nn.relu``. The check function refuses what the machine cannot run: a
weight or bias that is not a float32 constant, a constant input (the whole layer folds to a
constant on the host), a layer whose weights, pointers or activations do not fit one PE's
memories (:func:`layer_refusal`).

LSTM and GRU layers are not a DPL pattern: the importer makes each of them a call of a private
module-level function, which ``FuseOpsByPattern`` would leave outside the offloaded function;
``eiec.byoc.partition.OffloadRecurrent`` offloads them instead.

Priorities: ``FuseOpsByPattern`` tries earlier patterns first, while the registry's
``register_patterns`` gives later patterns priority (``get_patterns_with_prefix`` returns them
highest first). :func:`eie_patterns` lists them highest first (the biggest match wins) and
:func:`register` registers them in reverse, so both orders agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import tvm
from tvm import relax
from tvm.ir import GenericConst
from tvm.relax.backend import pattern_registry
from tvm.relax.dpl import DFPattern, is_const, is_op, wildcard
from tvm.relax.transform import FusionPattern, PatternCheckContext

from eiec.frontend.ops import DENSE_PATTERNS
from eiec.isa.program import Machine
from eiec.relax_layers.exprs import static_shape

PREFIX = "eie"
#: The pattern names, as the op table declares them (biggest first).
DENSE_BIAS_RELU, DENSE_BIAS, DENSE_RELU, DENSE = DENSE_PATTERNS

#: The dtype EIE's host interface takes and returns (activations are 16-bit fixed point inside).
DTYPE = "float32"


@dataclass(frozen=True)
class Capacity:
    """What one layer may occupy: the machine's per-PE memories and the expected weight density
    (1 - sparsity) the compiler prunes to."""

    machine: Machine = field(default_factory=Machine)
    density: float = 0.1


def layer_refusal(rows: int, cols: int, capacity: Capacity) -> str | None:
    """Why a ``rows`` x ``cols`` layer (bias column included) cannot be stored on the machine,
    or None when it fits.

    Pointers and activations are exact: ``cols + 1`` pointers per PE; the input and output
    vectors, one 16-bit word per element, spread over the PEs. Weights are an estimate: the
    non-zero entries (``density * rows * cols``) spread evenly, one byte each; the compiler's
    verifier makes the exact check (padding entries, load imbalance) when the program is built.
    """
    m = capacity.machine
    ptr_bytes = (cols + 1) * m.ptr_bits // 8
    if ptr_bytes > m.ptr_sram:
        return (
            f"{cols} columns need {ptr_bytes} bytes of pointers per PE, "
            f"over the {m.ptr_sram}-byte pointer SRAM"
        )
    act_bytes = 2 * (math.ceil(cols / m.pes) + math.ceil(rows / m.pes))
    if act_bytes > m.act_sram:
        return (
            f"input and output vectors ({cols} + {rows} words) need {act_bytes} bytes per PE, "
            f"over the {m.act_sram}-byte activation SRAM"
        )
    entries = math.ceil(capacity.density * rows * cols / m.pes)
    if entries > m.spmat_sram:
        return (
            f"{rows}x{cols} weights at density {capacity.density:g} need about {entries} "
            f"entries per PE, over the {m.spmat_sram}-byte sparse-matrix SRAM"
        )
    return None


def _dtype(expr: relax.Expr) -> str | None:
    ty = expr.ty
    return str(ty.dtype) if isinstance(ty, relax.TensorType) else None


def _last_dim(expr: relax.Expr) -> int | None:
    """The static last dimension of a tensor whose rank is known (leading dims may be symbolic:
    a batch the runner splits into rows)."""
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None or len(ty.shape.values) == 0:
        return None
    last = ty.shape.values[-1]
    return int(last.value) if isinstance(last, tvm.tirx.IntImm) else None


def dense_refusal(annotated: Mapping[str, relax.Expr], capacity: Capacity) -> str | None:
    """Why a matched layer cannot run on EIE, or None when it can.

    ``annotated`` holds the pattern's annotations: ``input``, ``matmul``, ``weight`` or
    ``weight_t`` (+ ``permute``), optionally ``bias`` and ``root`` (the whole match).
    """
    x = annotated["input"]
    if isinstance(x, GenericConst):
        return "the input is a constant (fold the layer on the host instead)"
    transposed = "weight_t" in annotated
    w = annotated["weight_t"] if transposed else annotated["weight"]
    if not isinstance(w, GenericConst):
        return "the weight is not a constant"
    for label, expr in (("input", x), ("weight", w), ("result", annotated["matmul"])):
        if _dtype(expr) != DTYPE:
            return f"the {label} is {_dtype(expr)}, not {DTYPE}"
    w_shape = static_shape(w)
    if w_shape is None or len(w_shape) != 2:
        return f"the weight has shape {w_shape}, not a matrix"
    if transposed:
        axes = annotated["permute"].attrs.axes
        if axes is not None and [int(a) for a in axes] != [1, 0]:
            return f"the weight is permuted by {[int(a) for a in axes]}, not transposed"
        rows, cols = w_shape
    else:
        cols, rows = w_shape
    if _last_dim(x) != cols:
        return f"the input's last dimension is not the static {cols} the weight takes"
    bias = annotated.get("bias")
    if bias is not None:
        if not isinstance(bias, GenericConst) or _dtype(bias) != DTYPE:
            return f"the bias is not a {DTYPE} constant"
        b_shape = static_shape(bias)
        if b_shape is None or b_shape[-1:] != (rows,) or math.prod(b_shape) != rows:
            return f"the bias of shape {b_shape} does not add one value per output ({rows})"
    return layer_refusal(rows, cols + (bias is not None), capacity)


def _dense_pattern(bias: bool, relu: bool) -> tuple[DFPattern, dict[str, DFPattern]]:
    x, w, w_t = wildcard(), is_const(), is_const()
    permute = is_op("relax.permute_dims")(w_t)
    matmul = is_op("relax.matmul")(x, w | permute)
    annotations = {"input": x, "weight": w, "weight_t": w_t, "permute": permute, "matmul": matmul}
    root = matmul
    if bias:
        annotations["bias"] = b = is_const()
        root = is_op("relax.add")(root, b)
    if relu:
        root = is_op("relax.nn.relu")(root)
    annotations["root"] = root
    return root, annotations


#: (name, with bias, with relu), highest priority first.
_DENSE_FORMS = (
    (DENSE_BIAS_RELU, True, True),
    (DENSE_BIAS, True, False),
    (DENSE_RELU, False, True),
    (DENSE, False, False),
)


def _entries(capacity: Capacity) -> list[tuple]:
    """(name, pattern, annotations, check) of each pattern, highest priority first."""

    def check(context: PatternCheckContext) -> bool:
        return dense_refusal(context.annotated_expr, capacity) is None

    entries = []
    for name, bias, relu in _DENSE_FORMS:
        pattern, annotations = _dense_pattern(bias, relu)
        entries.append((name, pattern, annotations, check))
    return entries


def eie_patterns(capacity: Capacity = Capacity()) -> list[FusionPattern]:
    """EIE's fusion patterns, highest priority first (the order ``FuseOpsByPattern`` wants),
    checked against ``capacity``."""
    return [FusionPattern(*entry) for entry in _entries(capacity)]


def register(capacity: Capacity = Capacity()) -> None:
    """Register :func:`eie_patterns` (the paper's chip by default) in TVM's pattern registry
    under the ``eie`` prefix. The registry gives later entries priority, hence the reversal."""
    pattern_registry.register_patterns(_entries(capacity)[::-1])


def ensure_registered() -> None:
    """:func:`register` the paper's chip's patterns unless ``eie`` patterns are registered."""
    if not pattern_registry.get_patterns_with_prefix(PREFIX):
        register()
