"""What each instruction does to the machine state (isa/SPEC.md §5), one handler per class.

Handlers change :class:`MachineState` and return an :class:`Event` describing what they did;
they know nothing of cycles or energy (the observers do). ``HANDLERS`` maps every class of the
``INSTRUCTIONS`` registry to its handler. A state of a lockstep batch (``state.lanes``) runs
each instruction for all its lanes at once: its arrays have a leading lane axis, and the
event's saturation counts (and a MAC's broadcast columns) are per lane.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from eiec.emulator.arith import Arithmetic, Count, FixedArith, dense_weights
from eiec.emulator.events import (
    BroadcastEvent,
    CodebookEvent,
    ElementwiseEvent,
    Event,
    HaltEvent,
    MacEvent,
    StreamEvent,
    WritebackEvent,
)
from eiec.emulator.layers import LayerTables
from eiec.emulator.state import MachineState
from eiec.errors import EmulatorError
from eiec.isa.program import (
    INSTRUCTIONS,
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
    View,
    Writeback,
)


class Context:
    """What handlers need besides the state: the program, its layer tables, the arithmetic."""

    def __init__(
        self, program: Program, tables: Mapping[str, LayerTables], arith: Arithmetic
    ) -> None:
        self.program = program
        self.tables = tables
        self.arith = arith
        self._dense: dict[str, np.ndarray | None] = {}

    def dense_weights(self, layer: str, codebook: np.ndarray, lanes: int) -> np.ndarray | None:
        """A layer's dense decoded weights for the MACs of a batch (``arith.dense_weights``,
        decided on its first batch of ``lanes`` and kept; None in float32 mode, whose batched
        MACs run lane by lane). The codebook registers of a layer always hold its codebook."""
        if not isinstance(self.arith, FixedArith):
            return None
        if layer not in self._dense:
            self._dense[layer] = dense_weights(self.tables[layer], codebook, lanes)
        return self._dense[layer]

    def where(self, pc: int, instruction: Instruction) -> str:
        """Where an instruction is: its source line when known, else its index."""
        if instruction.loc is not None:
            return f"{instruction.loc} ({instruction.MNEMONIC})"
        return f"{self.program.source}: instruction {pc} ({instruction.MNEMONIC})"

    def span(self, view: View) -> slice:
        """The words of a view in its buffer."""
        start = self.program.view_offset(view)
        return slice(start, start + self.program.view_length(view))

    def read(self, state: MachineState, view: View) -> np.ndarray:
        """A view's words as computation values."""
        return self.arith.load(state.buffers[view.buffer][..., self.span(view)])

    def frac(self, view: View) -> int:
        """A view's fraction bits."""
        return self.program.buffers[view.buffer].frac


Handler = Callable[[Context, MachineState, Instruction, int], Event]


def load_codebook(ctx: Context, state: MachineState, ins: LoadCodebook, pc: int) -> Event:
    """``CB := L.codebook``."""
    codebook = ctx.program.layers[ins.layer].codebook
    state.codebook = ctx.arith.codebook(codebook.values, codebook.frac)
    state.codebook_layer = ins.layer
    state.codebook_frac = codebook.frac
    return CodebookEvent(pc, ins, size=int(codebook.values.size))


def broadcast_activation(
    ctx: Context, state: MachineState, ins: BroadcastActivation, pc: int
) -> Event:
    """``STREAM := concat(sources)``; ``#1`` is 1.0 in the views' common format."""
    fracs = {ctx.frac(source) for source in ins.sources if isinstance(source, View)}
    if len(fracs) > 1:
        raise EmulatorError(
            f"broadcast sources have different formats (frac {sorted(fracs)})",
            where=ctx.where(pc, ins),
            fix="broadcast views of one fixed-point format (ew-copy converts)",
        )
    frac = fracs.pop() if fracs else 0
    saturations = 0
    parts = []
    for source in ins.sources:
        if isinstance(source, One):
            one, clamped = ctx.arith.quantize(np.ones((*state.lead, 1)), frac)
            saturations += clamped
            parts.append(ctx.arith.load(one))
        else:
            parts.append(ctx.read(state, source))
    state.stream = np.concatenate(parts, axis=-1)
    state.stream_frac = frac
    length = int(state.stream.shape[-1])
    return BroadcastEvent(pc, ins, saturations=saturations, length=length)


def sparse_column_mac(ctx: Context, state: MachineState, ins: SparseColumnMac, pc: int) -> Event:
    """``ACC[row] += CB[v] * a_j`` for every non-zero a_j of the stream and entry of column j
    (a batch's lanes: ``arith.mac_batch``, with the layer's dense weights when they pay)."""
    tables, columns = mac_operands(ctx, state, ins, pc)
    if state.lanes is None:
        overflows = ctx.arith.mac(state.acc, tables, state.codebook, columns, state.stream[columns])
        return mac_event(state, ins, pc, tables, columns, overflows)
    lane, column = np.nonzero(state.stream)
    lanes = np.split(column, np.cumsum(np.bincount(lane, minlength=state.lanes))[:-1])
    dense = ctx.dense_weights(ins.layer, state.codebook, state.lanes)
    overflows = ctx.arith.mac_batch(state.acc, tables, dense, state.codebook, state.stream, lanes)
    return mac_event(state, ins, pc, tables, lanes, overflows)


