"""ProgramAssembly: the program under construction, shared by every per-op lowering.

It owns the machine, buffers, ports, layers, tables, the instruction list and the fixed-point
format decisions, hands out unique names, and checks the per-PE capacity at the end. Lowerings
(``eiec.codegen.generate.LOWERINGS``) only call its methods.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace

import numpy as np

from eiec.codegen.streaming import WeightsMode, place_weights
from eiec.errors import CapacityError
from eiec.isa import csc
from eiec.isa.builder import make_layer
from eiec.isa.capacity import first_overflow
from eiec.isa.fixed import frac_for_range, quantize
from eiec.isa.program import (
    Buffer,
    Instruction,
    Layer,
    Program,
    Table,
)

#: Calibrated activation ranges are widened by this factor (half a bit) before the format is
#: chosen, so inputs a little beyond the calibration set do not saturate.
CALIBRATION_HEADROOM = 1.5


@dataclass(frozen=True)
class FormatChoice:
    """Why a buffer, codebook or table has its number of fraction bits.

    ``source`` is ``calibration`` (max-abs over the calibration inputs times the headroom),
    ``bound`` (the analytic bound), ``input-range`` (the assumed input range), ``codebook`` or
    ``table`` (the range of the constants).
    """

    name: str
    kind: str
    frac: int
    max_abs: float
    source: str


@dataclass
class LayerRecord:
    """What the report needs about a lowered layer beside its stored entries: whether it has a
    bias, and the shape of the model's weight matrix it stores (``rows``: fewer than the layer's
    when a lowering pads rows to align them on the PEs, as the LSTM's gate rows are; ``cols``:
    the model's columns when the layer spreads them over more, as a GRU's reset-gate products
    are; None: the layer's own)."""

    layer: Layer
    has_bias: bool
    rows: int | None = None
    cols: int | None = None

    @property
    def model_rows(self) -> int:
        """Rows of the model's weight matrix."""
        return self.layer.rows if self.rows is None else self.rows

    @property
    def model_cols(self) -> int:
        """Columns of the model's weight matrix (the bias column not counted)."""
        return self.layer.cols - self.has_bias if self.cols is None else self.cols


