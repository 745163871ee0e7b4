"""LowerToEIE: a Relax function of FC layers with shared weights -> an EIE ``Program``.

The pass walks ``main``'s bindings in order and dispatches each call on its operator name to a
lowering in ``LOWERINGS``; lowerings read and produce *values*:

- ``Activation``: a vector held in a program buffer (with its calibration samples and its
  analytic bound, which decide the buffer's format);
- ``PendingLayer``: a ``matmul`` with its bias and ReLU fused in but not yet written back;
- ``Constant``: a constant tensor.

``matmul`` makes a pending layer, the layer's bias ``add`` and ``nn.relu`` fuse into it, and any
other use materialises it: ``load-codebook``, ``broadcast-activation SRC, #1``,
``sparse-column-mac``, ``(relu-)writeback`` into a new buffer. Reshape-like ops (``reshape``,
``permute_dims`` of a vector, ``astype`` to float32) alias the value. Other tracks add ops by
registering a lowering: ``@register_lowering(key)``, a function of
``(ctx: LoweringContext, binding: relax.VarBinding) -> value`` (a tuple of values for a tuple
result, which ``TupleGetItem`` bindings index) working on ``ctx.asm``. The key is the operator
name (``relax.matmul``) or, for a call of a module function, its ``eiec.op`` attribute
(``lstm``).

Fixed-point formats (documented with their error bound in ``eiec/FIXED_POINT.md``): a codebook
gets the largest fraction-bit count holding its max-abs; a buffer's format holds the max-abs of
its values over the calibration inputs times ``CALIBRATION_HEADROOM`` when calibration inputs are
given, else its analytic bound: inputs ``|x| <= input_range``, a layer's output
``|y_i| <= sum_j |Wq_ij| * bound(x_j) + |bq_i|`` with the stored (rounded) weights, each
bound rounded to its buffer's grid (ReLU keeps the bound); such a format never saturates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import tvm
from tvm import relax

from eiec.errors import CompileError, UnsupportedModelError
from eiec.isa.builder import codebook_of, codes_of
from eiec.isa.fixed import dequantize, frac_for_range
from eiec.isa.program import (
    CODEBOOK_SIZE,
    BroadcastActivation,
    Halt,
    LoadCodebook,
    Machine,
    One,
    Port,
    Program,
    ReluWriteback,
    SparseColumnMac,
    View,
    Writeback,
)
from eiec.passes.assembly import CALIBRATION_HEADROOM, ProgramAssembly
from eiec.passes.fc_layers import FcLayer, bindings, constant_value, find_fc_layers, op_name
from eiec.passes.pass_decorator import eiec_module_pass

# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    """A vector in buffer ``buffer`` with the Relax ``shape`` it has at this point.

    ``samples`` (S x n) are its values for the calibration inputs, computed in float64 with the
    compressed weights; ``bound`` (n,) bounds its magnitude analytically (the worst case);
    ``rms`` (n,) bounds its root mean square under FIXED_POINT.md's statistical assumption
    (None: ``bound``).
    """

    buffer: str
    shape: tuple[int, ...]
    samples: np.ndarray | None
    bound: np.ndarray
    rms: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def rms_or_bound(self) -> np.ndarray:
        """``rms``, or ``bound`` where none was derived (a bound on the magnitude is one on
        the root mean square)."""
        return self.bound if self.rms is None else self.rms


@dataclass(frozen=True)
class PendingLayer:
    """``relu?(source @ W + bias?)``, not yet emitted."""

    layer: FcLayer
    source: Activation
    shape: tuple[int, ...]
    with_bias: bool = False
    relu: bool = False


@dataclass(frozen=True)
class Constant:
    """A constant tensor."""

    value: np.ndarray


Value = Activation | PendingLayer | Constant | tuple


# --- the context the lowerings work in --------------------------------------------------------


@dataclass
class LoweringContext:
    """State of one lowering: the assembly, the value of every Relax var, the FC layers."""

    asm: ProgramAssembly
    mod: tvm.IRModule
    layers: dict[relax.Var, FcLayer]
    bias_of: dict[relax.Var, FcLayer]
    input_range: float
    calibrated: bool
    env: dict[relax.Var, Value] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)

    def value(self, expr: relax.Expr) -> Value:
        """The value of an argument."""
        if isinstance(expr, relax.Var):
            return self.env[expr]
        array = constant_value(expr)
        if array is not None:
            return Constant(array)
        raise UnsupportedModelError(f"argument {type(expr).__name__} is not supported")

    def activation(self, expr: relax.Expr | Value) -> Activation:
        """The argument as a buffer-held vector, emitting a pending layer if needed."""
        value = expr if isinstance(expr, Activation | PendingLayer | Constant) else self.value(expr)
        if isinstance(value, PendingLayer):
            return self.materialize(value)
        if isinstance(value, Constant):
            raise UnsupportedModelError(
                "a constant is used as an activation; EIE computes on input-derived vectors"
            )
        return value

    def choose_format(
        self, samples: np.ndarray | None, bound: np.ndarray, spread: np.ndarray | None = None
    ) -> tuple[int, float, str]:
        """(frac, max_abs, source) of a buffer holding values with these samples / worst-case
        bound / statistical bound (``spread``, used where it is below the worst case)."""
        if self.calibrated and samples is not None:
            max_abs = float(np.abs(samples).max(initial=0.0))
            return frac_for_range(max_abs, headroom=CALIBRATION_HEADROOM), max_abs, "calibration"
        max_abs = float(bound.max(initial=0.0))
        if spread is not None and float(spread.max(initial=0.0)) < max_abs:
            max_abs = float(spread.max(initial=0.0))
            return frac_for_range(max_abs), max_abs, "spread"
        return frac_for_range(max_abs), max_abs, "bound"

    def materialize(self, pending: PendingLayer) -> Activation:
        """Emit a pending layer into a new buffer; returns the buffer's activation."""
        layer, source = pending.layer, pending.source
        weight = layer.weight  # (K, M) in the model's float type; the codebook is float64
        bias = layer.bias_vector() if pending.with_bias else None
        columns = weight.T if bias is None else np.concatenate([weight.T, bias[:, None]], axis=1)
        codebook = layer_codebook(layer.name, columns)
        codes = codes_of(columns, codebook)
        eie_layer = self.asm.add_layer(layer.name, codes, codebook, has_bias=bias is not None)

        # Formats come from float64 arithmetic on the (exactly widened) weights; the bound from
        # the stored words (a codebook word may round up), the bias column's #1 included.
        samples = None if source.samples is None else source.samples @ weight.astype(np.float64)
        stored = np.abs(dequantize(eie_layer.codebook.values, eie_layer.codebook.frac))
        bound = stored[codes] @ np.append(source.bound, 1.0)[: codes.shape[1]]
        spread, rms = spread_bound(stored[codes], source.rms_or_bound, has_bias=bias is not None)
        if bias is not None:
            samples = None if samples is None else samples + bias.astype(np.float64)
        if pending.relu and samples is not None:
            samples = np.maximum(samples, 0.0)
        out = self.asm.add_buffer(
            f"{layer.name}.out", layer.rows, self.choose_format(samples, bound, spread)
        )
        bound = on_grid(bound, out.frac)
        sources = (_whole(self.asm, source.buffer),) + ((One(),) if bias is not None else ())
        writeback = ReluWriteback if pending.relu else Writeback
        self.asm.emit(
            LoadCodebook(eie_layer.name),
            BroadcastActivation(sources),
            SparseColumnMac(eie_layer.name),
            writeback(View(out.name)),
        )
        self.written[layer.name] = out.name
        return Activation(out.name, pending.shape, samples, bound, np.minimum(rms, bound))