def stream_chunk(ctx: Context, state: MachineState, ins: StreamChunk, pc: int) -> Event:
    """Queue chunk ``i`` of streamed layer L for L's next MAC (no value changes)."""
    chunk = ins.chunk
    expected = (chunk.layer, state.queued[-1][1] + 1 if state.queued else 0)
    if state.queued and state.queued[-1][0] != chunk.layer:
        expected = (state.queued[-1][0], -1)
    if (chunk.layer, chunk.index) != expected:
        raise EmulatorError(
            f"chunk {chunk} is not the next chunk to stream"
            + (f" (chunks of {expected[0]} are queued)" if expected[1] < 0 else ""),
            where=ctx.where(pc, ins),
            fix="stream a layer's chunks in order from 0, then run its sparse-column-mac",
        )
    state.queued.append((chunk.layer, chunk.index))
    return StreamEvent(pc, ins, layer=chunk.layer, chunk=chunk.index)


def mac_operands(
    ctx: Context, state: MachineState, ins: SparseColumnMac, pc: int
) -> tuple[LayerTables, np.ndarray]:
    """A MAC's checks (codebook, stream, pending accumulators; EmulatorError), accumulators
    cleared when none are pending; the layer's tables and the stream's non-zero columns."""
    layer = ctx.program.layers[ins.layer]
    where = ctx.where(pc, ins)
    if state.codebook is None or state.codebook_layer != ins.layer:
        raise EmulatorError(
            f"the codebook registers hold {state.codebook_layer or 'nothing'}, not layer "
            f"{ins.layer}",
            where=where,
            fix=f"run 'load-codebook {ins.layer}' before the MAC",
        )
    if state.stream is None or state.stream.shape[-1] != layer.cols:
        got = "no stream" if state.stream is None else f"a stream of {state.stream.shape[-1]} words"
        raise EmulatorError(
            f"layer {ins.layer} has {layer.cols} columns but there is {got}",
            where=where,
            fix="broadcast exactly one word per column (bias included) before the MAC",
        )
    chunks = 0 if layer.chunks is None else len(layer.chunks) - 1
    if len(state.queued) != chunks or any(name != ins.layer for name, _ in state.queued):
        raise EmulatorError(
            f"layer {ins.layer} is streamed in {chunks} chunks, {len(state.queued)} chunks "
            "are queued"
            if chunks
            else f"layer {ins.layer} is held on chip but chunks of {state.queued[0][0]} are queued",
            where=where,
            fix="stream-chunk every chunk of a streamed layer, in order, before its MAC",
        )
    state.queued.clear()
    acc_frac = state.codebook_frac + state.stream_frac
    if state.acc is None:
        state.acc = ctx.arith.zeros((*state.lead, layer.rows))
        state.acc_frac = acc_frac
        state.acc_layer = ins.layer
    elif state.acc.shape[-1] != layer.rows or state.acc_frac != acc_frac:
        raise EmulatorError(
            f"layer {ins.layer} ({layer.rows} rows, accumulator frac {acc_frac}) does not "
            f"match the pending accumulators of {state.acc_layer} ({state.acc.shape[-1]} rows, "
            f"frac {state.acc_frac})",
            where=where,
            fix="write the accumulators back first, or give both MACs the same rows and the "
            "same codebook frac + activation frac",
        )
    columns = np.flatnonzero(state.stream) if state.lanes is None else np.empty(0, np.int64)
    return ctx.tables[ins.layer], columns


def mac_event(
    state: MachineState,
    ins: SparseColumnMac,
    pc: int,
    tables: LayerTables,
    columns: np.ndarray | list[np.ndarray],
    overflows: Count,
) -> MacEvent:
    """Count the MAC in ``state.mac_steps``; its event (a batch's: per lane ``columns`` and
    ``overflows``)."""
    step = state.mac_steps.get(ins.layer, 0)
    state.mac_steps[ins.layer] = step + 1
    return MacEvent(
        pc,
        ins,
        saturations=overflows,
        layer=tables,
        columns=columns,
        stream_length=int(state.stream.shape[-1]),
        step=step,
    )


