"""What the lowerings of :mod:`eiec.codegen.generate` read and produce: values, the context.

Lowerings read and produce *values*:

- ``Activation``: a vector held in a program buffer (with its calibration samples and its
  analytic bound, which decide the buffer's format);
- ``PendingLayer``: a ``matmul`` with its bias and ReLU fused in but not yet written back;
- ``Constant``: a constant tensor.

A lowering is a function ``(ctx: LoweringContext, binding: relax.VarBinding) -> value`` (a
tuple of values for a tuple result, which ``TupleGetItem`` bindings index) working on
``ctx.asm``. ``LoweringContext.materialize`` emits a pending layer: ``load-codebook``,
``broadcast-activation SRC, #1``, ``sparse-column-mac``, ``(relu-)writeback`` into a new buffer.

Fixed-point formats (documented with their error bound in ``eiec/FIXED_POINT.md``): a codebook
gets the largest fraction-bit count holding its max-abs; a buffer's format holds the max-abs of
its values over the calibration inputs times ``CALIBRATION_HEADROOM`` when calibration inputs are
given, else its analytic bound: inputs ``|x| <= input_range``, a layer's output
``|y_i| <= sum_j |Wq_ij| * bound(x_j) + |bq_i|`` with the stored (rounded) weights, each
bound rounded to its buffer's grid (ReLU keeps the bound); such a format never saturates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from eiec.codegen.assembly import CALIBRATION_HEADROOM, ProgramAssembly
from eiec.errors import CompileError, UnsupportedModelError, warn
from eiec.isa.builder import codebook_of, codes_of
from eiec.isa.fixed import dequantize, frac_for_range
from eiec.isa.program import (
    CODEBOOK_SIZE,
    BroadcastActivation,
    Codebook,
    LoadCodebook,
    One,
    ReluWriteback,
    SparseColumnMac,
    View,
    Writeback,
)
from eiec.relax_layers.exprs import constant_value
from eiec.relax_layers.fc import FcLayer

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

    def layer_sums(
        self,
        name: str,
        codebook: Codebook,
        codes: np.ndarray,
        acc_frac: int,
        bound: np.ndarray,
        rms: np.ndarray,
        *,
        has_bias: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(worst-case bound, statistical bound, root mean square) of each row's sums of
        program layer ``name`` (its stored ``codebook`` words by ``codes``) over inputs within
        ``bound`` and of root mean square ``rms`` (the bias column's #1 last when
        ``has_bias``), checked against the accumulator (:meth:`check_accumulator`)."""
        stored = np.abs(dequantize(codebook.values, codebook.frac))
        entries = SparseWeights.of(stored, codes)  # the non-zeros only, not an M x K matrix
        worst = entries.matvec(bound)
        spread, sums_rms = entries.spread_bound(rms, has_bias=has_bias)
        self.check_accumulator(
            name,
            acc_frac,
            float(np.minimum(spread, worst).max(initial=0.0)),
            float(worst.max(initial=0.0)),
        )
        return worst, spread, sums_rms

    def check_accumulator(self, name: str, acc_frac: int, typical: float, worst: float) -> None:
        """CompileError when layer ``name``'s sums, of ``acc_frac`` fraction bits, typically
        reach ``typical`` (the statistical bound) beyond the machine's accumulator
        (``acc_bits``); a warning when only the worst case ``worst`` does."""
        bits = self.asm.machine.acc_bits

        def need(value: float) -> int:
            return int(np.ceil(np.log2(value * 2.0**acc_frac + 1.0))) + 1

        what = (
            f"its sums have {acc_frac} fraction bits (the codebook's and the input's) and "
            f"reach {{value:.3g}}{{when}}: they need a {{need}}-bit accumulator, the machine's "
            f"has {bits} bits (--acc-bits)"
        )
        fix = "raise --acc-bits to {need} or more (the paper's chip: 48)"
        if need(typical) > bits:
            raise CompileError(
                what.format(value=typical, when="", need=need(typical)),
                where=f"layer {name}",
                fix=fix.format(need=need(typical)),
            )
        if need(worst) > bits:
            warn(
                what.format(value=worst, when=" at worst", need=need(worst))
                + ", so extreme inputs overflow",
                where=f"layer {name}",
                fix=fix.format(need=need(worst)),
            )

    def materialize(self, pending: PendingLayer) -> Activation:
        """Emit a pending layer into a new buffer; returns the buffer's activation."""
        layer, source = pending.layer, pending.source
        weight = layer.weight  # (K, M) in the model's float type; the codebook is float64
        bias = layer.bias_vector() if pending.with_bias else None
        codebook, codes = layer_codes(layer.name, weight, bias)
        eie_layer = self.asm.add_layer(layer.name, codes, codebook, has_bias=bias is not None)

        # Formats come from float64 arithmetic on the (exactly widened) weights; the bound from
        # the stored words (a codebook word may round up), the bias column's #1 included.
        samples = None if source.samples is None else source.samples @ weight.astype(np.float64)
        bound, spread, rms = self.layer_sums(
            layer.name,
            eie_layer.codebook,
            codes,
            eie_layer.codebook.frac + self.asm.buffers[source.buffer].frac,
            np.append(source.bound, 1.0)[: codes.shape[1]],
            source.rms_or_bound,
            has_bias=bias is not None,
        )
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
    rows, cols = np.nonzero(weights)
    entries = SparseWeights(rows, cols, weights[rows, cols], weights.shape)
    return entries.spread_bound(rms, has_bias=has_bias)


