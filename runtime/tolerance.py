"""Error bounds of an EIE program's result against the float32 CPU model it was compiled from.

The emulator and the compressed CPU model compute the same function with the same pruned and
weight-shared weights; they differ only where the program's fixed-point formats round. This
module propagates a per-word bound ``e`` on ``|emulator value - CPU value|`` through the
instruction stream, alongside an emulator run, so every buffer word (and so every output
element) gets its own tolerance. The terms, for fixed16 arithmetic:

- **input quantisation**: a host input ``x`` stored with F fraction bits is off by exactly
  ``|x - round(x * 2**F) / 2**F|`` (at most ``2**-(F+1)``); constant buffers are exact, and so
  is ``#1`` unless the stream has 15 or more fraction bits (it then saturates to 1 - 2**-15).
- **codebook quantisation**: a stored weight ``c`` (a k-means centroid, float32 in the CPU
  model) becomes ``round(c * 2**Fc) / 2**Fc``: off by at most ``dw = 2**-(Fc+1)``.
- **MAC** (exact in the wide accumulators): for row i, with ``a`` the emulator's broadcast
  values and ``e_a`` their bounds, ``|W_q a - W a_ref| <= sum_j |W_q[i,j]| e_a[j]
  + dw * sum_{j stored} (|a_j| + e_a[j])`` (W_q: the program's decoded weights, including the
  bias column, whose activation ``#1`` is exact). Several MACs before a writeback add up.
- **writeback**: rounding the accumulator to the destination's F bits adds ``2**-(F+1)`` when the
  accumulator has more fraction bits; ReLU is 1-Lipschitz so the bound passes through.
- **element-wise**: ``ew-add`` adds the operands' bounds, ``ew-mul`` adds
  ``|a| e_b + |b| e_a + e_a e_b``, each plus its output rounding; ``ew-lut`` uses the measured
  ``|D - fn(a)|`` of the emulator's own output plus ``L_fn * e_a`` (``L = 1/4`` for sigmoid,
  1 for tanh).
- **float32 reference**: the CPU model rounds too; a K-term dot product is within
  ``gamma(K+1) * sum_j |W_ij| |a_j|`` of exact (``gamma(n) = n u / (1 - n u)``, u = 2**-24),
  element-wise ops within ``u`` of their magnitude. These terms are added (twice in float32
  mode, where the emulator rounds as well; that mode has no fixed-point terms).

Saturation breaks the bounds (a clamped word may be off by anything); the emulator counts
saturations and :mod:`eiec.runtime.verify` reports them beside a failed comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from eiec.emulator.arith import TABLE_FUNCTIONS
from eiec.isa import csc
from eiec.isa.fixed import dequantize, quantize
from eiec.isa.program import (
    WORD_MAX,
    BroadcastActivation,
    EwAdd,
    EwCopy,
    EwLut,
    EwMul,
    Instruction,
    One,
    Program,
    ReluWriteback,
    SparseColumnMac,
    View,
    Writeback,
)

#: Unit roundoff of float32.
FLOAT32_U = 2.0**-24
#: Lipschitz constants of the table functions (largest |f'|).
LIPSCHITZ = {"sigmoid": 0.25, "tanh": 1.0}

#: Reads a view's current contents as real values (dequantised).
ReadView = Callable[[View], np.ndarray]


def gamma(n: int) -> float:
    """Higham's bound on the relative error of an n-term float32 sum of products."""
    nu = n * FLOAT32_U
    return nu / (1.0 - nu)


def _half_lsb(from_frac: int, to_frac: int) -> float:
    """Rounding error of narrowing ``from_frac`` to ``to_frac`` fraction bits."""
    return 2.0 ** -(to_frac + 1) if from_frac > to_frac else 0.0


@dataclass
class LayerBound:
    """One writeback: the layer, where it went, the emulator's values and their bounds."""

    layer: str
    step: int
    dst: View
    values: np.ndarray
    bound: np.ndarray