@dataclass(eq=False)
class ProgramAssembly(Program):
    """A program being built (see the module docstring): the program's own fields, filled in
    by the lowerings, and the format decisions and layer records beside them."""

    formats: dict[str, FormatChoice] = field(default_factory=dict)
    records: dict[str, LayerRecord] = field(default_factory=dict)
    #: The layers :meth:`program` placed in DRAM (streamed).
    streamed: list[str] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)

    def unique_name(self, hint: str) -> str:
        """``hint``, or ``hint_2``, ``hint_3``... when taken (one namespace for all names)."""
        name, suffix = hint, 2
        while name in self._names:
            name, suffix = f"{hint}_{suffix}", suffix + 1
        self._names.add(name)
        return name

    def add_buffer(
        self,
        hint: str,
        cols: int,
        choice: tuple[int, float, str],
        *,
        rows: int = 1,
        pitch: int | None = None,
        init: np.ndarray | None = None,
    ) -> Buffer:
        """A new buffer of ``rows`` x ``cols`` words; ``choice`` is (frac, max_abs, source)."""
        frac, max_abs, source = choice
        name = self.unique_name(hint)
        buffer = Buffer(name, rows, cols, pitch if pitch is not None else cols, frac, init)
        self.buffers[name] = buffer
        self.formats[name] = FormatChoice(name, "buffer", frac, max_abs, source)
        return buffer

    def add_layer(
        self,
        hint: str,
        codes: np.ndarray,
        codebook: np.ndarray,
        *,
        has_bias: bool,
        model_rows: int | None = None,
        model_cols: int | None = None,
    ) -> Layer:
        """A layer storing ``codes`` (M x K indices into the real-valued ``codebook``).

        The codebook's format is the largest fraction-bit count that holds its range.
        ``model_rows`` / ``model_cols``: the shape of the model's weight matrix the layer stores
        (:class:`LayerRecord`).
        """
        name = self.unique_name(hint)
        max_abs = float(np.abs(codebook).max()) if codebook.size else 0.0
        frac = frac_for_range(max_abs)
        words, _ = quantize(codebook, frac)
        layer = make_layer(name, codes, words, frac, self.machine.pes)
        self.layers[name] = layer
        self.records[name] = LayerRecord(layer, has_bias, model_rows, model_cols)
        self.formats[f"{name}.codebook"] = FormatChoice(name, "codebook", frac, max_abs, "codebook")
        return layer

    def add_table(self, table: Table) -> Table:
        """Register a function table (its name must come from :meth:`unique_name`)."""
        self.tables[table.name] = table
        max_abs = float(np.abs(table.values).max()) * 2.0**-table.frac
        self.formats[table.name] = FormatChoice(table.name, "table", table.frac, max_abs, "table")
        return table

    def table_like(self, wanted: Table) -> str:
        """The name of a table equal to ``wanted`` but for its name, added on first use (named
        after ``wanted``)."""
        for table in self.tables.values():
            if dataclasses.replace(table, name=wanted.name) == wanted:
                return table.name
        return self.add_table(dataclasses.replace(wanted, name=self.unique_name(wanted.name))).name

    def emit(self, *instructions: Instruction) -> None:
        """Append instructions to the text."""
        self.text.extend(instructions)

    def program(self, weights: WeightsMode = "sram") -> Program:
        """The finished program, its layers placed by ``weights`` (on chip, streamed from
        DRAM, or ``auto``: :mod:`eiec.codegen.streaming`), after the capacity check."""
        built = Program(
            self.machine,
            dict(self.buffers),
            list(self.inputs),
            list(self.outputs),
            dict(self.layers),
            dict(self.tables),
            list(self.text),
        )
        placed, self.streamed = place_weights(built, weights)
        self.layers = dict(placed.layers)
        self.check_capacity()
        return placed

    # --- capacity ---------------------------------------------------------------------------

    def check_capacity(self) -> None:
        """Raise CapacityError when the layers or buffers do not fit a PE's memories."""
        machine = self.machine
        layers = list(self.layers.values())
        overflow = first_overflow(machine, layers, self.buffers.values())
        in_layers = overflow is not None and overflow.memory != "act_sram"
        last = [layer.name for layer in layers].index(overflow.name) if in_layers else None
        max_pointer = (1 << machine.ptr_bits) - 1
        for layer in layers[: None if last is None else last + 1]:
            if layer.streamed:  # its chunks are addressed (isa.capacity.plan_chunks)
                continue
            entries = layer.entries_per_pe
            if int(entries.max(initial=0)) > max_pointer:
                pe = int(np.argmax(entries))
                raise CapacityError(
                    f"PE {pe} stores {int(entries[pe])} entries of this layer, more than "
                    f"{machine.ptr_bits}-bit column pointers address ({max_pointer})",
                    where=f"layer {layer.name}",
                    fix=self._fix_entries(layer.name, None),
                )
        if overflow is None:
            return
        name, need, own = overflow.name, overflow.need, overflow.own
        if overflow.memory == "spmat_sram":
            raise CapacityError(
                f"does not fit the sparse-matrix SRAM: PE {overflow.pe} needs {need} bytes "
                f"({own} for this layer, {need - own} for the layers before it), "
                f"{machine.spmat_sram} bytes available per PE",
                where=f"layer {name}",
                fix=self._fix_entries(name, need),
            )
        if overflow.memory == "ptr_sram":
            raise CapacityError(
                f"does not fit the pointer SRAM: every PE needs {need} bytes of "
                f"column pointers ({own} for this layer's {self.layers[name].cols + 1} pointers, "
                f"{need - own} for the layers before it), {machine.ptr_sram} "
                "bytes available per PE",
                where=f"layer {name}",
                fix=f"raise --ptr-sram to {need} (more PEs do not help: each PE "
                "holds a pointer per column), or compile the layers as separate programs",
            )
        fitting = self._pes_for_activations()
        raise CapacityError(
            f"does not fit the activation SRAM: PE 0 needs {need} bytes for this and "
            f"the earlier buffers, {machine.act_sram} bytes available per PE",
            where=f"buffer {name}",
            fix=(f"use --pes {fitting} or more, or " if fitting else "")
            + f"raise --act-sram to {self._activation_bytes(machine.pes)}",
        )

    def _activation_bytes(self, pes: int) -> int:
        return sum(2 * (-(-b.size // pes)) for b in self.buffers.values())

    def _pes_for_activations(self, limit: int = 4096) -> int | None:
        for pes in range(self.machine.pes + 1, limit + 1):
            if first_overflow(replace(self.machine, pes=pes), (), self.buffers.values()) is None:
                return pes
        return None

    def _entries_fit(self, pes: int, codes: list[np.ndarray]) -> bool:
        machine = self.machine
        total = np.zeros(pes, dtype=np.int64)
        for matrix in codes:
            per_pe = csc.encode(matrix, pes).ptr[:, -1]
            if int(per_pe.max(initial=0)) > (1 << machine.ptr_bits) - 1:
                return False
            total += per_pe
        return int(total.max(initial=0)) <= machine.spmat_sram

    def _fix_entries(self, name: str, need: int | None) -> str:
        """The options that make the layers fit: the smallest PE count, a larger SRAM (the code
        matrices decoded from the stored layers, only on this error path)."""
        codes = [
            csc.decode(record.layer.ptr, record.layer.v, record.layer.z, record.layer.rows)
            for record in self.records.values()
        ]
        low, high = self.machine.pes, None
        candidate = self.machine.pes * 2
        while candidate <= 4096:
            if self._entries_fit(candidate, codes):
                high = candidate
                break
            low, candidate = candidate, candidate * 2
        parts = []
        if high is not None:
            while high - low > 1:
                middle = (low + high) // 2
                if self._entries_fit(middle, codes):
                    high = middle
                else:
                    low = middle
            parts.append(f"use --pes {high} or more")
        if need is not None:
            parts.append(f"raise --spmat-sram to {need}")
        parts.append("prune more (a higher --sparsity)")
        return ", ".join(parts[:-1]) + f", or {parts[-1]}" if len(parts) > 1 else parts[0]
