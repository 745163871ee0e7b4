"""The lowering of the recurrent layers to EIE (``LOWERINGS["lstm"]`` and ``["gru"]``, see
:mod:`eiec.codegen.generate`).

As the EIE paper runs an LSTM: per direction and time step, ONE sparse MxV over the
concatenation ``[x_t; h_{t-1}; 1]`` (``broadcast-activation`` of several sources, ``#1`` being
the bias column) gives the four gate pre-activations; the non-linearities and the cell update
are element-wise instructions on the PEs. A GRU runs the same way (below).

Rows. With ``Hp = H`` rounded up to a multiple of the PE count N, row group g (ONNX gate order
i, o, f, c) of hidden unit u is row ``g * Hp + u`` of a ``4 Hp x (I + H + 1)`` matrix
``[W | R | Wb + Rb]`` (rows with u >= H are empty). Row ``g * Hp + u`` lives on PE ``u mod N``
for every g, so each PE owns all the gates, the cell state and the output of the units it
holds: the cell update needs no data movement. Each direction is its own EIE layer (``NAME`` or
``NAME.forward`` / ``NAME.backward``) with the layer's one codebook (ShareWeights).
:func:`direction_matrix` builds a direction's matrix, :func:`model_matrix` reads the model's
``[W | R]`` and EIE bias back from it (``eiec.codegen.decode``).

Buffers (rows x cols, pitch Hp so every row starts on PE 0 and element i of every operand sits
on the same PE): ``NAME.gates`` (4 x H, pre-activations, ``GATE_FRAC``), ``NAME.act`` (4 x H,
gate values, ``GATE_VALUE_FRAC``), ``NAME.c`` (D x H, the cell state, its initial value as
``init``; it is the Y_c output), ``NAME.h0`` (D x H, the initial hidden state), ``NAME.y``
(T*D x H: row ``t * D + d`` is h_t of direction d, i.e. ONNX's Y [T, D, 1, H]; it is also the
h_{t-1} source of the next step) and ``NAME.y_h`` (D x H, only when Y_h is used).

One LSTM step of direction d (forward t = 0..T-1, backward T-1..0)::

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

GRU (gates z, r, h; ONNX: ``h~ = tanh(W_h x + R_h (r * h) + Wb_h + Rb_h)``, or with
``linear_before_reset = 1`` ``tanh(W_h x + Wb_h + r * (R_h h + Rb_h))``; ``h = (1 - z) * h~ +
z * h``). The reset gate multiplies the recurrent part before the tanh, so that part must reach
the PEs apart from ``W_h x``:

- ``linear_before_reset = 1``: one MAC over ``[x; h; 1]`` into FOUR row groups, ``z: [W_z | R_z
  | b_z]``, ``r: [W_r | R_r | b_r]``, ``hx: [W_h | 0 | Wb_h]``, ``hr: [0 | R_h | Rb_h]``
  (``b = Wb + Rb``): the two parts of the candidate land in different accumulator ranges, and
  the stored entries are exactly the model's non-zeros.
- ``linear_before_reset = 0``: R_h multiplies ``r * h``, known only after the first product.
  The layer is ``3 Hp x (H + I + H + 1)`` over ``[r * h; x; h; 1]``: ``z: [0 | W_z | R_z |
  b_z]``, ``r: [0 | W_r | R_r | b_r]``, ``h: [R_h | W_h | 0 | b_h]``, run twice per step with
  different streams: first ``[0; x; h; 1]`` (z, r and ``W_h x + b_h``), then ``[r * h; 0; 0; 0]``
  (``R_h (r * h)`` in row group h, nothing elsewhere). The zero words are constant buffers
  ``NAME.zero_h`` and ``NAME.zero_xh1``; the LNZD skips them, so the second MAC costs only the
  R_h columns. The bias stays the last column, as in every EIE layer.

The GRU's buffers are as the LSTM's without ``c`` (``gates`` has one row per row group, ``act``
4 rows: z, r, h~ and 1 - z), plus ``NAME.minus1`` (1 x H, the constant -1) and, for
``linear_before_reset = 0``, ``NAME.rh`` (1 x H, ``r * h`` in the broadcast format) and
``NAME.rec`` (3 x H, the second product). One step (``linear_before_reset = 1``)::

    broadcast-activation x[t], PREV, #1
    sparse-column-mac NAME
    writeback gates                         ; z, r, hx, hr pre-activations
    ew-lut act[0], gates[0], sigmoid        ; z
    ew-lut act[1], gates[1], sigmoid        ; r
    ew-mul gates[1], gates[0], minus1       ; -z's pre-activation (exact)
    ew-lut act[3], gates[1], sigmoid        ; 1 - z = sigmoid(-pre-activation)
    ew-mul gates[3], act[1], gates[3]       ; r * (R_h h + Rb_h)
    ew-add gates[2], gates[2], gates[3]
    ew-lut act[2], gates[2], tanh           ; h~
    ew-mul act[0], act[0], PREV             ; z * h
    ew-mul act[3], act[3], act[2]           ; (1 - z) * h~
    ew-add y[t * D + d], act[3], act[0]     ; h = (1 - z) * h~ + z * h

and with ``linear_before_reset = 0`` the two instructions of the reset gate are::

    ew-mul rh, act[1], PREV                 ; r * h
    broadcast-activation rh, zero_xh1
    sparse-column-mac NAME
    writeback rec                           ; row 2: R_h (r * h)
    ew-add gates[2], gates[2], rec[2]

(the first broadcast being ``zero_h, x[t], PREV, #1``). The update is computed as ONNX writes
it, ``(1 - z) * h~ + z * h`` with ``1 - z`` from the table: the error bound
(``eiec.emulator.bounds``) then carries ``z * e(h) + (1 - z) * e(h~)`` from step to step, where
the shorter ``h~ + z * (h - h~)`` would count the error of h~ twice and grow about twice as fast
per step.

Unrolled, not a loop: the ISA has no branches and no indexed views, and the paper's control unit
runs a fixed instruction stream. Unrolling costs 12 instructions per step and direction (GRU:
13, or 16 with ``linear_before_reset = 0``) and fixes T at compile time (ONNX shapes are static
here anyway); it needs no loop counter or address arithmetic, lets each step name its rows of
``y`` directly, and keeps the per-step statistics (``Stats.layers`` has one entry per MAC with
its step index).

Fixed point. x and h share the broadcast format F (SPEC: broadcast sources share one ``frac``):
F is x's format capped at 14 fraction bits (|h| < 1, and ``o * tanh(c)`` may round to 1.0); when
x's buffer has more, it is first copied into a 14-bit buffer (``ew-copy``). The initial hidden
state must fit F too (a GRU's h stays within ``max(1, |h0|)``: each step is a convex
combination of h and h~). Gate pre-activations use ``GATE_FRAC`` (11: +-16, beyond which the
writeback saturates where sigmoid and tanh are flat to 1e-7), gate values ``GATE_VALUE_FRAC``
(14; a GRU's ``act`` fewer when ``|h0| >= 2``, as it holds ``z * h``). The cell state's format
holds its calibrated range (all steps, times ``CALIBRATION_HEADROOM``) or, without calibration,
its bound ``|c_t| <= |c_0| + t`` (each step adds at most ``|i * c~| < 1`` to ``|f * c| < |c|``).
Table errors: :mod:`eiec.codegen.tables`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from tvm import relax

from eiec.codegen.assembly import ProgramAssembly
from eiec.codegen.context import (
    Activation,
    LoweringContext,
    Value,
    layer_codebook,
)
from eiec.codegen.tables import GATE_FRAC, GATE_VALUE_FRAC, activation_table
from eiec.errors import UnsupportedModelError
from eiec.isa.builder import codes_of
from eiec.isa.fixed import frac_for_range, quantize
from eiec.isa.program import (
    BroadcastActivation,
    Buffer,
    Codebook,
    EwAdd,
    EwCopy,
    EwLut,
    EwMul,
    Instruction,
    LoadCodebook,
    One,
    Source,
    SparseColumnMac,
    View,
    Writeback,
)
from eiec.relax_layers.exprs import bindings, constant_value
from eiec.relax_layers.lstm import (
    GRU_OP,
    LSTM_OP,
    RECURRENT_OPS,
    RecurrentLayer,
    direction_suffixes,
    find_recurrent_layers,
)

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


def gru_direction(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    h0: np.ndarray,
    reverse: bool,
    linear_before_reset: bool,
) -> np.ndarray:
    """One GRU direction in float64 over samples: x (S, T, I), ``[W | R]`` (3H, I + H), the EIE
    bias (3H, or 4H with ``linear_before_reset``), h0 (H,) -> h (S, T, H)."""
    samples, steps, inputs = x.shape
    hidden = h0.size
    h = np.broadcast_to(h0, (samples, hidden)).astype(np.float64)
    hs = np.zeros((samples, steps, hidden))
    w_x, w_h = weights[:, :inputs], weights[:, inputs:]
    rows = 2 * hidden
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        xw = x[:, t] @ w_x.T + bias[: 3 * hidden]
        z, r = np.split(_sigmoid(xw[:, :rows] + h @ w_h[:rows].T), 2, axis=1)
        if linear_before_reset:
            recurrent = r * (h @ w_h[rows:].T + bias[3 * hidden :])
        else:
            recurrent = (r * h) @ w_h[rows:].T
        n = np.tanh(xw[:, rows:] + recurrent)
        h = (1 - z) * n + z * h
        hs[:, t] = h
    return hs


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --- the program matrix of one direction -------------------------------------------------------


def _sources(op: str, linear_before_reset: bool, hidden: int, inputs: int) -> np.ndarray:
    """For each entry of a direction's program matrix without row padding (row groups of H
    rows, module docstring), the index of its value in ``concat([W | R].ravel(), bias)``, or -1
    where the matrix holds a zero."""
    gates = RECURRENT_OPS[op][1]
    cols = inputs + hidden
    w = np.arange(gates * hidden * cols).reshape(gates * hidden, cols)
    b = gates * hidden * cols + np.arange(hidden * _groups(op, linear_before_reset))
    zr, h = slice(0, 2 * hidden), slice(2 * hidden, 3 * hidden)
    x_cols, h_cols = slice(0, inputs), slice(inputs, cols)
    if op == LSTM_OP:
        return np.concatenate([w, b[:, None]], axis=1)
    if linear_before_reset:
        source = np.full((4 * hidden, cols + 1), -1)
        source[zr, :cols] = w[zr]
        source[h, x_cols] = w[h, x_cols]
        source[3 * hidden :, h_cols] = w[h, h_cols]
        source[:, cols] = b
        return source
    source = np.full((3 * hidden, hidden + cols + 1), -1)  # columns [r * h; x; h; 1]
    source[zr, hidden : hidden + cols] = w[zr]
    source[h, hidden : hidden + inputs] = w[h, x_cols]
    source[h, :hidden] = w[h, h_cols]
    source[:, -1] = b
    return source


def _groups(op: str, linear_before_reset: bool) -> int:
    return 4 if op == LSTM_OP or linear_before_reset else 3


def row_groups(layer: RecurrentLayer) -> int:
    """Row groups of a direction's program matrix (and H-blocks of its EIE bias): 4, or 3 for
    a GRU with ``linear_before_reset = 0``."""
    return _groups(layer.op, layer.call.linear_before_reset)


def padded_rows(groups: int, hidden: int, pitch: int) -> np.ndarray:
    """The program row of each model row: row group g of unit u at ``g * pitch + u``."""
    return (np.arange(groups)[:, None] * pitch + np.arange(hidden)[None, :]).reshape(-1)


def direction_matrix(
    layer: RecurrentLayer, weights: np.ndarray, bias: np.ndarray, pitch: int
) -> np.ndarray:
    """One direction's program matrix (module docstring) from its ``[W | R]`` (GH, I + H) and
    EIE bias, row groups padded to ``pitch`` rows."""
    lbr = layer.call.linear_before_reset
    source = _sources(layer.op, lbr, layer.hidden_size, layer.input_size)
    values = np.concatenate([weights.reshape(-1), bias.reshape(-1)])
    groups = row_groups(layer)
    matrix = np.zeros((groups * pitch, source.shape[1]))
    matrix[padded_rows(groups, layer.hidden_size, pitch)] = np.where(
        source >= 0, values[source], 0.0
    )
    return matrix


def model_matrix(layer: RecurrentLayer, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``[W | R]`` (GH, I + H) and EIE bias of one direction read from its program matrix
    (the inverse of :func:`direction_matrix`; the row padding is ignored)."""
    lbr = layer.call.linear_before_reset
    hidden, inputs = layer.hidden_size, layer.input_size
    source = _sources(layer.op, lbr, hidden, inputs)
    groups = row_groups(layer)
    pitch = matrix.shape[0] // groups
    rows = matrix[padded_rows(groups, hidden, pitch)]
    weights = layer.gates * hidden * (inputs + hidden)
    values = np.zeros(weights + groups * hidden)
    values[source[source >= 0]] = rows[source >= 0]
    return values[:weights].reshape(layer.gates * hidden, -1), values[weights:]


