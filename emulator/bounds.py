"""Error bounds of an EIE program's result against the CPU model it was compiled from: a probe.

The emulator and the compressed CPU model compute the same function with the same pruned and
weight-shared weights; they differ only where the program's fixed-point formats round.
:class:`ErrorBounds` is a probe (``eiec.emulator.events.Probe``) that propagates a per-word
bound ``e`` on ``|emulator value - CPU value|`` through the instruction stream as the emulator
runs it, so every buffer word (and so every output element) gets its own tolerance. ``RULES``
holds one :class:`Rule` per instruction class of the ISA's ``INSTRUCTIONS`` registry (a missing
one raises at import, as the emulator's handlers do). The terms, for fixed16 arithmetic:

- **input quantisation**: a host input ``x`` stored with F fraction bits is off by exactly
  ``|x - round(x * 2**F) / 2**F|`` (at most ``2**-(F+1)``); constant buffers are exact, and so
  is ``#1`` unless the stream has 15 or more fraction bits (it then saturates to 1 - 2**-15).
- **codebook quantisation**: a stored weight ``c`` (a k-means centroid, float32 in the CPU
  model) becomes ``round(c * 2**Fc) / 2**Fc``: off by at most ``dw = 2**-(Fc+1)``; 0 when the
  reference is the source model with the program's decoded weights, which float32 and
  float64 hold exactly (``exact_weights``).
- **MAC** (exact in the wide accumulators): for row i, with ``a`` the emulator's broadcast
  values and ``e_a`` their bounds, ``|W_q a - W a_ref| <= sum_j |W_q[i,j]| e_a[j]
  + dw * sum_{j stored} (|a_j| + e_a[j])`` (W_q: the program's decoded weights, including the
  bias column, whose activation ``#1`` is exact). Several MACs before a writeback add up.
- **writeback**: rounding the accumulator to the destination's F bits adds ``2**-(F+1)`` when the
  accumulator has more fraction bits; ReLU is 1-Lipschitz so the bound passes through.
- **element-wise**: ``ew-add`` adds the operands' bounds, ``ew-mul`` adds
  ``|a| e_b + |b| e_a + e_a e_b`` (the actual operands: a forget gate's value scales the
  carried cell error), each plus its output rounding, whose signed value (the emulator's
  result less the exact one of its operands) the statistical bound carries exactly
  (``known``); ``ew-lut`` adds the error a *correct*
  table (fn's samples rounded to nearest, SPEC §3.5) has at the emulator's input ``a``
  (``table_error``: a wrong table entry is not absorbed) and the steepest slope of fn over
  ``[a - e_a, a + e_a]`` times ``e_a`` (the mean value theorem at the run's own values, not
  fn's global Lipschitz constant), and is capped by the distance of its output to fn's range
  (a sigmoid's error is at most max(D, 1 - D)). The statistical bounds: FIXED_POINT.md,
  "Through recurrences".
- **float32 reference**: the CPU model rounds too; a K-term dot product is within
  ``gamma(K+1) * sum_j |W_ij| |a_j|`` of exact (``gamma(n) = n u / (1 - n u)``, u = 2**-24),
  element-wise ops within ``u`` of their magnitude. These terms are added (twice in float32
  mode, where the emulator rounds as well; that mode has no fixed-point terms).

**The centre**: a word's error lies within its tolerance less ``|k|`` of ``k``, the known signed
part (``centre``; the rules keep the worst case ``e >= |k|`` plus a bound of the rest), so
``verify`` checks that interval (FIXED_POINT.md, "The centred check").

**Non-finite bounds**: a bound that overflows is infinite (NaN, e.g. ``0 * inf``, becomes inf:
the honest value of an unknown bound), never a warning; ``first_unbounded`` names the first
instruction whose tolerance is not finite, and ``eiec.runtime.verify`` fails such an output.

**Saturation** breaks the bounds (a clamped word may be off by anything): a word an instruction
clamped, and every word computed from it, is *tainted* (``saturated``, per word, propagated
like the bounds: a MAC row through its stored entries' columns). An input is tainted where it
lies beyond its buffer's range. A word of an instruction that reported saturations is taken
as clamped when it sits at a rail of its format (``-2**15`` or ``2**15 - 1`` words), so a value
that rounds exactly onto a rail is counted too (never the reverse).

**Lanes**: ``ErrorBounds(program, lanes=B)`` is the probe of B lockstep runs of the program at
once (``eiec.emulator.batch``): every table and writeback array has a leading lane axis, the
view reader gives (B, n) arrays and the one event of an instruction counts each lane's
saturations ((B,) array); each rule runs once for all lanes, and lane i's bounds
(:meth:`ErrorBounds.lane`) are bit for bit those of lane i's run probed alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from copy import copy
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from eiec.emulator.arith import TABLE_FUNCTIONS, FixedArith
from eiec.emulator.events import Event, ReadView
from eiec.errors import EmulatorError
from eiec.isa import csc
from eiec.isa.fixed import dequantize, quantize
from eiec.isa.printer import format_instruction
from eiec.isa.program import (
    INSTRUCTIONS,
    WORD_MAX,
    BroadcastActivation,
    EwAdd,
    EwCopy,
    EwLut,
    EwMul,
    Halt,
    Instruction,
    LoadCodebook,
    One,
    Program,
    ReluWriteback,
    SparseColumnMac,
    StreamChunk,
    Table,
    View,
    Writeback,
)

#: Values (rows x 16 x lanes) of a block of per-code sums the MAC rule computes at once.
CODE_BLOCK = 1 << 15
#: Unit roundoff of float32.
FLOAT32_U = 2.0**-24
#: The statistical bound's safety factor: a word's tolerance is at most this many times its
#: spread (the root-mean-square bound of its error, FIXED_POINT.md "Error bound").
SPREAD_SAFETY = 6.0


@dataclass(frozen=True)
class TableFunction:
    """What the bound needs of a table's function: the closed range of its values (``low``,
    ``high``) and ``steepest(lo, hi)``, the largest ``|f'|`` over each interval ``[lo, hi]``."""

    low: float
    high: float
    steepest: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _peak_at_zero(derivative: Callable[[np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """``steepest`` of a function whose ``|f'|`` is even and falls with ``|x|``: its value at
    the point of the interval nearest 0."""
    return lambda lo, hi: derivative(np.clip(np.zeros_like(lo), lo, hi))


def _sigmoid_slope(x: np.ndarray) -> np.ndarray:
    s = TABLE_FUNCTIONS["sigmoid"](x)
    return s * (1.0 - s)


#: The bound's view of every function a table may sample (``arith.TABLE_FUNCTIONS``).
TABLE_SHAPES: dict[str, TableFunction] = {
    "sigmoid": TableFunction(0.0, 1.0, _peak_at_zero(_sigmoid_slope)),
    "tanh": TableFunction(-1.0, 1.0, _peak_at_zero(lambda x: 1.0 - np.tanh(x) ** 2)),
    "relu": TableFunction(0.0, np.inf, lambda lo, hi: (hi > 0).astype(np.float64)),
}


def gamma(n: int, u: float = FLOAT32_U) -> float:
    """Higham's bound on the relative error of an n-term sum of products rounding to ``u``."""
    nu = n * u
    return nu / (1.0 - nu)


def _half_lsb(from_frac: int, to_frac: int) -> float:
    """Rounding error of narrowing ``from_frac`` to ``to_frac`` fraction bits."""
    return 2.0 ** -(to_frac + 1) if from_frac > to_frac else 0.0


@dataclass
class LayerBound:
    """One writeback: the layer, where it went, the emulator's values, their bounds and which
    of them depend on a saturated word."""

    layer: str
    step: int
    dst: View
    values: np.ndarray
    bound: np.ndarray
    saturated: np.ndarray


@dataclass(frozen=True)
class Saturation:
    """Where something first happened in a run (a saturation; a bound that overflowed): the
    instruction's index, its text and the buffer (or input port) it concerned, how many
    words, and whether they were accumulators (sums beyond ``acc_bits``)."""

    pc: int | None
    where: str
    words: int
    accumulator: bool = False


@dataclass(frozen=True)
class _StoredWeights:
    """A layer's stored entries (v != 0) as coordinates, with |W_q| and the codebook rounding."""

    rows: int
    cols: int
    row: np.ndarray
    col: np.ndarray
    weight: np.ndarray
    signed: np.ndarray
    code: np.ndarray
    dw: float
    _matrices: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, program: Program, name: str, exact: bool = False) -> _StoredWeights:
        """``exact``: the reference computes with these very weights (no codebook rounding)."""
        layer = program.layers[name]
        where = csc.coordinates(layer.ptr, layer.z)
        keep = layer.v != 0
        values = layer.codebook.values.astype(np.float64) * 2.0**-layer.codebook.frac
        return cls(
            rows=layer.rows,
            cols=layer.cols,
            row=where.local_row[keep] * layer.pes + where.pe[keep],
            col=where.col[keep],
            weight=np.abs(values[layer.v[keep]]),
            signed=values[layer.v[keep]],
            code=layer.v[keep].astype(np.int64),
            dw=0.0 if exact else 2.0 ** -(layer.codebook.frac + 1),
        )

    def sums(self, factor: str, values: np.ndarray) -> np.ndarray:
        """Each row's sum over its entries of ``factor`` (``"weight"``, ``"weight_dw"``: |W_q|
        + dw, ``"weight_sq"``, ``"signed"`` or ``"one"``) times its column's value in
        ``values`` (columns x lanes): rows x lanes, one sparse product. Each sum adds the
        row's products in the entries' order, as ``np.bincount`` over them would (bit for
        bit, whatever the number of lanes). All-zero ``values`` give +0.0 sums without a
        product (``"signed"`` ones would add -0.0 products of negative weights: callers take
        their magnitude)."""
        if not values.any():
            return np.zeros((self.rows, values.shape[1]))
        return self._matrix(factor) @ values

    def code_square_sums(self, values: np.ndarray) -> np.ndarray:
        """Each row's sum over the 16 codes of the square of its sum of ``values`` (columns x
        lanes) over its entries of that code: rows x lanes. Each lane's bits are those of
        one lane alone: the per-code sums are sparse products (:meth:`sums`), their squares
        added in one order (:func:`_sum16`). Computed in blocks of rows of ``CODE_BLOCK``
        values (a large temporary costs more in page faults than in arithmetic)."""
        lanes = values.shape[1]
        block = max(1, CODE_BLOCK // (16 * lanes))
        into = np.empty((self.rows, lanes))
        for start in range(0, self.rows, block):
            sums = (self._matrix("code", start, block) @ values).reshape(-1, 16, lanes)
            np.square(sums, out=sums)
            into[start : start + block] = _sum16(sums)
        return into

    def _matrix(self, factor: str, start: int = 0, block: int = 0) -> Any:
        """The CSR matrix of a factor (rows x cols; ``"code"``: (rows * 16) x cols of ones by
        row and code), its entries kept in their order within each row (built once); with a
        ``block``: its rows of rows ``start`` to ``start + block``."""
        if block:
            key = f"{factor}/{start}/{block}"
            if key not in self._matrices:
                whole = self._matrix(factor)
                scale = whole.shape[0] // self.rows
                self._matrices[key] = whole[start * scale : (start + block) * scale]
            return self._matrices[key]
        if factor not in self._matrices:
            from scipy.sparse import csr_matrix  # lazy: scipy, for the start-up of the CLI

            per_entry = {
                "weight": self.weight,
                "weight_dw": self.weight + self.dw,
                "weight_sq": self.weight**2,
                "signed": self.signed,
            }.get(factor, np.ones(self.weight.size))
            index, rows = (
                (self.row * 16 + self.code, self.rows * 16)
                if factor == "code"
                else (
                    self.row,
                    self.rows,
                )
            )
            order = np.argsort(index, kind="stable")
            ptr = np.zeros(rows + 1, dtype=np.int64)
            np.cumsum(np.bincount(index, minlength=rows), out=ptr[1:])
            self._matrices[factor] = csr_matrix(
                (per_entry[order], self.col[order], ptr), shape=(rows, self.cols)
            )
        return self._matrices[factor]


@dataclass
class ErrorBounds:
    """Per-word error bounds and saturation taints of every buffer, updated instruction by
    instruction as a probe of :class:`eiec.emulator.emulator.Emulator` (``probes=[bounds]``).

    After a run, ``words[buffer]`` holds the worst-case bounds, ``spreads[buffer]`` the
    statistical ones (root-mean-square bounds), ``saturated[buffer]`` the taints; the tolerance
    of a word is :meth:`tolerance`. ``writebacks`` has one :class:`LayerBound` per writeback,
    ``first_saturation`` the first clamp. With ``lanes=B`` it probes B lockstep runs at once
    (module docstring, "Lanes"); :meth:`lane` gives one lane's bounds as those of one run.
    """

    program: Program
    fixed_point: bool = True
    #: The unit roundoff of the CPU reference's dtype (float32: 2**-24, float16: 2**-11).
    reference_u: float = FLOAT32_U
    #: Whether the reference holds the program's decoded weights exactly (then no codebook
    #: rounding term): the source model with decoded weights, in float32 or float64.
    exact_weights: bool = False
    #: None: the probe of one run; B: of B lockstep runs at once (module docstring, "Lanes"):
    #: inputs (B, *port.shape), reads (B, n), ``event.saturations`` (B,) (an int: every
    #: lane's), tables (B, size); ``first_saturation`` and ``first_unbounded`` lists of B.
    lanes: int | None = None
    words: dict[str, np.ndarray] = field(default_factory=dict)
    spreads: dict[str, np.ndarray] = field(default_factory=dict)
    saturated: dict[str, np.ndarray] = field(default_factory=dict)
    exact: dict[str, np.ndarray] = field(default_factory=dict)
    #: Per word, the signed part of its error the probe knows exactly (the element-wise
    #: roundings the emulator made, carried through ew-add, ew-mul and ew-copy); ``spreads``
    #: include its magnitude (FIXED_POINT.md, "Through recurrences").
    known: dict[str, np.ndarray] = field(default_factory=dict)
    writebacks: list[LayerBound] = field(default_factory=list)
    #: With lanes, a list by lane (as ``first_unbounded``).
    first_saturation: Saturation | list[Saturation | None] | None = None
    #: The first instruction that left a word with a non-finite tolerance (``words`` counts
    #: them).
    first_unbounded: Saturation | list[Saturation | None] | None = None
    #: The buffer and words of the first store with a non-finite tolerance (by lane).
    _unbounded: tuple[str, int] | list[tuple[str, int] | None] | None = None
    #: Lanes whose ``_unbounded`` the current instruction set (``first_unbounded`` to note).
    _fresh: list[int] = field(default_factory=list)
    _stream: _Stream | None = None
    _stream_frac: int = 0
    _acc: _Error | None = None
    _acc_layer: str = ""
    _steps: dict[str, int] = field(default_factory=dict)
    _lut_input: tuple[np.ndarray, _Error] | None = None
    #: An ew-add/ew-mul/ew-copy's exact result (before rounding) and its rounding bound.
    _unrounded: tuple[np.ndarray, float] | None = None
    _weights: dict[str, _StoredWeights] = field(default_factory=dict)

    # --- the probe ------------------------------------------------------------------------------

    def start(self, inputs: Mapping[str, np.ndarray], read: ReadView) -> None:
        """Reset: constants are exact, inputs carry their quantisation error."""
        program, lead = self.program, self._lead
        sizes = {name: (*lead, buf.size) for name, buf in program.buffers.items()}
        self.words = {name: np.zeros(size) for name, size in sizes.items()}
        self.spreads = {name: np.zeros(size) for name, size in sizes.items()}
        self.saturated = {name: np.zeros(size, bool) for name, size in sizes.items()}
        self.known = {name: np.zeros(size) for name, size in sizes.items()}
        self.writebacks, self.exact = [], {}
        per_lane = None if self.lanes is None else [None] * self.lanes
        self.first_saturation, self.first_unbounded = per_lane, copy(per_lane)
        self._unbounded, self._fresh = copy(per_lane), []
        self._stream, self._acc, self._steps = None, None, {}
        for port in program.inputs:
            buf = program.buffers[port.buffer]
            value = np.asarray(inputs[port.name], dtype=np.float64)
            value = value.reshape(*lead, buf.rows, buf.cols)
            if self.fixed_point:
                words, _ = quantize(value, buf.frac)  # as the emulator stores the input
                signed = dequantize(words, buf.frac) - value
                clamped = np.abs(value) * 2.0**buf.frac > WORD_MAX + 0.5
            else:
                signed = value.astype(np.float32) - value
                clamped = np.zeros(value.shape, bool)
            error = np.abs(signed)
            self.exact.setdefault(port.buffer, np.zeros(sizes[port.buffer]))
            for table, grid in ((self.words, error), (self.spreads, error), (self.exact, signed)):
                table[port.buffer].reshape(*lead, buf.rows, buf.pitch)[..., : buf.cols] = grid
            taint = self.saturated[port.buffer].reshape(*lead, buf.rows, buf.pitch)
            taint[..., : buf.cols] = clamped
            where = f"input '{port.name}' (buffer '{port.buffer}')"
            if self.lanes is None:
                if clamped.any() and self.first_saturation is None:
                    self.first_saturation = Saturation(None, where, int(clamped.sum()))
                continue
            counts = np.count_nonzero(clamped, axis=(-2, -1))
            for lane in np.flatnonzero(counts):  # the lanes with a clamped input only
                if self.first_saturation[lane] is None:
                    self.first_saturation[lane] = Saturation(None, where, int(counts[lane]))

    def before(self, instruction: Instruction, read: ReadView) -> None:
        """Account for ``instruction`` using the machine state before it runs."""
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is an inf bound
            rule(instruction).before(self, instruction, read)

    def after(self, event: Event, read: ReadView) -> None:
        """Account for ``event.instruction`` using the machine state after it ran."""
        with np.errstate(over="ignore", invalid="ignore"):
            rule(event.instruction).after(self, event, read)
        if self.lanes is None:
            if self._unbounded is not None and self.first_unbounded is None:
                self.first_unbounded = _happened(event, *self._unbounded)
            return
        for lane in self._fresh:  # the lanes this instruction left unbounded only
            self.first_unbounded[lane] = _happened(event, *self._unbounded[lane])
        self._fresh = []

    # --- results --------------------------------------------------------------------------------

    def tolerance(self, buffer: str) -> np.ndarray:
        """Each word's tolerance: the statistical bound (``SPREAD_SAFETY`` times the spread)
        where it is below the worst case."""
        return _tolerance(self.words[buffer], self.spreads[buffer], self.known[buffer])

    def centre(self, buffer: str) -> np.ndarray:
        """Each word's centre: the known signed part of its error; its error lies within
        ``tolerance - |centre|`` of it (FIXED_POINT.md, "The centred check")."""
        return _centre(self.words[buffer], self.spreads[buffer], self.known[buffer])

    def ports(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The tolerances and the saturation taints of each output port's elements (by port
        name, of the port's shape; with lanes, (B, *port.shape): every lane's at once)."""
        return self._by_port(self.tolerance), self._by_port(self.saturated.__getitem__)

    def port_centres(self) -> dict[str, np.ndarray]:
        """The centres (:meth:`centre`) of each output port's elements, as :meth:`ports`."""
        return self._by_port(self.centre)

    def _by_port(self, table: Callable[[str], np.ndarray]) -> dict[str, np.ndarray]:
        """A per-word table of each output port's buffer as the port's elements."""
        into, lead = {}, self._lead
        for port in self.program.outputs:
            buf = self.program.buffers[port.buffer]
            grid = table(port.buffer).reshape(*lead, buf.rows, buf.pitch)[..., : buf.cols]
            into[port.name] = grid.reshape(*lead, *port.shape)
        return into

    def lane(self, index: int) -> ErrorBounds:
        """Lane ``index``'s bounds as a probe of its run alone (``lanes=None``; its tables are
        views of this probe's): its writebacks, first saturation and first unbounded word,
        and every one-run result (:meth:`ports`, :meth:`tolerance`, ...). Every lane's port
        tables at once, (B, *port.shape): this probe's :meth:`ports` and
        :meth:`port_centres`."""
        if self.lanes is None:
            raise ValueError("lane() of the bounds of one run (lanes=None)")

        def pick(tables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {name: array[index] for name, array in tables.items()}

        return ErrorBounds(
            self.program,
            self.fixed_point,
            self.reference_u,
            self.exact_weights,
            words=pick(self.words),
            spreads=pick(self.spreads),
            saturated=pick(self.saturated),
            exact=pick(self.exact),
            known=pick(self.known),
            writebacks=[
                LayerBound(
                    w.layer,
                    w.step,
                    w.dst,
                    w.values[index] if w.values.ndim > 1 else w.values,
                    w.bound[index],
                    w.saturated[index],
                )
                for w in self.writebacks
            ],
            first_saturation=self.first_saturation[index],
            first_unbounded=self.first_unbounded[index],
            _unbounded=self._unbounded[index],
            _weights=self._weights,
        )

    # --- helpers --------------------------------------------------------------------------------

    @property
    def _lead(self) -> tuple[int, ...]:
        """The leading axes of every per-word array: none for one run, (lanes,)."""
        return () if self.lanes is None else (self.lanes,)

    def layer(self, name: str) -> _StoredWeights:
        """A layer's stored weights (cached)."""
        if name not in self._weights:
            self._weights[name] = _StoredWeights.of(self.program, name, self.exact_weights)
        return self._weights[name]

    def error(self, view: View) -> _Error:
        """The bounds and taints of a view's words."""
        span = self._span(view)
        exact = self.exact.get(view.buffer)
        return _Error(
            self.words[view.buffer][..., span],
            self.spreads[view.buffer][..., span],
            self.saturated[view.buffer][..., span],
            None if exact is None else exact[..., span],
            self.known[view.buffer][..., span],
        )

    def store(self, view: View, error: _Error) -> None:
        """Set a view's bounds and taints."""
        span = self._span(view)
        self.exact.pop(view.buffer, None)  # only the host's inputs have known signed errors
        worst = np.where(np.isnan(error.worst), np.inf, error.worst)
        spread = np.where(np.isnan(error.spread), np.inf, error.spread)
        known = np.zeros_like(worst) if error.known is None else error.known
        known = np.where(np.isfinite(known), known, 0.0)
        self.words[view.buffer][..., span] = worst
        self.spreads[view.buffer][..., span] = spread
        self.saturated[view.buffer][..., span] = error.taint
        self.known[view.buffer][..., span] = known
        unbounded = ~np.isfinite(_tolerance(worst, spread, known))
        if self.lanes is None:
            count = int(np.count_nonzero(unbounded))
            if count and self._unbounded is None:
                self._unbounded = (view.buffer, count)
        elif unbounded.any():
            counts = np.count_nonzero(unbounded, axis=-1)
            for lane in np.flatnonzero(counts):  # the lanes with an unbounded word only
                if self._unbounded[lane] is None:
                    self._unbounded[lane] = (view.buffer, int(counts[lane]))
                    self._fresh.append(int(lane))

    def _span(self, view: View) -> slice:
        start = self.program.view_offset(view)
        return slice(start, start + self.program.view_length(view))

    def float_u(self) -> float:
        """The unit roundoff of the floating-point computations: the CPU reference's (its
        dtype's, ``reference_u``), plus the emulator's own float32 in float32 mode."""
        return self.reference_u + (0.0 if self.fixed_point else FLOAT32_U)

    def float_gamma(self, n: int) -> float:
        """The worst-case relative error of an n-term dot product in those computations."""
        return gamma(n, self.reference_u) + (0.0 if self.fixed_point else gamma(n))

    def rounding(self, from_frac: int, to_frac: int) -> float:
        """The rounding error of narrowing (none in float32 mode)."""
        return _half_lsb(from_frac, to_frac) if self.fixed_point else 0.0

    def frac(self, view: View) -> int:
        """A view's fraction bits."""
        return self.program.buffers[view.buffer].frac

    def clamped(self, event: Event, dst: View, read: ReadView) -> np.ndarray:
        """The words of ``dst`` that ``event`` clamped (those on a rail, in the runs it clamped
        any)."""
        length = self.program.view_length(dst)
        if not self.fixed_point or not _any(event.saturations):
            return np.zeros((*self._lead, length), bool)
        rail = WORD_MAX * 2.0 ** -self.frac(dst)
        on_rail = np.abs(read(dst)) >= rail
        if self.lanes is not None:
            on_rail &= self._clamped_lanes(event)[:, None]
        self.note_saturation(event, dst.buffer, np.count_nonzero(on_rail, axis=-1))
        return on_rail

    def note_saturation(
        self,
        event: Event,
        where: str,
        words: int | np.ndarray,
        *,
        accumulator: bool = False,
    ) -> None:
        """Remember the first saturation of the run (with lanes: of each lane whose
        ``event.saturations`` is not 0, ``words`` by lane)."""
        if self.lanes is None:
            if self.first_saturation is None:
                self.first_saturation = _happened(event, where, int(words), accumulator)
            return
        counts = np.broadcast_to(words, (self.lanes,))
        for lane in np.flatnonzero(self._clamped_lanes(event)):  # the lanes that clamped only
            if self.first_saturation[lane] is None:
                self.first_saturation[lane] = _happened(
                    event, where, int(counts[lane]), accumulator
                )

    def _clamped_lanes(self, event: Event) -> np.ndarray:
        """Whether each lane's run clamped a word at ``event`` (lanes only)."""
        assert self.lanes is not None
        return np.broadcast_to(np.asarray(event.saturations) > 0, (self.lanes,))


def _any(saturations: int | np.ndarray) -> bool:
    """Whether an event's saturations (one run's count, or each lane's) are not all 0."""
    return bool(saturations) if isinstance(saturations, int) else bool(saturations.any())


def _happened(event: Event, where: str, words: int, accumulator: bool = False) -> Saturation:
    """``event``'s instruction did something (clamped, left unbounded) to ``words`` words of
    buffer ``where``."""
    text = format_instruction(event.instruction)
    return Saturation(
        event.pc, f"instruction {event.pc} ({text}), buffer '{where}'", words, accumulator
    )


@dataclass(frozen=True)
class _Error:
    """Bounds of some words: worst case, statistical (root mean square), saturation taint, the
    signed error itself where it is known (the host's inputs: their quantisation), and the
    signed part of the error known exactly (``known``: element-wise roundings; ``spread``
    includes its magnitude)."""

    worst: np.ndarray
    spread: np.ndarray
    taint: np.ndarray
    exact: np.ndarray | None = None
    known: np.ndarray | None = None

    def copy(self) -> _Error:
        known = None if self.known is None else self.known.copy()
        return _Error(self.worst.copy(), self.spread.copy(), self.taint.copy(), None, known)

    def signed(self) -> np.ndarray:
        """The known signed part of the error (the whole error for a host input)."""
        if self.exact is not None:
            return self.exact
        return np.zeros_like(self.spread) if self.known is None else self.known

    def unknown(self) -> np.ndarray:
        """The statistical bound of the rest of the error (``spread`` less the known part)."""
        return np.maximum(self.spread - np.abs(self.signed()), 0.0)

    def tolerance(self) -> np.ndarray:
        """The tolerance of these words (:meth:`ErrorBounds.tolerance`)."""
        return _tolerance(self.worst, self.spread, self.known)

    def rounded(self, rounding: float, coherent: bool = False) -> _Error:
        """Plus a new rounding of at most ``rounding``: independent of the error so far (in
        quadrature), or ``coherent`` (linearly: an element-wise op's rounding may repeat with
        the same sign step after step, e.g. a cell state at a fixed point)."""
        spread = self.spread + rounding if coherent else np.sqrt(self.spread**2 + rounding**2)
        return _Error(self.worst + rounding, spread, self.taint.copy())


def _tolerance(
    worst: np.ndarray, spread: np.ndarray, known: np.ndarray | None = None
) -> np.ndarray:
    """The statistical bound where it is below the worst case: the known signed part's
    magnitude (exact) plus ``SPREAD_SAFETY`` times the spread of the rest."""
    if known is None:
        return np.minimum(worst, SPREAD_SAFETY * spread)
    size = np.abs(known)
    return np.minimum(worst, size + SPREAD_SAFETY * np.maximum(spread - size, 0.0))


def _centre(worst: np.ndarray, spread: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The known part ``k``: the error lies within ``_tolerance - |k|`` of it, both where the
    statistical bound is the tolerance (``6 s'`` of it) and where the worst case ``e`` is
    (the rules keep ``e >= |k| + w``, ``w`` a bound of the rest). Clipped to the tolerance,
    against rounding in ``e``, so that distance is never negative."""
    tolerance = _tolerance(worst, spread, known)
    return np.clip(known, -tolerance, tolerance)


@dataclass(frozen=True)
class _Stream:
    """The broadcast stream: |values| and their errors."""

    magnitude: np.ndarray
    error: _Error


# --- one rule per instruction class ------------------------------------------------------------


def _nothing(bounds: ErrorBounds, item: object, read: ReadView) -> None:
    """This phase changes no bound."""


@dataclass(frozen=True)
class Rule:
    """How one instruction class changes the bounds: ``before`` sees the instruction and the
    state before it runs, ``after`` its event and the state after."""

    before: Callable[[ErrorBounds, Any, ReadView], None] = _nothing
    after: Callable[[ErrorBounds, Any, ReadView], None] = _nothing


def _broadcast(bounds: ErrorBounds, ins: BroadcastActivation, read: ReadView) -> None:
    views = [s for s in ins.sources if isinstance(s, View)]
    bounds._stream_frac = bounds.frac(views[0]) if views else 0
    # #1 is 1.0 quantised to the stream's format: exact unless it saturates (F >= 15).
    one = min(2.0**bounds._stream_frac, WORD_MAX) * 2.0**-bounds._stream_frac
    lead = bounds._lead
    one_error = np.full((*lead, 1), 1.0 - one if bounds.fixed_point else 0.0)
    values, errors = [], []
    for source in ins.sources:
        if isinstance(source, One):
            values.append(np.full((*lead, 1), one))
            errors.append(_Error(one_error, one_error, np.zeros((*lead, 1), bool), -one_error))
        else:
            values.append(read(source))
            errors.append(bounds.error(source))
    bounds._stream = _Stream(
        np.abs(np.concatenate(values, axis=-1)),
        _Error(
            *(np.concatenate([getattr(e, f) for e in errors], axis=-1) for f in _FIELDS),
            known=np.concatenate([e.signed() for e in errors], axis=-1),
        ),
    )


_FIELDS = ("worst", "spread", "taint")


def _mac(bounds: ErrorBounds, ins: SparseColumnMac, read: ReadView) -> None:
    assert bounds._stream is not None, "the verifier guarantees a broadcast before a MAC"
    _accumulate(bounds, ins.layer, *_mac_terms(bounds, ins.layer, bounds._stream))


def _mac_terms(
    bounds: ErrorBounds, layer: str, stream: _Stream
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A MAC's worst-case bounds, squared spreads and taints of the rows of ``layer`` from
    the broadcast ``stream`` (one run's, or lanes x columns: rows or lanes x rows): each sum
    over a row's stored entries is one sparse product for every lane."""
    w = bounds.layer(layer)
    lead = stream.magnitude.shape[:-1]

    def columns(values: np.ndarray) -> np.ndarray:
        # columns x lanes, C-contiguous: the sparse products take it without a copy each
        return np.ascontiguousarray(values.reshape(-1, w.cols).T)

    magnitude = columns(stream.magnitude)
    e_worst = columns(stream.error.worst)
    reach = magnitude + e_worst  # bounds |a_ref|
    worst = w.sums("weight", e_worst) + w.dw * w.sums("one", reach)
    worst += bounds.float_gamma(w.cols + 1) * w.sums("weight_dw", reach)
    # In quadrature: the inputs' errors, each codebook entry's rounding (shared by the row's
    # entries of that code), the float32 reference's roundings (sqrt(K) instead of K terms).
    # The inputs' known signed errors (the host's quantisation, element-wise roundings)
    # propagate exactly, added to the rest. |a_ref| is taken within the inputs' tolerances (the
    # worst case may be vacuous, e.g. in a recurrence).
    reach = magnitude + columns(stream.error.tolerance())
    float_sum = w.sums("weight_dw", reach)
    u = bounds.float_u()
    spread_sq = w.dw**2 * w.code_square_sums(reach)
    spread_sq += (u * np.sqrt(w.cols + 1) * float_sum) ** 2
    spread_sq += w.sums("weight_sq", columns(stream.error.unknown()) ** 2)
    known = np.abs(w.sums("signed", columns(stream.error.signed())))
    spread_sq = (known + np.sqrt(spread_sq)) ** 2
    taint = w.sums("one", columns(stream.error.taint).astype(np.float64)) > 0

    def rows(sums: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(sums.T).reshape(*lead, w.rows)

    return rows(worst), rows(spread_sq), rows(taint)


def _sum16(terms: np.ndarray) -> np.ndarray:
    """The sums over axis 1 (16 terms) of ``terms`` (rows x 16 x lanes), added in one fixed
    order whatever the number of lanes: numpy's pairwise order for 16 (eight sums of two,
    then a tree)."""
    r = terms[:, :8] + terms[:, 8:]
    return ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))


def _accumulate(
    bounds: ErrorBounds, layer: str, worst: np.ndarray, spread_sq: np.ndarray, taint: np.ndarray
) -> None:
    """Add a MAC's terms (:func:`_mac_terms`) to the pending accumulators' bounds."""
    if bounds._acc is not None:
        worst = bounds._acc.worst + worst
        spread_sq = bounds._acc.spread**2 + spread_sq
        taint = bounds._acc.taint | taint
    bounds._acc = _Error(worst, np.sqrt(spread_sq), taint)
    bounds._acc_layer = layer


def _mac_after(bounds: ErrorBounds, event: Event, read: ReadView) -> None:
    if bounds._acc is not None and _any(event.saturations):  # the wide accumulators overflowed
        acc = bounds._acc
        hit = True if bounds.lanes is None else bounds._clamped_lanes(event)[:, None]
        bounds._acc = _Error(acc.worst, acc.spread, acc.taint | hit)
        bounds.note_saturation(
            event, f"accumulators of {bounds._acc_layer}", event.saturations, accumulator=True
        )


def _writeback(bounds: ErrorBounds, ins: Writeback | ReluWriteback, read: ReadView) -> None:
    assert bounds._acc is not None, "the verifier guarantees pending accumulators"
    layer = bounds.program.layers[bounds._acc_layer]
    acc_frac = layer.codebook.frac + bounds._stream_frac
    error = bounds._acc.rounded(bounds.rounding(acc_frac, bounds.frac(ins.dst)))
    bounds.store(ins.dst, error)
    step = bounds._steps.get(bounds._acc_layer, 0)
    bounds._steps[bounds._acc_layer] = step + 1
    bounds.writebacks.append(
        LayerBound(
            bounds._acc_layer,
            step,
            ins.dst,
            np.empty(0),
            error.tolerance(),
            error.taint.copy(),
        )
    )
    bounds._acc = None


def _writeback_after(bounds: ErrorBounds, event: Event, read: ReadView) -> None:
    ins = event.instruction
    assert isinstance(ins, Writeback | ReluWriteback)
    last = bounds.writebacks[-1]
    last.values = read(ins.dst).copy()
    _taint_clamped(bounds, event, ins.dst, read)
    last.saturated = bounds.error(ins.dst).taint.copy()


def _taint_clamped(bounds: ErrorBounds, event: Event, dst: View, read: ReadView) -> None:
    if not bounds.fixed_point or not _any(event.saturations):
        return  # nothing clamped: dst's bounds (stored by this instruction) stay as they are
    error = bounds.error(dst)
    taint = error.taint | bounds.clamped(event, dst, read)
    bounds.store(dst, _Error(error.worst, error.spread, taint, None, error.known))


def _copy(bounds: ErrorBounds, ins: EwCopy, read: ReadView) -> None:
    rounding = bounds.rounding(bounds.frac(ins.a), bounds.frac(ins.dst))
    e_a = bounds.error(ins.a)
    error = _Error(e_a.worst + rounding, e_a.spread.copy(), e_a.taint.copy(), None, e_a.signed())
    bounds.store(ins.dst, error)
    bounds._unrounded = (read(ins.a).copy(), rounding)


def _add_or_mul(bounds: ErrorBounds, ins: EwAdd | EwMul, read: ReadView) -> None:
    u = bounds.float_u()
    va, vb = read(ins.a), read(ins.b)
    a, b = np.abs(va), np.abs(vb)
    e_a, e_b = bounds.error(ins.a), bounds.error(ins.b)
    k_a, k_b = e_a.signed(), e_b.signed()
    s_a, s_b = e_a.unknown(), e_b.unknown()
    fa, fb = bounds.frac(ins.a), bounds.frac(ins.b)
    # The operands' errors may be correlated (both from one earlier layer): they add.
    if isinstance(ins, EwAdd):
        rounding = bounds.rounding(max(fa, fb), bounds.frac(ins.dst))
        worst = e_a.worst + e_b.worst + u * (a + b + e_a.worst + e_b.worst)
        known = k_a + k_b
        unknown = s_a + s_b + u * (a + b + e_a.spread + e_b.spread)
        exact = va + vb
    else:
        rounding = bounds.rounding(fa + fb, bounds.frac(ins.dst))
        worst = a * e_b.worst + b * e_a.worst + e_a.worst * e_b.worst
        worst += u * (a + e_a.worst) * (b + e_b.worst)
        # D - D_ref = a k_b + b k_a - k_a k_b (known) + (a - k_a) U_b + (b - k_b) U_a - U_a U_b
        # for errors k + U of a and b. The factors' unknown errors are independent (different
        # gate rows), unless they are one word.
        known = va * k_b + vb * k_a - k_a * k_b
        terms = (np.abs(va - k_a) * s_b, np.abs(vb - k_b) * s_a)
        unknown = sum(terms) if ins.a == ins.b else np.hypot(*terms)
        unknown += s_a * s_b
        unknown += u * (a + e_a.spread) * (b + e_b.spread)
        exact = va * vb
    error = _Error(worst + rounding, np.abs(known) + unknown, e_a.taint | e_b.taint, None, known)
    bounds.store(ins.dst, error)
    bounds._unrounded = (exact, rounding)


def _elementwise_after(bounds: ErrorBounds, event: Event, read: ReadView) -> None:
    """The rounding the emulator made, signed (its result less the exact one), joins the
    known part; a difference beyond the rounding bound is not a rounding (a saturation, a
    wrong result) and only the bound's share of it is taken, so the rest shows as error."""
    dst = event.instruction.dst  # type: ignore[attr-defined]
    if bounds._unrounded is not None:
        exact, rounding = bounds._unrounded
        bounds._unrounded = None
        made = np.clip(read(dst) - exact, -rounding, rounding)
        error = bounds.error(dst)
        unknown = error.unknown()
        known = error.signed() + np.where(np.isfinite(made), made, 0.0)
        bounds.store(dst, _Error(error.worst, np.abs(known) + unknown, error.taint, None, known))
    _taint_clamped(bounds, event, dst, read)


def _lut(bounds: ErrorBounds, ins: EwLut, read: ReadView) -> None:
    # D may alias A: keep A's values and bounds for after().
    bounds._lut_input = (read(ins.a).copy(), bounds.error(ins.a).copy())


def _lut_after(bounds: ErrorBounds, event: Event, read: ReadView) -> None:
    ins = event.instruction
    assert isinstance(ins, EwLut) and bounds._lut_input is not None, "before() saw this ew-lut"
    a, e_a = bounds._lut_input
    table = bounds.program.tables[ins.table]
    fn, shape = TABLE_FUNCTIONS[table.fn], TABLE_SHAPES[table.fn]
    # The error of the emulator's output at its own input a: a correct table's (fixed16; the
    # table itself is not trusted) or float32's rounding of fn(a), and the reference's.
    own = bounds.float_u() * np.abs(fn(a))
    if bounds.fixed_point:
        own += table_error(table, a, bounds.frac(ins.a), bounds.frac(ins.dst))
    # The reference's input lies within e_a of a: |fn(a) - fn(a_ref)| <= max |fn'| * e_a over
    # that interval; the statistical bound takes the interval of a's tolerance.
    radius = e_a.spread
    worst = own + shape.steepest(a - e_a.worst, a + e_a.worst) * e_a.worst
    spread = own + shape.steepest(a - radius, a + radius) * e_a.spread
    # fn(a_ref) is in fn's range, so the error is at most the output's distance to its ends.
    out = read(ins.dst)
    cap = np.maximum(out - shape.low, shape.high - out)
    bounds.store(ins.dst, _Error(np.minimum(worst, cap), np.minimum(spread, cap), e_a.taint))
    _taint_clamped(bounds, event, ins.dst, read)
    bounds._lut_input = None


def table_error(table: Table, a: np.ndarray, a_frac: int, out_frac: int) -> np.ndarray:
    """``|lut(a) - fn(a)|`` at each input ``a`` (``a_frac`` fraction bits, result rounded to
    ``out_frac``) for the table isa/SPEC.md §3.5 describes with ``table``'s layout: every sample
    fn at its point rounded to the nearest word (``quantize``), evaluated with the emulator's
    own ``ew-lut`` arithmetic. The error a correct table has, from fn and the layout alone,
    never from the program's samples: a wrong sample shows as an error beyond the bound."""
    fn = TABLE_FUNCTIONS[table.fn]
    points = table.lo + np.arange(table.values.size) * 2.0**table.step_log2
    samples, _ = quantize(fn(points), table.frac)
    correct = replace(table, values=samples)
    words = np.floor(a * 2.0**a_frac + 0.5).astype(np.int64)  # a is on its grid
    out, _ = FixedArith(acc_bits=64).lut(words, a_frac, correct, out_frac)  # no accumulator
    return np.abs(dequantize(out, out_frac) - fn(a))


#: Instruction class -> how it changes the bounds (every class of ``INSTRUCTIONS``).
RULES: dict[type[Instruction], Rule] = {
    LoadCodebook: Rule(),
    BroadcastActivation: Rule(before=_broadcast),
    SparseColumnMac: Rule(before=_mac, after=_mac_after),
    StreamChunk: Rule(),  # moves weights from DRAM to SRAM: no value, so no bound, changes
    Writeback: Rule(before=_writeback, after=_writeback_after),
    ReluWriteback: Rule(before=_writeback, after=_writeback_after),
    EwAdd: Rule(before=_add_or_mul, after=_elementwise_after),
    EwMul: Rule(before=_add_or_mul, after=_elementwise_after),
    EwCopy: Rule(before=_copy, after=_elementwise_after),
    EwLut: Rule(before=_lut, after=_lut_after),
    Halt: Rule(),
}


def missing_rules(rules: Mapping[type[Instruction], Rule]) -> list[str]:
    """Mnemonics of the ISA's instructions that ``rules`` has no rule for."""
    return sorted(m for m, cls in INSTRUCTIONS.items() if cls not in rules)


def rule(instruction: Instruction) -> Rule:
    """The rule of ``instruction``'s class; EmulatorError when there is none."""
    found = RULES.get(type(instruction))
    if found is None:
        raise EmulatorError(
            f"no error-bound rule for '{instruction.MNEMONIC}'",
            where="eiec.emulator.bounds.RULES",
            fix="add a Rule for the instruction class: how it changes each word's bound",
        )
    return found


if missing_rules(RULES):
    raise ImportError(f"eiec.emulator.bounds.RULES lacks {', '.join(missing_rules(RULES))}")
if set(TABLE_FUNCTIONS) - set(TABLE_SHAPES):
    raise ImportError(
        "eiec.emulator.bounds.TABLE_SHAPES lacks "
        + ", ".join(sorted(set(TABLE_FUNCTIONS) - set(TABLE_SHAPES)))
    )