#: The statistical bound's safety factor: a pre-activation is taken to stay within
#: RANGE_SAFETY root-mean-squares of its bias (FIXED_POINT.md, "Formats without calibration").
RANGE_SAFETY = 4.0


def spread_bound(
    weights: np.ndarray, rms: np.ndarray, *, has_bias: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(statistical bound, root mean square) of each row of ``|weights| @ [a; 1]``.

    ``weights``: the stored |W| (M x K, the bias column last when ``has_bias``); ``rms``: the
    inputs' root mean squares. The pre-activation of row i has mean square at most
    ``b_i**2 + sum_j W_ij**2 rms_j**2`` when the inputs are uncorrelated with the row's signs,
    and stays within ``|b_i| + RANGE_SAFETY * sqrt(sum_j W_ij**2 rms_j**2)``.
    """
    matrix = weights[:, :-1] if has_bias else weights
    bias = weights[:, -1] if has_bias else np.zeros(weights.shape[0])
    spread = np.sqrt(matrix**2 @ rms**2)
    return bias + RANGE_SAFETY * spread, np.sqrt(bias**2 + spread**2)


def on_grid(bound: np.ndarray, frac: int) -> np.ndarray:
    """``bound`` rounded half up to ``frac`` fraction bits: a bound on the stored words of values
    within ``bound`` (the rounding of an input or of a writeback may add half an LSB)."""
    return np.floor(bound * 2.0**frac + 0.5) * 2.0**-frac


def _whole(asm: ProgramAssembly, name: str) -> View:
    buffer = asm.buffers[name]
    if buffer.pitch == buffer.cols or buffer.rows > 1:
        return View(name)
    return View(name, 0)


def layer_codebook(name: str, columns: np.ndarray) -> np.ndarray:
    """The real codebook of layer ``name``'s shared weights (:func:`codebook_of`); CompileError
    when it needs more than the 16 registers."""
    codebook = codebook_of(columns)
    if codebook.size > CODEBOOK_SIZE:
        raise CompileError(
            f"{codebook.size - 1} distinct non-zero weights; EIE's codebook "
            f"holds {CODEBOOK_SIZE - 1} besides zero",
            where=f"layer {name}",
            fix="run ShareWeights before LowerToEIE (eiec compile does)",
        )
    return codebook


# --- the registry -----------------------------------------------------------------------------

Lowering = Callable[[LoweringContext, relax.VarBinding], Value]

#: Relax operator name -> lowering. Extend with :func:`register_lowering`.
LOWERINGS: dict[str, Lowering] = {}


def register_lowering(op: str) -> Callable[[Lowering], Lowering]:
    """Decorator: lower calls of Relax operator ``op`` with the decorated function."""

    def decorate(lowering: Lowering) -> Lowering:
        LOWERINGS[op] = lowering
        return lowering

    return decorate


def _shape(var: relax.Var) -> tuple[int, ...]:
    return tuple(int(d) for d in var.ty.shape)


@register_lowering("relax.matmul")
def _lower_matmul(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    layer = ctx.layers.get(binding.var)
    if layer is None:
        raise UnsupportedModelError(
            f"matmul '{binding.var.name}' does not multiply by a constant weight matrix"
        )
    source = ctx.activation(binding.value.args[0])
    if source.size != layer.cols:
        raise UnsupportedModelError(
            f"layer {layer.name}: input of shape {list(source.shape)} is not a vector of "
            f"{layer.cols} elements (batch 1)"
        )
    return PendingLayer(layer, source, _shape(binding.var))


@register_lowering("relax.add")
def _lower_add(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    layer = ctx.bias_of.get(binding.var)
    pending = [ctx.value(a) for a in binding.value.args]
    for value in pending:
        if isinstance(value, PendingLayer) and layer is not None and value.layer is layer:
            return replace(value, with_bias=True, shape=_shape(binding.var))
    raise UnsupportedModelError(
        f"add '{binding.var.name}' is not the bias of a layer (EIE adds constants only as a "
        "bias column)"
    )


@register_lowering("relax.nn.relu")
def _lower_relu(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    value = ctx.value(binding.value.args[0])
    if isinstance(value, PendingLayer) and not value.relu:
        return replace(value, relu=True)
    raise UnsupportedModelError(
        f"relu '{binding.var.name}' does not follow a layer (EIE applies ReLU at write-back)"
    )


def _alias(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    value = ctx.value(binding.value.args[0])
    shape = _shape(binding.var)
    if isinstance(value, Constant):
        raise UnsupportedModelError(f"'{binding.var.name}' reshapes a constant")
    if op_name(binding.value) == "relax.permute_dims":
        # Moving axes of size 1 keeps the memory order; reordering the others transposes.
        axes = [int(a) for a in binding.value.attrs.axes] if binding.value.attrs.axes else None
        moved = [a for a in axes or range(len(value.shape))[::-1] if value.shape[a] != 1]
        if moved != sorted(moved):
            raise UnsupportedModelError(
                f"permute_dims '{binding.var.name}' transposes a matrix of shape "
                f"{list(value.shape)}"
            )
    return replace(value, shape=shape)


for _op in ("relax.reshape", "relax.permute_dims", "relax.flatten", "relax.squeeze"):
    register_lowering(_op)(_alias)


@register_lowering("relax.astype")
def _lower_astype(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    dtype = str(binding.value.attrs.dtype)
    if dtype != "float32":
        raise UnsupportedModelError(f"astype '{binding.var.name}' to {dtype} (only float32)")
    return _alias(ctx, binding)


# --- the pass ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortSpec:
    """Name and batch axis of a program input or output port (None: derive from Relax)."""

    name: str
    batch_axis: int | None


@eiec_module_pass("LowerToEIE")
@dataclass
class LowerToEIE:
    """Lower ``main`` to an EIE program for ``machine``; the module is returned unchanged.

    ``inputs`` / ``outputs`` name the ports (default: the Relax parameter names and ``y``,
    ``y1``...; batch axis 0 for a rank >= 2 tensor whose first dimension is 1).
    ``calibration`` maps each input port to samples (S x its element count). After the pass,
    ``program`` is the program, ``assembly`` its assembly (formats, layer records) and
    ``tensor_map`` maps each layer's name to the buffer it writes.
    """

    machine: Machine = field(default_factory=Machine)
    inputs: list[PortSpec] | None = None
    outputs: list[PortSpec] | None = None
    calibration: dict[str, np.ndarray] | None = None
    input_range: float = 8.0
    program: Program | None = field(default=None, init=False)
    assembly: ProgramAssembly | None = field(default=None, init=False)
    tensor_map: dict[str, str] = field(default_factory=dict, init=False)

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        func = mod["main"]
        layers = find_fc_layers(func)
        asm = ProgramAssembly(self.machine)
        lctx = LoweringContext(
            asm,
            mod,
            {layer.var: layer for layer in layers},
            {layer.bias_var: layer for layer in layers if layer.bias_var is not None},
            self.input_range,
            self.calibration is not None,
        )
        num_input = int(func.attrs["num_input"]) if "num_input" in func.attrs else len(func.params)
        params = list(func.params[:num_input])
        in_specs = self.inputs or [PortSpec(p.name, _default_batch_axis(_shape(p))) for p in params]
        for param, spec in zip(params, in_specs, strict=True):
            lctx.env[param] = self._input(asm, param, spec)
        _check_ops(mod, func)
        for binding in bindings(func):
            lctx.env[binding.var] = self._lower_binding(lctx, binding)
        results = _flatten([lctx.value(expr) for expr in _returned(func.body.body)])
        out_specs = self.outputs or [
            PortSpec("y" if i == 0 else f"y{i}", None) for i in range(len(results))
        ]
        for value, spec in zip(results, out_specs, strict=True):
            activation = lctx.activation(value)
            axis = spec.batch_axis
            if self.outputs is None:
                axis = _default_batch_axis(activation.shape)
            asm.outputs.append(
                Port(asm_port_name(asm, spec.name), activation.buffer, activation.shape, axis)
            )
        asm.emit(Halt())
        self.program = asm.program()
        self.assembly = asm
        self.tensor_map = dict(lctx.written)
        return mod

    def _input(self, asm: ProgramAssembly, param: relax.Var, spec: PortSpec) -> Activation:
        shape = _shape(param)
        size = int(np.prod(shape, dtype=np.int64))
        samples = None
        if self.calibration is not None:
            samples = np.asarray(self.calibration[spec.name], dtype=np.float64).reshape(-1, size)
            max_abs = float(np.abs(samples).max(initial=0.0))
            choice = (
                frac_for_range(max_abs, headroom=CALIBRATION_HEADROOM),
                max_abs,
                "calibration",
            )
        else:
            choice = (frac_for_range(self.input_range), self.input_range, "input-range")
        buffer = asm.add_buffer(spec.name, size, choice)
        asm.inputs.append(Port(spec.name, buffer.name, shape, spec.batch_axis))
        bound = on_grid(np.full(size, choice[1]), buffer.frac)
        return Activation(buffer.name, shape, samples, bound)

    @staticmethod
    def _lower_binding(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
        value = binding.value
        if isinstance(value, relax.Var):
            return ctx.value(value)
        if isinstance(value, relax.TupleGetItem):
            return ctx.value(value.tuple_value)[value.index]
        if isinstance(value, relax.Tuple):
            return tuple(ctx.value(f) for f in value.fields)
        return LOWERINGS[lowering_key(ctx.mod, value)](ctx, binding)


def asm_port_name(asm: ProgramAssembly, name: str) -> str:
    """Ports have their own namespace; output names only need to differ from input names."""
    taken = {p.name for p in asm.inputs} | {p.name for p in asm.outputs}
    candidate, suffix = name, 2
    while candidate in taken:
        candidate, suffix = f"{name}_{suffix}", suffix + 1
    return candidate


def _default_batch_axis(shape: tuple[int, ...]) -> int | None:
    return 0 if len(shape) >= 2 and shape[0] == 1 else None


def op_label(value: relax.Expr) -> str:
    """How an unsupported value is named in messages."""
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
        return f"call of {value.op.name_hint}"
    return type(value).__name__


def _flatten(values: list[Value]) -> list[Value]:
    """Values with tuples (a returned var bound to a tuple, e.g. an LSTM's) spliced in."""
    flat: list[Value] = []
    for value in values:
        flat.extend(_flatten(list(value)) if isinstance(value, tuple) else [value])
    return flat


def _returned(body: relax.Expr) -> list[relax.Expr]:
    return list(body.fields) if isinstance(body, relax.Tuple) else [body]


def lowering_key(mod: tvm.IRModule, value: relax.Expr) -> str | None:
    """The ``LOWERINGS`` key of a bound value: the operator name of an operator call, the
    ``eiec.op`` attribute of a called module function (e.g. ``lstm``), else None."""
    name = op_name(value)
    if name is not None:
        return name
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
        callee = mod[value.op]
        if callee.attrs is not None and "eiec.op" in callee.attrs:
            return str(callee.attrs["eiec.op"])
    return None


def _check_ops(mod: tvm.IRModule, func: relax.Function) -> None:
    """One UnsupportedModelError listing every binding whose operator has no lowering."""
    problems = []
    for binding in bindings(func):
        value = binding.value
        if isinstance(value, relax.Var | relax.TupleGetItem | relax.Tuple):
            continue
        name = lowering_key(mod, value)
        if name not in LOWERINGS:
            what = name or op_label(value)
            problems.append(f"'{binding.var.name}' = {what}")
    if problems:
        raise UnsupportedModelError(
            f"{len(problems)} binding{'s' if len(problems) > 1 else ''} of main cannot run on "
            "EIE: " + "; ".join(problems),
            fix="EIE runs chains of FC layers (matmul by a constant, bias add, relu, reshape); "
            "offload only those with eiec.byoc.partition_for_eie(mod)",
        )
