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

**Saturation** breaks the bounds (a clamped word may be off by anything): a word an instruction
clamped, and every word computed from it, is *tainted* (``saturated``, per word, propagated
like the bounds: a MAC row through its stored entries' columns). An input is tainted where it
lies beyond its buffer's range. A word of an instruction that reported saturations is taken
as clamped when it sits at a rail of its format (``-2**15`` or ``2**15 - 1`` words), so a value
that rounds exactly onto a rail is counted too (never the reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eiec.emulator.arith import TABLE_FUNCTIONS
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
    View,
    Writeback,
)

#: Unit roundoff of float32.
FLOAT32_U = 2.0**-24
#: Lipschitz constants of the table functions (largest |f'|).
LIPSCHITZ = {"sigmoid": 0.25, "tanh": 1.0}


def gamma(n: int) -> float:
    """Higham's bound on the relative error of an n-term float32 sum of products."""
    nu = n * FLOAT32_U
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
    """Where a saturation first happened: the instruction's index, its text and the buffer (or
    input port) it clamped."""

    pc: int | None
    where: str
    words: int


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

    def rowany(self, per_entry: np.ndarray) -> np.ndarray:
        """Whether any of each row's entries has ``per_entry`` set."""
        return self.rowsum(per_entry.astype(np.float64)) > 0


@dataclass
class ErrorBounds:
    """Per-word error bounds and saturation taints of every buffer, updated instruction by
    instruction as a probe of :class:`eiec.emulator.emulator.Emulator` (``probes=[bounds]``).

    After a run, ``words[buffer]`` holds the bounds, ``saturated[buffer]`` the taints,
    ``writebacks`` one :class:`LayerBound` per writeback, ``first_saturation`` the first clamp.
    """

    program: Program
    fixed_point: bool = True
    words: dict[str, np.ndarray] = field(default_factory=dict)
    saturated: dict[str, np.ndarray] = field(default_factory=dict)
    writebacks: list[LayerBound] = field(default_factory=list)
    first_saturation: Saturation | None = None
    _stream: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    _stream_frac: int = 0
    _acc: tuple[np.ndarray, np.ndarray] | None = None
    _acc_layer: str = ""
    _steps: dict[str, int] = field(default_factory=dict)
    _lut_input: tuple[np.ndarray, np.ndarray] | None = None
    _weights: dict[str, _StoredWeights] = field(default_factory=dict)

    # --- the probe ------------------------------------------------------------------------------

    def start(self, inputs: Mapping[str, np.ndarray], read: ReadView) -> None:
        """Reset: constants are exact, inputs carry their quantisation error."""
        program = self.program
        self.words = {name: np.zeros(buf.size) for name, buf in program.buffers.items()}
        self.saturated = {name: np.zeros(buf.size, bool) for name, buf in program.buffers.items()}
        self.writebacks, self.first_saturation = [], None
        self._stream, self._acc, self._steps = None, None, {}
        for port in program.inputs:
            buf = program.buffers[port.buffer]
            value = np.asarray(inputs[port.name], dtype=np.float64).reshape(buf.rows, buf.cols)
            if self.fixed_point:
                words, _ = quantize(value, buf.frac)  # as the emulator stores the input
                error = np.abs(value - dequantize(words, buf.frac))
                clamped = np.abs(value) * 2.0**buf.frac > WORD_MAX + 0.5
            else:
                error = np.abs(value - value.astype(np.float32))
                clamped = np.zeros(value.shape, bool)
            self.words[port.buffer].reshape(buf.rows, buf.pitch)[:, : buf.cols] = error
            self.saturated[port.buffer].reshape(buf.rows, buf.pitch)[:, : buf.cols] = clamped
            if clamped.any() and self.first_saturation is None:
                self.first_saturation = Saturation(
                    None, f"input '{port.name}' (buffer '{port.buffer}')", int(clamped.sum())
                )

    def before(self, instruction: Instruction, read: ReadView) -> None:
        """Account for ``instruction`` using the machine state before it runs."""
        rule(instruction).before(self, instruction, read)

    def after(self, event: Event, read: ReadView) -> None:
        """Account for ``event.instruction`` using the machine state after it ran."""
        rule(event.instruction).after(self, event, read)

    # --- helpers --------------------------------------------------------------------------------

    def layer(self, name: str) -> _StoredWeights:
        """A layer's stored weights (cached)."""
        if name not in self._weights:
            self._weights[name] = _StoredWeights.of(self.program, name)
        return self._weights[name]

    def bound(self, view: View) -> np.ndarray:
        """The bounds of a view's words."""
        return self.words[view.buffer][self._span(view)]

    def taint(self, view: View) -> np.ndarray:
        """Which of a view's words depend on a saturated word."""
        return self.saturated[view.buffer][self._span(view)]

    def store(self, view: View, bound: np.ndarray, taint: np.ndarray) -> None:
        """Set a view's bounds and taints."""
        self.words[view.buffer][self._span(view)] = bound
        self.saturated[view.buffer][self._span(view)] = taint

    def _span(self, view: View) -> slice:
        start = self.program.view_offset(view)
        return slice(start, start + self.program.view_length(view))

    def float_factor(self) -> float:
        """How many float32 computations round: the CPU model's, and the emulator's if float."""
        return 1.0 if self.fixed_point else 2.0

    def clamped(self, event: Event, dst: View, read: ReadView) -> np.ndarray:
        """The words of ``dst`` that ``event`` clamped (those on a rail, if it clamped any)."""
        length = self.program.view_length(dst)
        if not event.saturations or not self.fixed_point:
            return np.zeros(length, bool)
        rail = WORD_MAX * 2.0 ** -self.program.buffers[dst.buffer].frac
        on_rail = np.abs(read(dst)) >= rail
        self.note_saturation(event, dst.buffer, int(on_rail.sum()))
        return on_rail

    def note_saturation(self, event: Event, where: str, words: int) -> None:
        """Remember the first saturation of the run."""
        if self.first_saturation is None:
            text = format_instruction(event.instruction)
            self.first_saturation = Saturation(
                event.pc, f"instruction {event.pc} ({text}), buffer '{where}'", words
            )


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
    program = bounds.program
    views = [s for s in ins.sources if isinstance(s, View)]
    bounds._stream_frac = program.buffers[views[0].buffer].frac if views else 0
    # #1 is 1.0 quantised to the stream's format: exact unless it saturates (F >= 15).
    one = min(2.0**bounds._stream_frac, WORD_MAX) * 2.0**-bounds._stream_frac
    one_error = 1.0 - one if bounds.fixed_point else 0.0
    values, errors, taints = [], [], []
    for source in ins.sources:
        if isinstance(source, One):
            values.append(np.array([one]))
            errors.append(np.array([one_error]))
            taints.append(np.zeros(1, bool))
        else:
            values.append(read(source))
            errors.append(bounds.bound(source))
            taints.append(bounds.taint(source))
    bounds._stream = (
        np.abs(np.concatenate(values)),
        np.concatenate(errors),
        np.concatenate(taints),
    )


def _mac(bounds: ErrorBounds, ins: SparseColumnMac, read: ReadView) -> None:
    assert bounds._stream is not None, "the verifier guarantees a broadcast before a MAC"
    magnitude, e_a, taint_a = bounds._stream
    w = bounds.layer(ins.layer)
    reach = magnitude + e_a  # bounds |a_ref|
    error = w.rowsum(w.weight * e_a[w.col]) + w.dw * w.rowsum(reach[w.col])
    float_error = w.rowsum((w.weight + w.dw) * reach[w.col])
    error += bounds.float_factor() * gamma(w.cols + 1) * float_error
    taint = w.rowany(taint_a[w.col])
    if bounds._acc is not None:
        error, taint = bounds._acc[0] + error, bounds._acc[1] | taint
    bounds._acc = (error, taint)
    bounds._acc_layer = ins.layer


def _mac_after(bounds: ErrorBounds, event: Event, read: ReadView) -> None:
    if event.saturations and bounds._acc is not None:  # the wide accumulators overflowed
        bounds._acc = (bounds._acc[0], np.ones_like(bounds._acc[1]))
        bounds.note_saturation(event, f"accumulators of {bounds._acc_layer}", event.saturations)


def _writeback(bounds: ErrorBounds, ins: Writeback | ReluWriteback, read: ReadView) -> None:
    assert bounds._acc is not None, "the verifier guarantees pending accumulators"
    program = bounds.program
    layer = program.layers[bounds._acc_layer]
    dst_frac = program.buffers[ins.dst.buffer].frac
    acc_frac = layer.codebook.frac + bounds._stream_frac
    rounding = _half_lsb(acc_frac, dst_frac) if bounds.fixed_point else 0.0
    error, taint = bounds._acc
    bound = error + rounding
    bounds.store(ins.dst, bound, taint)
    step = bounds._steps.get(bounds._acc_layer, 0)
    bounds._steps[bounds._acc_layer] = step + 1
    bounds.writebacks.append(
        LayerBound(bounds._acc_layer, step, ins.dst, np.empty(0), bound.copy(), taint.copy())
    )
    bounds._acc = None


def _writeback_after(bounds: ErrorBounds, event: Event, read: ReadView) -> None:
    ins = event.instruction
    assert isinstance(ins, Writeback | ReluWriteback)
    last = bounds.writebacks[-1]
    last.values = read(ins.dst).copy()
    last.saturated = last.saturated | bounds.clamped(event, ins.dst, read)
    bounds.store(ins.dst, last.bound, last.saturated)


def _copy(bounds: ErrorBounds, ins: EwCopy, read: ReadView) -> None:
    buffers = bounds.program.buffers
    rounding = _half_lsb(buffers[ins.a.buffer].frac, buffers[ins.dst.buffer].frac)
    bounds.store(
        ins.dst,
        bounds.bound(ins.a) + (rounding if bounds.fixed_point else 0.0),
        bounds.taint(ins.a).copy(),
    )


def _add_or_mul(bounds: ErrorBounds, ins: EwAdd | EwMul, read: ReadView) -> None:
    buffers = bounds.program.buffers
    dst_frac = buffers[ins.dst.buffer].frac
    u = bounds.float_factor() * FLOAT32_U
    a, b = np.abs(read(ins.a)), np.abs(read(ins.b))
    e_a, e_b = bounds.bound(ins.a), bounds.bound(ins.b)
    fa, fb = buffers[ins.a.buffer].frac, buffers[ins.b.buffer].frac
    if isinstance(ins, EwAdd):
        rounding = _half_lsb(max(fa, fb), dst_frac)
        bound = e_a + e_b + u * (a + b + e_a + e_b)
    else:
        rounding = _half_lsb(fa + fb, dst_frac)
        bound = a * e_b + b * e_a + e_a * e_b + u * (a + e_a) * (b + e_b)
    taint = bounds.taint(ins.a) | bounds.taint(ins.b)
    bounds.store(ins.dst, bound + (rounding if bounds.fixed_point else 0.0), taint)


def _elementwise_after(bounds: ErrorBounds, event: Event, read: ReadView) -> None:
    dst = event.instruction.dst  # type: ignore[attr-defined]
    bounds.store(dst, bounds.bound(dst), bounds.taint(dst) | bounds.clamped(event, dst, read))


def _lut(bounds: ErrorBounds, ins: EwLut, read: ReadView) -> None:
    # D may alias A: keep A's values and bounds for after().
    bounds._lut_input = (read(ins.a).copy(), bounds.bound(ins.a).copy())
    bounds.store(ins.dst, bounds.bound(ins.dst), bounds.taint(ins.a).copy())


def _lut_after(bounds: ErrorBounds, event: Event, read: ReadView) -> None:
    ins = event.instruction
    assert isinstance(ins, EwLut) and bounds._lut_input is not None, "before() saw this ew-lut"
    source, e_a = bounds._lut_input
    fn = bounds.program.tables[ins.table].fn
    exact = TABLE_FUNCTIONS[fn](source)
    # The emulator's own table error, measured against the exact function of its input.
    measured = np.abs(read(ins.dst) - exact)
    bound = measured + LIPSCHITZ[fn] * e_a + bounds.float_factor() * FLOAT32_U * np.abs(exact)
    bounds.store(ins.dst, bound, bounds.taint(ins.dst) | bounds.clamped(event, ins.dst, read))
    bounds._lut_input = None


#: Instruction class -> how it changes the bounds (every class of ``INSTRUCTIONS``).
RULES: dict[type[Instruction], Rule] = {
    LoadCodebook: Rule(),
    BroadcastActivation: Rule(before=_broadcast),
    SparseColumnMac: Rule(before=_mac, after=_mac_after),
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