@dataclass(frozen=True)
class _StoredWeights:
    """A layer's stored entries (v != 0) as coordinates, with |W_q| and the codebook rounding."""

    rows: int
    cols: int
    row: np.ndarray
    col: np.ndarray
    weight: np.ndarray
    dw: float

    @classmethod
    def of(cls, program: Program, name: str) -> _StoredWeights:
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
            dw=2.0 ** -(layer.codebook.frac + 1),
        )

    def rowsum(self, per_entry: np.ndarray) -> np.ndarray:
        """Sum of a per-entry quantity over each row's entries."""
        return np.bincount(self.row, weights=per_entry, minlength=self.rows)


@dataclass
class ErrorBounds:
    """Per-word error bounds of every buffer, updated instruction by instruction.

    Call :meth:`start` with the host inputs, then for each instruction :meth:`before` (with the
    state before it executes) and :meth:`after` (with the state after it).
    """

    program: Program
    fixed_point: bool = True
    words: dict[str, np.ndarray] = field(default_factory=dict)
    writebacks: list[LayerBound] = field(default_factory=list)
    _stream: tuple[np.ndarray, np.ndarray] | None = None
    _stream_frac: int = 0
    _acc: np.ndarray | None = None
    _acc_layer: str = ""
    _steps: dict[str, int] = field(default_factory=dict)
    _lut_input: tuple[np.ndarray, np.ndarray] | None = None
    _weights: dict[str, _StoredWeights] = field(default_factory=dict)

    # --- set-up --------------------------------------------------------------------------------

    def start(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Reset: constants are exact, inputs carry their quantisation error."""
        self.words = {name: np.zeros(buf.size) for name, buf in self.program.buffers.items()}
        self.writebacks = []
        self._stream, self._acc, self._steps = None, None, {}
        for port in self.program.inputs:
            buf = self.program.buffers[port.buffer]
            value = np.asarray(inputs[port.name], dtype=np.float64).reshape(buf.rows, buf.cols)
            if self.fixed_point:
                words, _ = quantize(value, buf.frac)  # as the emulator stores the input
                error = np.abs(value - dequantize(words, buf.frac))
            else:
                error = np.abs(value - value.astype(np.float32))
            grid = self.words[port.buffer].reshape(buf.rows, buf.pitch)
            grid[:, : buf.cols] = error

    def _layer(self, name: str) -> _StoredWeights:
        if name not in self._weights:
            self._weights[name] = _StoredWeights.of(self.program, name)
        return self._weights[name]

    def _bound(self, view: View) -> np.ndarray:
        start = self.program.view_offset(view)
        return self.words[view.buffer][start : start + self.program.view_length(view)]

    def _store(self, view: View, bound: np.ndarray) -> None:
        start = self.program.view_offset(view)
        self.words[view.buffer][start : start + self.program.view_length(view)] = bound

    def _float_factor(self) -> float:
        """How many float32 computations round: the CPU model's, and the emulator's if float."""
        return 1.0 if self.fixed_point else 2.0

    # --- per instruction -----------------------------------------------------------------------

    def before(self, ins: Instruction, read: ReadView) -> None:
        """Account for ``ins`` using the machine state before it runs."""
        if isinstance(ins, BroadcastActivation):
            self._broadcast(ins, read)
        elif isinstance(ins, SparseColumnMac):
            self._mac(ins)
        elif isinstance(ins, Writeback | ReluWriteback):
            self._writeback(ins, read)
        elif isinstance(ins, EwAdd | EwMul | EwCopy):
            self._elementwise(ins, read)
        elif isinstance(ins, EwLut):
            # D may alias A: keep A's values and bounds for after().
            self._lut_input = (read(ins.a).copy(), self._bound(ins.a).copy())

    def after(self, ins: Instruction, read: ReadView) -> None:
        """Account for ``ins`` using the machine state after it ran (writebacks, ``ew-lut``)."""
        if isinstance(ins, Writeback | ReluWriteback):
            last = self.writebacks[-1]
            last.values = read(ins.dst).copy()
        elif isinstance(ins, EwLut):
            self._lut(ins, read)

    def _broadcast(self, ins: BroadcastActivation, read: ReadView) -> None:
        views = [s for s in ins.sources if isinstance(s, View)]
        self._stream_frac = self.program.buffers[views[0].buffer].frac if views else 0
        # #1 is 1.0 quantised to the stream's format: exact unless it saturates (F >= 15).
        one = min(2.0**self._stream_frac, WORD_MAX) * 2.0**-self._stream_frac
        one_error = 1.0 - one if self.fixed_point else 0.0
        values, bounds = [], []
        for source in ins.sources:
            if isinstance(source, One):
                values.append(np.array([one]))
                bounds.append(np.array([one_error]))
            else:
                values.append(read(source))
                bounds.append(self._bound(source))
        self._stream = (np.abs(np.concatenate(values)), np.concatenate(bounds))

    def _mac(self, ins: SparseColumnMac) -> None:
        assert self._stream is not None, "the verifier guarantees a broadcast before a MAC"
        magnitude, e_a = self._stream
        w = self._layer(ins.layer)
        reach = magnitude + e_a  # bounds |a_ref|
        error = w.rowsum(w.weight * e_a[w.col]) + w.dw * w.rowsum(reach[w.col])
        float_error = w.rowsum((w.weight + w.dw) * reach[w.col])
        error += self._float_factor() * gamma(w.cols + 1) * float_error
        self._acc = error if self._acc is None else self._acc + error
        self._acc_layer = ins.layer

    def _writeback(self, ins: Writeback | ReluWriteback, read: ReadView) -> None:
        assert self._acc is not None, "the verifier guarantees pending accumulators"
        layer = self.program.layers[self._acc_layer]
        dst_frac = self.program.buffers[ins.dst.buffer].frac
        acc_frac = layer.codebook.frac + self._stream_frac
        rounding = _half_lsb(acc_frac, dst_frac) if self.fixed_point else 0.0
        bound = self._acc + rounding
        self._store(ins.dst, bound)
        step = self._steps.get(self._acc_layer, 0)
        self._steps[self._acc_layer] = step + 1
        self.writebacks.append(
            LayerBound(self._acc_layer, step, ins.dst, np.empty(0), bound.copy())
        )
        self._acc = None

    def _elementwise(self, ins: EwAdd | EwMul | EwCopy, read: ReadView) -> None:
        fracs = self.program.buffers
        dst_frac = fracs[ins.dst.buffer].frac
        fixed = self.fixed_point
        u = self._float_factor() * FLOAT32_U
        if isinstance(ins, EwCopy):
            e_a = self._bound(ins.a)
            rounding = _half_lsb(fracs[ins.a.buffer].frac, dst_frac) if fixed else 0.0
            self._store(ins.dst, e_a + rounding)
            return
        a, b = np.abs(read(ins.a)), np.abs(read(ins.b))
        e_a, e_b = self._bound(ins.a), self._bound(ins.b)
        fa, fb = fracs[ins.a.buffer].frac, fracs[ins.b.buffer].frac
        if isinstance(ins, EwAdd):
            rounding = _half_lsb(max(fa, fb), dst_frac) if fixed else 0.0
            bound = e_a + e_b + u * (a + b + e_a + e_b)
        else:
            rounding = _half_lsb(fa + fb, dst_frac) if fixed else 0.0
            bound = a * e_b + b * e_a + e_a * e_b + u * (a + e_a) * (b + e_b)
        self._store(ins.dst, bound + rounding)

    def _lut(self, ins: EwLut, read: ReadView) -> None:
        assert self._lut_input is not None, "before() saw this ew-lut"
        source, e_a = self._lut_input
        fn = self.program.tables[ins.table].fn
        exact = TABLE_FUNCTIONS[fn](source)
        # The emulator's own table error, measured against the exact function of its input.
        measured = np.abs(read(ins.dst) - exact)
        bound = measured + LIPSCHITZ[fn] * e_a + self._float_factor() * FLOAT32_U * np.abs(exact)
        self._store(ins.dst, bound)
        self._lut_input = None
