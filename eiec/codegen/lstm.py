"""The lowering of an LSTM layer to EIE (``LOWERINGS["lstm"]``, see :mod:`eiec.codegen.generate`).

As the EIE paper runs an LSTM: per direction and time step, ONE sparse MxV over the
concatenation ``[x_t; h_{t-1}; 1]`` (``broadcast-activation`` of several sources, ``#1`` being
the bias column) gives the four gate pre-activations; the non-linearities and the cell update
are element-wise instructions on the PEs.

Rows. With ``Hp = H`` rounded up to a multiple of the PE count N, gate g (ONNX order i, o, f, c)
of hidden unit u is row ``g * Hp + u`` of a ``4 Hp x (I + H + 1)`` matrix ``[W | R | Wb + Rb]``
(rows with u >= H are empty). Row ``g * Hp + u`` lives on PE ``u mod N`` for every g, so each PE
owns all four gates, the cell state and the output of the units it holds: the cell update needs
no data movement. Each direction is its own EIE layer (``NAME`` or ``NAME.forward`` /
``NAME.backward``) with the layer's one codebook (ShareWeights).

Buffers (rows x cols, pitch Hp so every row starts on PE 0 and element i of every operand sits
on the same PE): ``NAME.gates`` (4 x H, pre-activations, ``GATE_FRAC``), ``NAME.act`` (4 x H,
gate values, ``GATE_VALUE_FRAC``), ``NAME.c`` (D x H, the cell state, its initial value as
``init``; it is the Y_c output), ``NAME.h0`` (D x H, the initial hidden state), ``NAME.y``
(T*D x H: row ``t * D + d`` is h_t of direction d, i.e. ONNX's Y [T, D, 1, H]; it is also the
h_{t-1} source of the next step) and ``NAME.y_h`` (D x H, only when Y_h is used).

One step of direction d (forward t = 0..T-1, backward T-1..0)::

    broadcast-activation x[t], PREV, #1     ; PREV = h0[d] first, else y[row of the last step]
    sparse-column-mac NAME
    writeback gates
    ew-lut act[0], gates[0], sigmoid        ; i
    ew-lut act[1], gates[1], sigmoid        ; o
    ew-lut act[2], gates[2], sigmoid        ; f
    ew-lut act[3], gates[3], tanh           ; c~
    ew-mul c[d], act[2], c[d]               ; f * c
    ew-mul act[3], act[0], act[3]           ; i * c~
    ew-add c[d], c[d], act[3]               ; c = f * c + i * c~
    ew-lut act[0], c[d], tanh
    ew-mul y[t * D + d], act[1], act[0]     ; h = o * tanh(c)

preceded by one ``load-codebook`` per direction (a direction runs all its steps before the
next starts: they are independent, and the codebook stays loaded) and followed by
``ew-copy y_h[d], y[last row]`` when Y_h is used.

Unrolled, not a loop: the ISA has no branches and no indexed views, and the paper's control unit
runs a fixed instruction stream. Unrolling costs 12 instructions per step and direction and fixes
T at compile time (ONNX shapes are static here anyway); it needs no loop counter or address
arithmetic, lets each step name its rows of ``y`` directly, and keeps the per-step statistics
(``Stats.layers`` has one entry per MAC with its step index).

Fixed point. x and h share the broadcast format F (SPEC: broadcast sources share one ``frac``):
F is x's format capped at 14 fraction bits (|h| < 1, and ``o * tanh(c)`` may round to 1.0); when
x's buffer has more, it is first copied into a 14-bit buffer (``ew-copy``). The initial hidden
state must fit F too. Gate pre-activations use ``GATE_FRAC`` (11: +-16, beyond which the writeback
saturates where sigmoid and tanh are flat to 1e-7), gate values ``GATE_VALUE_FRAC`` (14). The
cell state's format holds its calibrated range (all steps, times ``CALIBRATION_HEADROOM``) or,
without calibration, its bound ``|c_t| <= |c_0| + t`` (each step adds at most
``|i * c~| < 1`` to ``|f * c| < |c|``). Table errors: :mod:`eiec.codegen.tables`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax

from eiec.codegen.assembly import ProgramAssembly
from eiec.codegen.context import Activation, LoweringContext, Value, layer_codebook
from eiec.codegen.tables import GATE_FRAC, GATE_VALUE_FRAC, activation_table
from eiec.errors import UnsupportedModelError
from eiec.isa.builder import codes_of
from eiec.isa.fixed import frac_for_range, quantize
from eiec.isa.program import (
    BroadcastActivation,
    Buffer,
    EwAdd,
    EwCopy,
    EwLut,
    EwMul,
    LoadCodebook,
    One,
    SparseColumnMac,
    View,
    Writeback,
)
from eiec.relax_layers.exprs import bindings, constant_value
from eiec.relax_layers.lstm import LstmLayer, direction_suffixes, find_lstm_layers

#: Most fraction bits of the hidden state (and so of the broadcast of [x_t; h_{t-1}; 1]).
HIDDEN_FRAC_MAX = 14


def lstm_direction(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    reverse: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One direction in float64 over samples: x (S, T, I), ``[W | R]`` (4H, I + H), bias
    (4H,), h0 / c0 (H,) -> (h (S, T, H), c (S, T, H)), indexed by time step."""
    samples, steps, _ = x.shape
    hidden = h0.size
    h = np.broadcast_to(h0, (samples, hidden)).astype(np.float64)
    c = np.broadcast_to(c0, (samples, hidden)).astype(np.float64)
    hs = np.zeros((samples, steps, hidden))
    cs = np.zeros((samples, steps, hidden))
    w_x, w_h = weights[:, : x.shape[2]], weights[:, x.shape[2] :]
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        gates = x[:, t] @ w_x.T + h @ w_h.T + bias
        i, o, f, g = np.split(gates, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        hs[:, t], cs[:, t] = h, c
    return hs, cs


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _layer_of(ctx: LoweringContext, var: relax.Var) -> LstmLayer:
    for layer in find_lstm_layers(ctx.mod):
        if layer.var.same_as(var):
            return layer
    raise UnsupportedModelError(f"'{var.name}' calls an LSTM function outside main's layers")


def _used_outputs(ctx: LoweringContext, var: relax.Var) -> set[int]:
    """Which of (Y, Y_h, Y_c) of the LSTM bound to ``var`` main reads (all, if it uses the
    tuple as a whole)."""
    used: set[int] = set()
    for binding in bindings(ctx.mod["main"]):
        value = binding.value
        if isinstance(value, relax.TupleGetItem) and value.tuple_value.same_as(var):
            used.add(int(value.index))
        elif not isinstance(value, relax.TupleGetItem) and _mentions(value, var):
            return {0, 1, 2}
    if _mentions(ctx.mod["main"].body.body, var):
        return {0, 1, 2}
    return used


def _mentions(expr: relax.Expr, var: relax.Var) -> bool:
    if isinstance(expr, relax.Var):
        return expr.same_as(var)
    if isinstance(expr, relax.Call):
        return any(_mentions(arg, var) for arg in expr.args)
    if isinstance(expr, relax.Tuple):
        return any(_mentions(field, var) for field in expr.fields)
    return False


def _step_sources(asm: ProgramAssembly, x: Activation, steps: int, size: int) -> list[list[View]]:
    """The views holding x_t for each step t, from x's buffer.

    A buffer of ``steps * k`` rows of ``size / k`` words gives rows ``t*k .. t*k + k - 1`` (one
    row per step for an input, one row per direction for a bidirectional LSTM's Y). A buffer
    without row padding (pitch == cols) is the same memory for any row count, so it is re-shaped
    to ``steps`` rows of ``size`` words.
    """
    buffer = asm.buffers[x.buffer]
    if buffer.rows % steps == 0 and buffer.cols * (buffer.rows // steps) == size:
        k = buffer.rows // steps
        return [[View(buffer.name, t * k + j) for j in range(k)] for t in range(steps)]
    if buffer.pitch == buffer.cols and buffer.rows * buffer.cols == steps * size:
        asm.buffers[buffer.name] = dataclasses.replace(buffer, rows=steps, cols=size, pitch=size)
        return [[View(buffer.name, t)] for t in range(steps)]
    raise UnsupportedModelError(
        f"the LSTM input in buffer {buffer.name} ({buffer.rows} rows of {buffer.cols} words) "
        f"is not {steps} steps of {size} values",
        fix="feed the LSTM a sequence-first tensor [seq, 1, input]",
    )


def _table(asm: ProgramAssembly, fn: str) -> str:
    """The name of the program's ``fn`` table, added on first use."""
    return asm.table_like(activation_table(fn))


def _padded(values: np.ndarray, frac: int, pitch: int) -> np.ndarray | None:
    """Rows of real values as int16 words padded to ``pitch`` (None when all zero)."""
    if not np.any(values):
        return None
    words, _ = quantize(values, frac)
    return np.pad(words, ((0, 0), (0, pitch - words.shape[1]))).reshape(-1)


def lower_lstm(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    """Emit one LSTM layer (module docstring); returns the (Y, Y_h, Y_c) activations."""
    layer = _layer_of(ctx, binding.var)
    asm, where = ctx.asm, f"ONNX node '{layer.call.onnx_node}' (LSTM)"
    steps, size, hidden, dirs = (
        layer.seq_length,
        layer.input_size,
        layer.hidden_size,
        layer.directions,
    )
    if layer.batch != 1:
        raise UnsupportedModelError(
            f"batch {layer.batch}: EIE runs one sequence at a time",
            where=where,
            fix="compile with batch 1 (eiec compile fixes the batch axis of the inputs)",
        )
    h0, c0 = layer.call.initial_h, layer.call.initial_c
    if h0 is None or c0 is None:
        raise UnsupportedModelError(
            "the initial hidden or cell state is computed at run time",
            where=where,
            fix="give constant initial states (initialisers) or leave them out (zeros)",
        )
    h0, c0 = h0[:, 0].astype(np.float64), c0[:, 0].astype(np.float64)
    pitch = -(-hidden // asm.machine.pes) * asm.machine.pes

    x = ctx.activation(binding.value.args[0])
    sources = _step_sources(asm, x, steps, size)
    x_frac = asm.buffers[x.buffer].frac
    frac = min(x_frac, HIDDEN_FRAC_MAX, frac_for_range(float(np.abs(h0).max(initial=0.0))))
    if frac < x_frac:
        x_buffer = asm.buffers[x.buffer]
        copy = asm.add_buffer(
            f"{layer.name}.x",
            x_buffer.cols,
            (frac, float(x.bound.max(initial=0.0)), "lstm-broadcast"),
            rows=x_buffer.rows,
            pitch=x_buffer.pitch,
        )
        asm.emit(EwCopy(View(copy.name), View(x_buffer.name)))
        sources = [[View(copy.name, v.row) for v in step] for step in sources]

    weights, bias = layer.weights().astype(np.float64), layer.bias().astype(np.float64)
    samples = None
    if ctx.calibrated and x.samples is not None:
        xs = x.samples.reshape(-1, steps, size)
        runs = [
            lstm_direction(xs, weights[d], bias[d], h0[d], c0[d], reverse=_reverse(layer, d))
            for d in range(dirs)
        ]
        samples = (np.stack([r[0] for r in runs], 2), np.stack([r[1] for r in runs], 2))
    c_bound = np.abs(c0).max(axis=0) + steps
    c_choice = ctx.choose_format(
        None if samples is None else samples[1].reshape(samples[1].shape[0], -1),
        np.broadcast_to(c_bound, (dirs, hidden)).reshape(-1),
    )
    used = _used_outputs(ctx, binding.var)

    def buffer(
        hint: str, rows: int, choice: tuple[int, float, str], init: np.ndarray | None = None
    ) -> Buffer:
        return asm.add_buffer(
            f"{layer.name}.{hint}", hidden, choice, rows=rows, pitch=pitch, init=init
        )

    gates = buffer("gates", 4, (GATE_FRAC, 16.0, "table"))
    act = buffer("act", 4, (GATE_VALUE_FRAC, 1.0, "table"))
    cell = buffer("c", dirs, c_choice, _padded(c0, c_choice[0], pitch))
    h_init = buffer("h0", dirs, (frac, 1.0, "lstm-broadcast"), _padded(h0, frac, pitch))
    y = buffer("y", steps * dirs, (frac, 1.0, "lstm-broadcast"))
    y_h = buffer("y_h", dirs, (frac, 1.0, "lstm-broadcast")) if 1 in used else None
    sigmoid, tanh = _table(asm, "sigmoid"), _table(asm, "tanh")

    columns = [_matrix(weights[d], bias[d], pitch) for d in range(dirs)]
    codebook = layer_codebook(layer.name, np.concatenate(columns, axis=1))
    suffixes = direction_suffixes(dirs)
    for d in range(dirs):
        eie = asm.add_layer(
            layer.name + suffixes[d],
            codes_of(columns[d], codebook),
            codebook,
            has_bias=True,
            model_rows=4 * hidden,
        )
        asm.emit(LoadCodebook(eie.name))
        previous = View(h_init.name, d)
        order = range(steps - 1, -1, -1) if _reverse(layer, d) else range(steps)
        for t in order:
            out = View(y.name, t * dirs + d)
            c = View(cell.name, d)
            g = [View(gates.name, k) for k in range(4)]
            a = [View(act.name, k) for k in range(4)]
            asm.emit(
                BroadcastActivation((*sources[t], previous, One())),
                SparseColumnMac(eie.name),
                Writeback(View(gates.name)),
                EwLut(a[0], g[0], sigmoid),
                EwLut(a[1], g[1], sigmoid),
                EwLut(a[2], g[2], sigmoid),
                EwLut(a[3], g[3], tanh),
                EwMul(c, a[2], c),
                EwMul(a[3], a[0], a[3]),
                EwAdd(c, c, a[3]),
                EwLut(a[0], c, tanh),
                EwMul(out, a[1], a[0]),
            )
            previous = out
        if y_h is not None:
            asm.emit(EwCopy(View(y_h.name, d), previous))
    ctx.written[layer.name] = y.name

    ones = np.ones(steps * dirs * hidden)
    y_samples = None if samples is None else samples[0].reshape(samples[0].shape[0], -1)
    last = None
    if samples is not None:
        ends = [0 if _reverse(layer, d) else steps - 1 for d in range(dirs)]
        last = [np.stack([s[:, e, d] for d, e in enumerate(ends)], 1) for s in samples]
        last = [v.reshape(v.shape[0], -1) for v in last]
    y_act = Activation(y.name, (steps, dirs, 1, hidden), y_samples, ones)
    y_h_act = None
    if y_h is not None:
        y_h_act = Activation(
            y_h.name, (dirs, 1, hidden), None if last is None else last[0], ones[: dirs * hidden]
        )
    c_act = Activation(
        cell.name,
        (dirs, 1, hidden),
        None if last is None else last[1],
        np.broadcast_to(c_bound, (dirs, hidden)).reshape(-1),
    )
    return (y_act, y_h_act, c_act)


def _reverse(layer: LstmLayer, direction: int) -> bool:
    return layer.call.direction == "reverse" or direction == 1


def _matrix(weights: np.ndarray, bias: np.ndarray, pitch: int) -> np.ndarray:
    """``[W | R | bias]`` of one direction as a (4 pitch) x (I + H + 1) matrix: gate g of unit u
    at row ``g * pitch + u``, the rows of units u >= H empty."""
    hidden = weights.shape[0] // 4
    rows = (np.arange(4)[:, None] * pitch + np.arange(hidden)[None, :]).reshape(-1)
    matrix = np.zeros((4 * pitch, weights.shape[1] + 1))
    matrix[rows] = np.concatenate([weights, bias[:, None]], axis=1)
    return matrix


def lower_take(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    """One time step of a sequence, ``take(seq, t, axis)`` with only axes of size 1 before
    ``axis`` (a classifier on the last step; ``axis`` 1 in a ``batch_first`` model): the step's
    rows of the sequence buffer (one, or one per direction of a bidirectional LSTM's Y) are
    copied (``ew-copy``) into a buffer of their own."""
    call, asm = binding.value, ctx.asm
    source = ctx.activation(call.args[0])
    index = constant_value(call.args[1])
    buffer = asm.buffers[source.buffer]
    axis = None if call.attrs.axis is None else int(call.attrs.axis) % max(len(source.shape), 1)
    if axis is None or any(d != 1 for d in source.shape[:axis]) or index is None or index.size != 1:
        raise UnsupportedModelError(
            f"take '{binding.var.name}' is not one constant step of a sequence (along its "
            "first axis larger than 1)"
        )
    steps = source.shape[axis]
    step = int(index.reshape(-1)[0]) % steps
    rows = buffer.rows // steps if buffer.rows % steps == 0 else 0
    if rows == 0 or (step * rows * buffer.pitch) % asm.machine.pes != 0:
        raise UnsupportedModelError(
            f"take '{binding.var.name}': step {step} of buffer {buffer.name} ({buffer.rows} rows "
            f"of {buffer.cols} words) is not PE-aligned rows",
            fix="select a step of an LSTM's output",
        )
    bound = source.bound.reshape(steps, -1)[step]
    choice = (buffer.frac, float(bound.max()), "sequence")
    if rows == 1:
        out = asm.add_buffer(f"{buffer.name}.t{step}", buffer.cols, choice)
        asm.emit(EwCopy(View(out.name), View(buffer.name, step)))
    else:
        if buffer.pitch != buffer.cols:
            raise UnsupportedModelError(
                f"take '{binding.var.name}': the {rows} rows of step {step} of buffer "
                f"{buffer.name} are {buffer.cols} words padded to {buffer.pitch}, which a layer "
                "cannot read as one vector",
                fix="use a hidden size that is a multiple of the PE count (or --pes dividing it)",
            )
        out = asm.add_buffer(
            f"{buffer.name}.t{step}", buffer.cols, choice, rows=rows, pitch=buffer.pitch
        )
        for row in range(rows):
            asm.emit(EwCopy(View(out.name, row), View(buffer.name, step * rows + row)))
    samples = None
    if source.samples is not None:
        samples = source.samples.reshape(source.samples.shape[0], steps, -1)[:, step]
    shape = tuple(int(d) for d in binding.var.ty.shape)
    return Activation(out.name, shape, samples, bound)