def _writeback(
    ctx: Context, state: MachineState, ins: Writeback | ReluWriteback, pc: int, relu: bool
) -> Event:
    if state.acc is None:
        raise EmulatorError(
            "there are no pending accumulators to write back",
            where=ctx.where(pc, ins),
            fix="run a sparse-column-mac before the writeback",
        )
    span = ctx.span(ins.dst)
    rows = int(state.acc.shape[-1])
    if span.stop - span.start != rows:
        raise EmulatorError(
            f"destination {ins.dst} has {span.stop - span.start} words but layer "
            f"{state.acc_layer} has {rows} rows",
            where=ctx.where(pc, ins),
            fix="write back into a view of exactly the layer's rows",
        )
    values = np.maximum(state.acc, 0) if relu else state.acc
    words, saturations = ctx.arith.narrow(values, state.acc_frac, ctx.frac(ins.dst))
    state.buffers[ins.dst.buffer][..., span] = words
    state.acc = None
    state.acc_layer = None
    return WritebackEvent(pc, ins, saturations=saturations, rows=rows)


def writeback(ctx: Context, state: MachineState, ins: Writeback, pc: int) -> Event:
    """``D[r] := round_sat(ACC[r])``; ``ACC := 0``."""
    return _writeback(ctx, state, ins, pc, relu=False)


def relu_writeback(ctx: Context, state: MachineState, ins: ReluWriteback, pc: int) -> Event:
    """``D[r] := round_sat(max(0, ACC[r]))``; ``ACC := 0``."""
    return _writeback(ctx, state, ins, pc, relu=True)


def _check_lengths(ctx: Context, pc: int, ins: Instruction, views: tuple[View, ...]) -> int:
    lengths = [ctx.program.view_length(view) for view in views]
    if len(set(lengths)) != 1:
        shown = ", ".join(f"{view} has {n}" for view, n in zip(views, lengths, strict=True))
        raise EmulatorError(
            f"operands differ in length ({shown} words)",
            where=ctx.where(pc, ins),
            fix="use views of equal length",
        )
    return lengths[0]


def _store(ctx: Context, state: MachineState, dst: View, words: np.ndarray) -> None:
    state.buffers[dst.buffer][..., ctx.span(dst)] = words


def _binary(
    ctx: Context, state: MachineState, ins: EwAdd | EwMul, pc: int, op: str
) -> ElementwiseEvent:
    """``D[i] := round_sat(A[i] op B[i])`` with the arithmetic's ``add`` or ``mul``."""
    length = _check_lengths(ctx, pc, ins, (ins.dst, ins.a, ins.b))
    a, b = ctx.read(state, ins.a), ctx.read(state, ins.b)
    compute = ctx.arith.add if op == "add" else ctx.arith.mul
    words, sat = compute(a, ctx.frac(ins.a), b, ctx.frac(ins.b), ctx.frac(ins.dst))
    _store(ctx, state, ins.dst, words)
    return ElementwiseEvent(pc, ins, saturations=sat, op=op, length=length, sources=2)


def ew_add(ctx: Context, state: MachineState, ins: EwAdd, pc: int) -> Event:
    """``D[i] := round_sat(A[i] + B[i])``."""
    return _binary(ctx, state, ins, pc, "add")


def ew_mul(ctx: Context, state: MachineState, ins: EwMul, pc: int) -> Event:
    """``D[i] := round_sat(A[i] * B[i])``."""
    return _binary(ctx, state, ins, pc, "mul")


def ew_copy(ctx: Context, state: MachineState, ins: EwCopy, pc: int) -> Event:
    """``D[i] := round_sat(A[i])`` (a format conversion)."""
    length = _check_lengths(ctx, pc, ins, (ins.dst, ins.a))
    words, sat = ctx.arith.narrow(ctx.read(state, ins.a), ctx.frac(ins.a), ctx.frac(ins.dst))
    _store(ctx, state, ins.dst, words)
    return ElementwiseEvent(pc, ins, saturations=sat, op="copy", length=length, sources=1)


def ew_lut(ctx: Context, state: MachineState, ins: EwLut, pc: int) -> Event:
    """``D[i] := round_sat(lut(T, A[i]))``."""
    length = _check_lengths(ctx, pc, ins, (ins.dst, ins.a))
    table = ctx.program.tables[ins.table]
    words, sat = ctx.arith.lut(ctx.read(state, ins.a), ctx.frac(ins.a), table, ctx.frac(ins.dst))
    _store(ctx, state, ins.dst, words)
    return ElementwiseEvent(pc, ins, saturations=sat, op="lut", length=length, sources=1)


def halt(ctx: Context, state: MachineState, ins: Halt, pc: int) -> Event:
    """Stop."""
    state.halted = True
    return HaltEvent(pc, ins)


HANDLERS: dict[type[Instruction], Handler] = {
    LoadCodebook: load_codebook,
    BroadcastActivation: broadcast_activation,
    SparseColumnMac: sparse_column_mac,
    StreamChunk: stream_chunk,
    Writeback: writeback,
    ReluWriteback: relu_writeback,
    EwAdd: ew_add,
    EwMul: ew_mul,
    EwCopy: ew_copy,
    EwLut: ew_lut,
    Halt: halt,
}  # type: ignore[dict-item]

assert set(HANDLERS) == set(INSTRUCTIONS.values()), "every instruction needs a handler"