@dataclass(frozen=True)
class SparseWeights:
    """The non-zero entries (``rows``, ``cols``, ``values``) of an M x K matrix (``shape``)."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def of(cls, codebook: np.ndarray, codes: np.ndarray) -> SparseWeights:
        """``codebook[codes]`` (M x K codes, 0 for zero) by its non-zeros."""
        rows, cols = np.nonzero(codes)
        return cls(rows, cols, codebook[codes[rows, cols]], codes.shape)

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """The matrix times ``x``."""
        products = self.values * x[self.cols]
        return np.bincount(self.rows, weights=products, minlength=self.shape[0])

    def spread_bound(self, rms: np.ndarray, *, has_bias: bool) -> tuple[np.ndarray, np.ndarray]:
        """:func:`spread_bound` of the matrix."""
        inputs = self.shape[1] - 1 if has_bias else self.shape[1]
        inside = self.cols < inputs
        squares = self.values[inside] ** 2 * rms[self.cols[inside]] ** 2
        spread = np.sqrt(np.bincount(self.rows[inside], weights=squares, minlength=self.shape[0]))
        bias = np.zeros(self.shape[0])
        bias[self.rows[~inside]] = self.values[~inside]
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


def layer_codes(
    name: str, weight: np.ndarray, bias: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(codebook, codes) of the FC layer ``name`` storing ``[weight.T | bias]``: the real
    codebook of :func:`layer_codebook` and the M x (K + 1 with a bias) uint8 code matrix of
    :func:`codes_of`, read from the non-zeros of ``weight`` (K x M) in its own order (no
    transposed M x K copy of the weights)."""
    inputs, rows = weight.shape
    where = np.flatnonzero(weight)
    values = weight.reshape(-1)[where]
    kept = bias[bias != 0] if bias is not None else values[:0]
    codebook = layer_codebook(name, np.concatenate((values, kept)))
    codes = np.zeros((rows, inputs + (bias is not None)), dtype=np.uint8)
    column, row = np.divmod(where, rows)
    codes[row, column] = codes_of(values, codebook)
    if bias is not None:
        codes[:, inputs] = codes_of(bias, codebook)
    return codebook, codes


#: A lowering: a binding of ``main`` -> its value (module docstring).
Lowering = Callable[["LoweringContext", relax.VarBinding], "Value"]


def shape_of(var: relax.Var) -> tuple[int, ...]:
    """The static shape of a bound var."""
    return tuple(int(d) for d in var.ty.shape)