def program_shape(op: str, linear_before_reset: bool, hidden: int, inputs: int) -> tuple[int, int]:
    """(model rows, columns) of one direction's program layer (rows before padding; the shape
    of :func:`_sources`)."""
    extra = hidden if op == GRU_OP and not linear_before_reset else 0  # the r * h columns
    return _groups(op, linear_before_reset) * hidden, extra + inputs + hidden + 1


# --- the lowering ------------------------------------------------------------------------------


def _layer_of(ctx: LoweringContext, var: relax.Var) -> RecurrentLayer:
    for layer in find_recurrent_layers(ctx.mod):
        if layer.var.same_as(var):
            return layer
    raise UnsupportedModelError(f"'{var.name}' calls a recurrent function outside main's layers")


def _used_outputs(ctx: LoweringContext, var: relax.Var) -> set[int]:
    """Which of (Y, Y_h, Y_c) of the layer bound to ``var`` main reads (all, if it uses the
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
    row per step for an input, one row per direction for a bidirectional layer's Y). A buffer
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
        f"the recurrent layer's input in buffer {buffer.name} ({buffer.rows} rows of "
        f"{buffer.cols} words) is not {steps} steps of {size} values",
        fix="feed the layer a sequence-first tensor [seq, 1, input]",
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


@dataclass
class _Recurrence:
    """What the LSTM and GRU lowerings share: the layer, its input's views per step, the
    broadcast format, the buffers of the hidden state and the outputs."""

    ctx: LoweringContext
    layer: RecurrentLayer
    sources: list[list[View]]
    frac: int
    pitch: int
    h0: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    x: Activation
    used: set[int]

    @property
    def asm(self) -> ProgramAssembly:
        return self.ctx.asm

    def buffer(
        self, hint: str, rows: int, choice: tuple[int, float, str], init: np.ndarray | None = None
    ) -> Buffer:
        """A buffer ``NAME.hint`` of ``rows`` rows of H words at pitch Hp."""
        return self.asm.add_buffer(
            f"{self.layer.name}.{hint}",
            self.layer.hidden_size,
            choice,
            rows=rows,
            pitch=self.pitch,
            init=init,
        )

    def reverse(self, direction: int) -> bool:
        """Whether direction ``direction`` runs from the last step to the first."""
        return self.layer.call.direction == "reverse" or direction == 1

    def order(self, direction: int) -> range:
        """The steps of ``direction`` in the order it runs them."""
        steps = self.layer.seq_length
        return range(steps - 1, -1, -1) if self.reverse(direction) else range(steps)

    def samples_of(self, run: list[np.ndarray]) -> np.ndarray:
        """Per-direction float64 runs (S, T, H) as samples of Y (S, T * D * H)."""
        stacked = np.stack(run, 2)
        return stacked.reshape(stacked.shape[0], -1)

    def last(self, run: list[np.ndarray]) -> np.ndarray:
        """Per-direction float64 runs (S, T, H) at each direction's last step (S, D * H)."""
        ends = [0 if self.reverse(d) else self.layer.seq_length - 1 for d in range(len(run))]
        return np.stack([r[:, e] for r, e in zip(run, ends, strict=True)], 1).reshape(
            run[0].shape[0], -1
        )

    def add_direction_layer(self, columns: list[np.ndarray], d: int, h_bound: float) -> str:
        """Direction ``d``'s program layer (its codebook over all directions' ``columns``),
        its sums checked against the accumulator (hidden state within ``h_bound``)."""
        layer = self.layer
        codebook = layer_codebook(layer.name, np.concatenate(columns, axis=1))
        codes = codes_of(columns[d], codebook)
        eie = self.asm.add_layer(
            layer.name + direction_suffixes(layer.directions)[d],
            codes,
            codebook,
            has_bias=True,
            model_rows=layer.gates * layer.hidden_size,
            model_cols=layer.input_size + layer.hidden_size,
        )
        self.check_sums(eie.name, codes, eie.codebook, h_bound)
        return eie.name

    def check_sums(self, name: str, codes: np.ndarray, codebook: Codebook, h_bound: float) -> None:
        """:meth:`LoweringContext.layer_sums` of program layer ``name``, checked against the
        accumulator: its columns (``[r * h |] x | h | 1``, :func:`_sources`) hold values
        within the input's bound and ``h_bound``, the input's root mean square and
        ``h_bound``, and 1."""
        inputs, hidden = self.layer.input_size, self.layer.hidden_size
        extra = codes.shape[1] - inputs - hidden - 1  # the r * h columns of a GRU

        def columns(x: np.ndarray) -> np.ndarray:
            x_max = float(x.max(initial=0.0))
            return np.concatenate(([h_bound] * extra, [x_max] * inputs, [h_bound] * hidden, [1.0]))

        self.ctx.layer_sums(
            name,
            codebook,
            codes,
            codebook.frac + self.frac,
            columns(self.x.bound),
            columns(self.x.rms_or_bound),
            has_bias=True,
        )


def _recurrence(ctx: LoweringContext, binding: relax.VarBinding) -> _Recurrence:
    """Check the layer, find its input's views and the broadcast format (copying x into a
    coarser buffer when needed)."""
    layer = _layer_of(ctx, binding.var)
    asm, where = ctx.asm, layer.call.where
    steps, size = layer.seq_length, layer.input_size
    if layer.batch != 1:
        raise UnsupportedModelError(
            f"batch {layer.batch}: EIE runs one sequence at a time",
            where=where,
            fix="compile with batch 1 (eiec compile fixes the batch axis of the inputs)",
        )
    states = [layer.call.initial_h] + ([layer.call.initial_c] if layer.op == LSTM_OP else [])
    if any(state is None for state in states):
        raise UnsupportedModelError(
            "the initial hidden or cell state is computed at run time",
            where=where,
            fix="give constant initial states (initialisers) or leave them out (zeros)",
        )
    h0 = layer.call.initial_h[:, 0].astype(np.float64)
    pitch = -(-layer.hidden_size // asm.machine.pes) * asm.machine.pes

    x = ctx.activation(binding.value.args[0])
    sources = _step_sources(asm, x, steps, size)
    x_frac = asm.buffers[x.buffer].frac
    frac = min(x_frac, HIDDEN_FRAC_MAX, frac_for_range(float(np.abs(h0).max(initial=0.0))))
    if frac < x_frac:
        x_buffer = asm.buffers[x.buffer]
        copy = asm.add_buffer(
            f"{layer.name}.x",
            x_buffer.cols,
            (frac, float(x.bound.max(initial=0.0)), f"{layer.op}-broadcast"),
            rows=x_buffer.rows,
            pitch=x_buffer.pitch,
        )
        asm.emit(EwCopy(View(copy.name), View(x_buffer.name)))
        sources = [[View(copy.name, v.row) for v in step] for step in sources]
    return _Recurrence(
        ctx,
        layer,
        sources,
        frac,
        pitch,
        h0,
        layer.weights().astype(np.float64),
        layer.bias().astype(np.float64),
        x,
        _used_outputs(ctx, binding.var),
    )


def lower_lstm(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    """Emit one LSTM layer (module docstring); returns the (Y, Y_h, Y_c) activations."""
    rec = _recurrence(ctx, binding)
    layer, asm, frac, pitch = rec.layer, rec.asm, rec.frac, rec.pitch
    steps, size, hidden, dirs = (
        layer.seq_length,
        layer.input_size,
        layer.hidden_size,
        layer.directions,
    )
    h0, c0 = rec.h0, layer.call.initial_c[:, 0].astype(np.float64)
    weights, bias = rec.weights, rec.bias
    samples = None
    if ctx.calibrated and rec.x.samples is not None:
        xs = rec.x.samples.reshape(-1, steps, size)
        runs = [
            lstm_direction(xs, weights[d], bias[d], h0[d], c0[d], reverse=rec.reverse(d))
            for d in range(dirs)
        ]
        samples = ([r[0] for r in runs], [r[1] for r in runs])
    c_bound = np.abs(c0).max(axis=0) + steps
    c_choice = ctx.choose_format(
        None if samples is None else rec.samples_of(samples[1]),
        np.broadcast_to(c_bound, (dirs, hidden)).reshape(-1),
    )

    gates = rec.buffer("gates", 4, (GATE_FRAC, 16.0, "table"))
    act = rec.buffer("act", 4, (GATE_VALUE_FRAC, 1.0, "table"))
    cell = rec.buffer("c", dirs, c_choice, _padded(c0, c_choice[0], pitch))
    h_init = rec.buffer("h0", dirs, (frac, 1.0, "lstm-broadcast"), _padded(h0, frac, pitch))
    y = rec.buffer("y", steps * dirs, (frac, 1.0, "lstm-broadcast"))
    y_h = rec.buffer("y_h", dirs, (frac, 1.0, "lstm-broadcast")) if 1 in rec.used else None
    sigmoid, tanh = _table(asm, "sigmoid"), _table(asm, "tanh")

    columns = [direction_matrix(layer, weights[d], bias[d], pitch) for d in range(dirs)]
    for d in range(dirs):
        eie = rec.add_direction_layer(columns, d, max(1.0, float(np.abs(h0).max(initial=0.0))))
        asm.emit(LoadCodebook(eie))
        previous = View(h_init.name, d)
        for t in rec.order(d):
            out = View(y.name, t * dirs + d)
            c = View(cell.name, d)
            g = [View(gates.name, k) for k in range(4)]
            a = [View(act.name, k) for k in range(4)]
            asm.emit(
                BroadcastActivation((*rec.sources[t], previous, One())),
                SparseColumnMac(eie),
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

    y_act, y_h_act = _hidden_outputs(rec, y, y_h, None if samples is None else samples[0], 1.0)
    c_act = Activation(
        cell.name,
        (dirs, 1, hidden),
        None if samples is None else rec.last(samples[1]),
        np.broadcast_to(c_bound, (dirs, hidden)).reshape(-1),
    )
    return (y_act, y_h_act, c_act)


def _hidden_outputs(
    rec: _Recurrence, y: Buffer, y_h: Buffer | None, run: list[np.ndarray] | None, h_max: float
) -> tuple[Activation, Activation | None]:
    """The Y and Y_h activations (``run``: each direction's float64 h (S, T, H), or None;
    ``h_max`` bounds |h|)."""
    layer = rec.layer
    steps, hidden, dirs = layer.seq_length, layer.hidden_size, layer.directions
    bound = np.full(steps * dirs * hidden, h_max)
    y_act = Activation(
        y.name, (steps, dirs, 1, hidden), None if run is None else rec.samples_of(run), bound
    )
    if y_h is None:
        return y_act, None
    last = None if run is None else rec.last(run)
    return y_act, Activation(y_h.name, (dirs, 1, hidden), last, bound[: dirs * hidden])


def lower_gru(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
    """Emit one GRU layer (module docstring); returns the (Y, Y_h) activations."""
    rec = _recurrence(ctx, binding)
    layer, asm, frac, pitch = rec.layer, rec.asm, rec.frac, rec.pitch
    steps, size, hidden, dirs = (
        layer.seq_length,
        layer.input_size,
        layer.hidden_size,
        layer.directions,
    )
    lbr = layer.call.linear_before_reset
    h_max = max(1.0, float(np.abs(rec.h0).max(initial=0.0)))
    run = None
    if ctx.calibrated and rec.x.samples is not None:
        xs = rec.x.samples.reshape(-1, steps, size)
        run = [
            gru_direction(xs, rec.weights[d], rec.bias[d], rec.h0[d], rec.reverse(d), lbr)
            for d in range(dirs)
        ]

    groups = row_groups(layer)
    state = (frac, h_max, "gru-broadcast")
    gates = rec.buffer("gates", groups, (GATE_FRAC, 16.0, "table"))
    act_frac = min(GATE_VALUE_FRAC, frac_for_range(h_max))  # z * h is within |h|
    act = rec.buffer("act", 4, (act_frac, h_max, "table"))
    h_init = rec.buffer("h0", dirs, state, _padded(rec.h0, frac, pitch))
    y = rec.buffer("y", steps * dirs, state)
    y_h = rec.buffer("y_h", dirs, state) if 1 in rec.used else None
    minus1 = rec.buffer("minus1", 1, (0, 1.0, "constant"), _padded(-np.ones((1, hidden)), 0, pitch))
    if not lbr:
        zero_h = asm.add_buffer(f"{layer.name}.zero_h", hidden, (frac, 0.0, "constant"))
        zero_xh1 = asm.add_buffer(
            f"{layer.name}.zero_xh1", size + hidden + 1, (frac, 0.0, "constant")
        )
        rh = rec.buffer("rh", 1, state)
        recurrent = rec.buffer("rec", groups, (GATE_FRAC, 16.0, "table"))
    sigmoid, tanh = _table(asm, "sigmoid"), _table(asm, "tanh")

    columns = [direction_matrix(layer, rec.weights[d], rec.bias[d], pitch) for d in range(dirs)]
    for d in range(dirs):
        eie = rec.add_direction_layer(columns, d, h_max)
        asm.emit(LoadCodebook(eie))
        previous = View(h_init.name, d)
        for t in rec.order(d):
            out = View(y.name, t * dirs + d)
            g = [View(gates.name, k) for k in range(groups)]
            a = [View(act.name, k) for k in range(4)]
            stream: tuple[Source, ...] = (*rec.sources[t], previous, One())
            reset: tuple[Instruction, ...]
            if lbr:
                reset = (EwMul(g[3], a[1], g[3]), EwAdd(g[2], g[2], g[3]))
            else:
                stream = (View(zero_h.name, 0), *stream)
                reset = (
                    EwMul(View(rh.name, 0), a[1], previous),
                    BroadcastActivation((View(rh.name, 0), View(zero_xh1.name, 0))),
                    SparseColumnMac(eie),
                    Writeback(View(recurrent.name)),
                    EwAdd(g[2], g[2], View(recurrent.name, 2)),
                )
            asm.emit(
                BroadcastActivation(stream),
                SparseColumnMac(eie),
                Writeback(View(gates.name)),
                EwLut(a[0], g[0], sigmoid),
                EwLut(a[1], g[1], sigmoid),
                EwMul(g[1], g[0], View(minus1.name, 0)),
                EwLut(a[3], g[1], sigmoid),
                *reset,
                EwLut(a[2], g[2], tanh),
                EwMul(a[0], a[0], previous),
                EwMul(a[3], a[3], a[2]),
                EwAdd(out, a[3], a[0]),
            )
            previous = out
        if y_h is not None:
            asm.emit(EwCopy(View(y_h.name, d), previous))
    ctx.written[layer.name] = y.name
    return _hidden_outputs(rec, y, y_h, run, h_max)


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
