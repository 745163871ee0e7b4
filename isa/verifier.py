"""The verifier: the rules of isa/SPEC.md section 7 ("Verifier"), checked in that order.

``verify(program)`` raises a ``VerificationError`` for the first broken rule, located at the
directive or instruction that breaks it (``file:line:col``; the program's ``source`` when it
was built in Python without locations) and naming the item: layer, PE, column, entry, buffer,
operand. Checks over stored entries are vectorised, so millions of entries take milliseconds.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import Field, dataclass, fields
from typing import NoReturn

import numpy as np

from eiec.errors import SourceLocation, VerificationError
from eiec.isa import csc
from eiec.isa.capacity import chunk_overflow, first_overflow
from eiec.isa.printer import format_instruction
from eiec.isa.program import (
    CHUNK,
    CODEBOOK_SIZE,
    ELEMENTWISE,
    LAYER,
    NIBBLE_BITS,
    SOURCES,
    TABLE,
    TABLE_FUNCTIONS,
    VIEW,
    WORD_MAX,
    WORD_MIN,
    WRITEBACKS,
    BroadcastActivation,
    Buffer,
    Chunk,
    EwLut,
    Halt,
    Instruction,
    Layer,
    LoadCodebook,
    Machine,
    One,
    Port,
    Program,
    SparseColumnMac,
    StreamChunk,
    Table,
    View,
    stored_ptr_bits,
)

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
#: Fraction bits any word format (buffer, codebook, table) may have.
FRAC_RANGE = range(-16, 32)
#: Sample spacing exponents a table may have.
STEP_LOG2_RANGE = range(-31, 32)
PTR_BITS_RANGE = range(8, 33)


def _where(loc: SourceLocation | None, source: str) -> str:
    return str(loc) if loc is not None else source


def _span(values: range) -> str:
    return f"{values.start}..{values.stop - 1}"


def field_range(item: Field) -> str:
    """A ``Machine`` field's range as text: ``1..4096``, ``0.001..100000``."""
    low, high = item.metadata["min"], item.metadata["max"]
    return "..".join(str(v) if isinstance(v, int) else f"{v:g}" for v in (low, high))


def check_machine(machine: Machine, where: str) -> None:
    """Rule 1: the ``.machine`` header: every field within its range (``min``..``max`` of its
    metadata), the clock finite, ``ptr_bits`` a multiple of 4."""
    for item in fields(Machine):
        value, least, most = getattr(machine, item.name), item.metadata["min"], item.metadata["max"]
        if not least <= value <= most:  # NaN fails too
            raise VerificationError(
                f"machine: {item.name} must be in {field_range(item)}, got {value}", where=where
            )
    if machine.ptr_bits % 4:
        raise VerificationError(
            f"machine: ptr_bits must be a multiple of 4 in {_span(PTR_BITS_RANGE)}, "
            f"got {machine.ptr_bits}",
            where=where,
        )


def check_layer_shape(name: str, rows: int, cols: int, where: str) -> None:
    """Rule 6, first part: a layer has at least one row and one column."""
    for field_name, value in (("rows", rows), ("cols", cols)):
        if value < 1:
            raise VerificationError(
                f"layer {name}: {field_name} must be >= 1, got {value}", where=where
            )


def check_pe_count(name: str, stored: int, pes: int, where: str) -> None:
    """Rule 6: a layer is stored over exactly the machine's PEs."""
    if stored != pes:
        raise VerificationError(
            f"layer {name}: PE count mismatch: {stored} .pe line{'s' if stored != 1 else ''}, "
            f"the machine has pes = {pes}",
            where=where,
            fix="a layer has one .pe line per PE, numbered from 0",
        )


def verify(program: Program) -> None:
    """Raise ``VerificationError`` unless ``program`` satisfies every rule of SPEC section 7."""
    _Verifier(program).run()


@dataclass
class _Pending:
    """Accumulators holding a layer's partial sums, waiting for a writeback."""

    layer: Layer
    frac: int


class _Verifier:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.machine = program.machine

    def fail(self, loc: SourceLocation | None, what: str, fix: str | None = None) -> NoReturn:
        raise VerificationError(what, where=_where(loc, self.program.source), fix=fix)

    def run(self) -> None:
        check_machine(self.machine, _where(None, self.program.source))
        self.names()
        for buffer in self.program.buffers.values():
            self.buffer(buffer)
        for kind, ports in (("input", self.program.inputs), ("output", self.program.outputs)):
            for port in ports:
                self.port(kind, port)
        for table in self.program.tables.values():
            self.table(table)
        for layer in self.program.layers.values():
            self.layer(layer)
        self.capacity()
        self.text()

    # --- rule 2: names ------------------------------------------------------------------------

    def names(self) -> None:
        program = self.program
        groups: tuple[tuple[str, dict[str, Buffer] | dict[str, Layer] | dict[str, Table]], ...] = (
            ("buffer", program.buffers),
            ("layer", program.layers),
            ("table", program.tables),
        )
        for kind, items in groups:
            for key, item in items.items():
                if item.name != key:
                    self.fail(item.loc, f"{kind} '{item.name}' is registered under '{key}'")
                self.identifier(kind, key, item.loc)
        seen: dict[str, Port] = {}
        for port in (*program.inputs, *program.outputs):
            self.identifier("port", port.name, port.loc)
            if port.name in seen:
                first = seen[port.name].loc
                self.fail(
                    port.loc,
                    f"duplicate port '{port.name}'"
                    + (f" (first declared at {first})" if first else ""),
                    "inputs and outputs share one namespace; rename one",
                )
            seen[port.name] = port

    def identifier(self, kind: str, name: str, loc: SourceLocation | None) -> None:
        if not IDENTIFIER.match(name):
            self.fail(loc, f"{kind} name {name!r} is not an identifier ([A-Za-z_][A-Za-z0-9_.]*)")

    def lookup(
        self, kind: str, name: str, items: Iterable[str], loc: SourceLocation | None, owner: str
    ) -> None:
        names = list(items)
        if name in names:
            return
        import difflib  # lazy: only for an unknown name's suggestion

        close = difflib.get_close_matches(name, names, n=1)
        fix = f"did you mean '{close[0]}'?" if close else f"declare it with .{kind}"
        self.fail(loc, f"{owner}: unknown {kind} '{name}'", fix)

    # --- rules 3, 4: buffers and ports --------------------------------------------------------

    def frac(self, owner: str, frac: int, loc: SourceLocation | None) -> None:
        if frac not in FRAC_RANGE:
            self.fail(loc, f"{owner}: frac must be in {_span(FRAC_RANGE)}, got {frac}")

    def words(self, owner: str, what: str, values: np.ndarray, loc: SourceLocation | None) -> None:
        """int16 range of an array of words."""
        values = np.asarray(values)
        if values.dtype == np.int16 or values.size == 0:
            return
        bad = np.flatnonzero((values < WORD_MIN) | (values > WORD_MAX))
        if bad.size:
            index = int(bad[0])
            self.fail(
                loc,
                f"{owner}: {what} {index} is {int(values[index])}, outside the 16-bit range "
                f"{WORD_MIN}..{WORD_MAX}",
            )

    def buffer(self, buffer: Buffer) -> None:
        owner = f"buffer {buffer.name}"
        for name in ("rows", "cols"):
            value = getattr(buffer, name)
            if value < 1:
                self.fail(buffer.loc, f"{owner}: {name} must be >= 1, got {value}")
        if buffer.pitch < buffer.cols:
            self.fail(buffer.loc, f"{owner}: pitch {buffer.pitch} is less than cols {buffer.cols}")
        self.frac(owner, buffer.frac, buffer.loc)
        if buffer.init is not None:
            if buffer.init.size != buffer.size:
                self.fail(
                    buffer.loc,
                    f"{owner}: init holds {buffer.init.size} words, expected rows * pitch = "
                    f"{buffer.size}",
                )
            self.words(owner, "init word", buffer.init, buffer.loc)

    def port(self, kind: str, port: Port) -> None:
        owner = f"{kind} {port.name}"
        self.lookup("buffer", port.buffer, self.program.buffers, port.loc, owner)
        buffer = self.program.buffers[port.buffer]
        shape = "[" + ",".join(str(d) for d in port.shape) + "]"
        if any(d < 1 for d in port.shape):
            self.fail(port.loc, f"{owner}: shape {shape} has a dimension below 1")
        elements = math.prod(port.shape)
        if elements != buffer.rows * buffer.cols:
            self.fail(
                port.loc,
                f"{owner}: shape {shape} holds {elements} elements, buffer {buffer.name} holds "
                f"rows * cols = {buffer.rows * buffer.cols}",
            )
        axis = port.batch_axis
        if axis is not None:
            if not 0 <= axis < len(port.shape):
                self.fail(port.loc, f"{owner}: batch_axis {axis} is not an axis of shape {shape}")
            if port.shape[axis] != 1:
                self.fail(
                    port.loc,
                    f"{owner}: batch_axis {axis} has size {port.shape[axis]} in shape {shape}, "
                    "not 1",
                )

    # --- rule 7: tables -----------------------------------------------------------------------

    def table(self, table: Table) -> None:
        owner = f"table {table.name}"
        if table.values.size < 2:
            count = table.values.size
            self.fail(
                table.loc,
                f"{owner}: has {count} value{'s' if count != 1 else ''}, at least 2 are needed",
            )
        if table.fn not in TABLE_FUNCTIONS:
            known = ", ".join(TABLE_FUNCTIONS)
            self.fail(table.loc, f"{owner}: unknown function '{table.fn}'", f"known: {known}")
        if not math.isfinite(table.lo):
            self.fail(table.loc, f"{owner}: lo must be finite, got {table.lo}")
        if table.step_log2 not in STEP_LOG2_RANGE:
            self.fail(
                table.loc,
                f"{owner}: step_log2 must be in {_span(STEP_LOG2_RANGE)}, got {table.step_log2}",
            )
        self.frac(owner, table.frac, table.loc)
        self.words(owner, "value", table.values, table.loc)

    # --- rules 5, 6: codebooks and layers -----------------------------------------------------

    def layer(self, layer: Layer) -> None:
        where = _where(layer.loc, self.program.source)
        check_layer_shape(layer.name, layer.rows, layer.cols, where)
        self.codebook(layer)
        ptr = np.asarray(layer.ptr)
        if ptr.ndim != 2:
            self.fail(layer.loc, f"layer {layer.name}: ptr must be 2-D (PEs x (cols + 1))")
        check_pe_count(layer.name, ptr.shape[0], self.machine.pes, where)
        if ptr.shape[1] != layer.cols + 1:
            self.fail(
                layer.loc,
                f"layer {layer.name}: {ptr.shape[1]} pointers per PE, expected cols + 1 = "
                f"{layer.cols + 1}",
            )
        self.chunks(layer)
        self.pointers(layer, ptr)
        self.entries(layer, ptr)

    def chunks(self, layer: Layer) -> None:
        """Rule 6: a streamed layer's cut points run from 0 up to ``cols``."""
        cuts = layer.chunks
        if cuts is None:
            return
        if len(cuts) < 2 or cuts[0] != 0 or cuts[-1] != layer.cols:
            self.fail(
                layer.loc,
                f"layer {layer.name}: chunks={list(cuts)} must start at 0 and end at cols = "
                f"{layer.cols}",
            )
        for index, (first, stop) in enumerate(itertools.pairwise(cuts)):
            if stop <= first:
                self.fail(
                    layer.loc,
                    f"layer {layer.name}: chunk {index} (columns {first}..{stop - 1}) is empty",
                    "chunk cut points must increase",
                )

    def pe_loc(self, layer: Layer, pe: int) -> SourceLocation | None:
        if layer.pe_locs is not None and pe < len(layer.pe_locs):
            return layer.pe_locs[pe]
        return layer.loc

    def codebook(self, layer: Layer) -> None:
        book = layer.codebook
        loc = book.loc or layer.loc
        owner = f"layer {layer.name}: codebook"
        size = book.values.size
        if not 1 <= size <= CODEBOOK_SIZE:
            self.fail(loc, f"{owner} has {size} entries, it must have 1..{CODEBOOK_SIZE}")
        if book.values[0] != 0:
            self.fail(
                loc,
                f"{owner} entry 0 is {int(book.values[0])}, it must be 0",
                "entry 0 is the weight of padding entries",
            )
        self.frac(owner, book.frac, loc)
        self.words(owner, "entry", book.values, loc)

    def pointers(self, layer: Layer, ptr: np.ndarray) -> None:
        name = layer.name
        first = np.flatnonzero(ptr[:, 0] != 0)
        if first.size:
            pe = int(first[0])
            self.fail(
                self.pe_loc(layer, pe),
                f"layer {name}, PE {pe}: ptr[0] is {int(ptr[pe, 0])}, it must be 0",
            )
        drops = np.argwhere(np.diff(ptr, axis=1) < 0)
        if drops.size:
            pe, col = (int(i) for i in drops[0])
            self.fail(
                self.pe_loc(layer, pe),
                f"layer {name}, PE {pe}, column {col}: non-monotone pointers: ptr[{col}] = "
                f"{int(ptr[pe, col])} > ptr[{col + 1}] = {int(ptr[pe, col + 1])}",
            )
        bits = stored_ptr_bits(self.machine, layer.streamed)
        over = np.flatnonzero(ptr[:, -1] >= 1 << bits)
        if over.size:
            pe = int(over[0])
            whose = "a streamed layer's " if layer.streamed else ""
            self.fail(
                self.pe_loc(layer, pe),
                f"layer {name}, PE {pe}: pointer {int(ptr[pe, -1])} does not fit "
                f"{whose}ptr_bits = {bits}",
                "split the layer or use wider pointers",
            )
        if layer.streamed:  # a chunk's pointers, rebased to its start, fit ptr_bits
            sizes = layer.chunk_entries()
            big = np.argwhere(sizes >= 1 << self.machine.ptr_bits)
            if big.size:
                chunk, pe = (int(i) for i in big[0])
                self.fail(
                    self.pe_loc(layer, pe),
                    f"layer {name}, PE {pe}: chunk {chunk} holds {int(sizes[chunk, pe])} "
                    f"entries, more than ptr_bits = {self.machine.ptr_bits} pointers address",
                    "cut the layer into smaller chunks",
                )
        total = int(ptr[:, -1].sum())
        for array in ("v", "z"):
            size = getattr(layer, array).size
            if size != total:
                problem = (
                    "pointers past the data" if total > size else "entries after the last pointer"
                )
                self.fail(
                    layer.loc,
                    f"layer {name}: {problem}: the PEs' last pointers add up to {total} entries, "
                    f"{array} holds {size}",
                )

    def entries(self, layer: Layer, ptr: np.ndarray) -> None:
        v = np.asarray(layer.v)
        z = np.asarray(layer.z)
        book = layer.codebook.values.size
        nibble = 1 << NIBBLE_BITS
        for array, values, limit in (("z", z, nibble), ("v", v, min(book, nibble))):
            # Two reductions (no mask) settle the usual case, all in range.
            if not values.size or (values.max() < limit and values.min() >= 0):
                continue
            bad = np.flatnonzero((values >= limit) | (values < 0))
            if bad.size:
                index = int(bad[0])
                why = f"{array} = {int(values[index])}"
                if array == "v" and 0 <= values[index] < nibble:
                    why += f" but the codebook has {book} entries"
                self.fail_entry(layer, ptr, index, f"nibble out of range: {why}")
        pes = ptr.shape[0]
        # Entries reach at most 16 local rows each, so capping rows keeps int64 exact.
        rows = min(layer.rows, 16 * (layer.v.size + 1) * pes)
        local_rows = (rows - np.arange(pes) + pes - 1) // pes
        # A column's last entry has its highest local row: check columns, then find the first
        # entry past the PE's rows in the first bad column (storage order: PE, column, entry).
        bad_pes, bad_cols = np.nonzero(csc.column_heights(ptr, z) > local_rows[:, None])
        if bad_pes.size:
            pe, col = int(bad_pes[0]), int(bad_cols[0])
            start = int(ptr[:pe, -1].sum()) + int(ptr[pe, col])
            column = z[start : start + int(ptr[pe, col + 1] - ptr[pe, col])]
            local = np.cumsum(column.astype(np.int64) + 1) - 1
            first = int(np.flatnonzero(local >= local_rows[pe])[0])
            self.fail_entry(
                layer,
                ptr,
                start + first,
                f"shapes inconsistent: local row {int(local[first])} is past the "
                f"PE's {int(local_rows[pe])} local rows (rows = {layer.rows} over {pes} PEs)",
            )

    def fail_entry(self, layer: Layer, ptr: np.ndarray, index: int, what: str) -> NoReturn:
        """Fail at stored entry ``index`` (over all PEs) of ``layer``, naming PE, column, entry."""
        counts = ptr[:, -1].astype(np.int64)
        pe = int(np.searchsorted(np.cumsum(counts), index, side="right"))
        local = index - int(counts[:pe].sum())
        col = int(np.searchsorted(ptr[pe], local, side="right")) - 1
        self.fail(
            self.pe_loc(layer, pe),
            f"layer {layer.name}, PE {pe}, column {col}, entry {local}: {what}",
        )

    # --- rule 8: capacity ---------------------------------------------------------------------

    def capacity(self) -> None:
        program, machine = self.program, self.machine
        overflow = first_overflow(machine, program.layers.values(), program.buffers.values())
        if overflow is None:
            self.chunk_capacity()
            return
        name, need = overflow.name, overflow.need
        if overflow.memory == "spmat_sram":
            self.fail(
                program.layers[name].loc,
                f"layer {name}: PE {overflow.pe} runs out of sparse-matrix SRAM: the layers up "
                f"to this one store {need} entries (1 byte each), spmat_sram = "
                f"{machine.spmat_sram}",
                "prune more, use more PEs, or a machine with more SRAM",
            )
        if overflow.memory == "ptr_sram":
            self.fail(
                program.layers[name].loc,
                f"layer {name}: pointer SRAM overflow: the layers up to this one need "
                f"{need} bytes of pointers per PE, ptr_sram = {machine.ptr_sram}",
                "fewer columns per program or a machine with more pointer SRAM",
            )
        self.fail(
            program.buffers[name].loc,
            f"buffer {name}: PE 0 runs out of activation SRAM: the buffers up to "
            f"this one need {need} bytes (2 per word), act_sram = {machine.act_sram}",
            "use more PEs, fewer or smaller buffers, or a machine with more SRAM",
        )

    def chunk_capacity(self) -> None:
        """Rule 8, streamed layers: each chunk fits half the SRAM the on-chip layers leave."""
        machine = self.machine
        for layer in self.program.layers.values():
            problem = chunk_overflow(machine, self.program.layers.values(), layer)
            if problem is not None:
                self.fail(layer.loc, f"layer {layer.name}: {problem}", "cut it into smaller chunks")

    # --- rules 9, 10: the instruction stream --------------------------------------------------

    def text(self) -> None:
        program = self.program
        if not program.text or not isinstance(program.text[-1], Halt):
            last = program.text[-1].loc if program.text else None
            self.fail(
                last, "the program does not end with halt", "add halt as the last instruction"
            )
        stream: tuple[int, int] | None = None  # (length, frac) of the pending broadcast
        codebook: Layer | None = None
        pending: _Pending | None = None
        queued: list[Chunk] = []  # chunks streamed since the last MAC
        last = len(program.text) - 1
        for index, instruction in enumerate(program.text):
            self.operands(instruction)
            if isinstance(instruction, Halt):
                if index != last:
                    self.fail(instruction.loc, "halt before the end of the program")
                if pending is not None:
                    self.fail(
                        instruction.loc,
                        f"halt: the accumulators of layer {pending.layer.name} were never "
                        "written back",
                        "add a writeback before halt",
                    )
            elif isinstance(instruction, LoadCodebook):
                codebook = program.layers[instruction.layer]
            elif isinstance(instruction, BroadcastActivation):
                stream = self.broadcast(instruction)
            elif isinstance(instruction, StreamChunk):
                self.stream_chunk(instruction, queued)
                queued.append(instruction.chunk)
            elif isinstance(instruction, SparseColumnMac):
                self.streamed(instruction, queued)
                queued = []
                pending = self.mac(instruction, stream, codebook, pending)
                stream = None
            elif isinstance(instruction, WRITEBACKS):
                self.writeback(instruction, pending)
                pending = None
            elif isinstance(instruction, ELEMENTWISE):
                self.elementwise(instruction)

    def stream_chunk(self, instruction: StreamChunk, queued: list[Chunk]) -> None:
        chunk = instruction.chunk
        expected = queued[-1].index + 1 if queued else 0
        if queued and queued[-1].layer != chunk.layer:
            self.fail(
                instruction.loc,
                f"{format_instruction(instruction)}: chunks of layer {queued[-1].layer} are "
                "queued for its MAC",
                f"run sparse-column-mac {queued[-1].layer} first",
            )
        if chunk.index != expected:
            self.fail(
                instruction.loc,
                f"{format_instruction(instruction)}: chunk {expected} of layer {chunk.layer} is "
                f"the next to stream, not chunk {chunk.index}",
                "stream a layer's chunks in order from 0 before its sparse-column-mac",
            )

    def streamed(self, instruction: SparseColumnMac, queued: list[Chunk]) -> None:
        """A MAC of a streamed layer needs all its chunks queued; of another, none."""
        layer = self.program.layers[instruction.layer]
        owner = format_instruction(instruction)
        if layer.chunks is None:
            if queued:
                self.fail(
                    instruction.loc,
                    f"{owner}: chunks of layer {queued[-1].layer} are queued, but layer "
                    f"{layer.name} is held on chip",
                )
            return
        count = len(layer.chunks) - 1
        if len(queued) != count or (queued and queued[0].layer != layer.name):
            self.fail(
                instruction.loc,
                f"{owner}: layer {layer.name} is streamed in {count} chunk"
                f"{'s' if count != 1 else ''}, {len(queued)} of them queued",
                f"stream-chunk {layer.name}[0] .. {layer.name}[{count - 1}] before the MAC",
            )

    def operands(self, instruction: Instruction) -> None:
        """Rule 2 (declared names) and rule 10 (row in range) for every operand."""
        owner = format_instruction(instruction)
        loc = instruction.loc
        for kind, value in instruction.operand_values():
            if kind == LAYER:
                self.lookup("layer", value, self.program.layers, loc, owner)
            elif kind == TABLE:
                self.lookup("table", value, self.program.tables, loc, owner)
            elif kind == VIEW:
                self.view(value, loc, owner)
            elif kind == CHUNK:
                self.chunk(value, loc, owner)
            elif kind == SOURCES:
                for source in value:
                    if isinstance(source, View):
                        self.view(source, loc, owner)

    def chunk(self, chunk: Chunk, loc: SourceLocation | None, owner: str) -> None:
        self.lookup("layer", chunk.layer, self.program.layers, loc, owner)
        cuts = self.program.layers[chunk.layer].chunks
        if cuts is None:
            self.fail(
                loc,
                f"{owner}: layer {chunk.layer} is held on chip (no chunks=), not streamed",
            )
        if not 0 <= chunk.index < len(cuts) - 1:
            self.fail(
                loc,
                f"{owner}: chunk {chunk.index} of layer {chunk.layer} is out of range "
                f"(chunks = {len(cuts) - 1})",
            )

    def view(self, view: View, loc: SourceLocation | None, owner: str) -> None:
        self.lookup("buffer", view.buffer, self.program.buffers, loc, owner)
        rows = self.program.buffers[view.buffer].rows
        if view.row is not None and not 0 <= view.row < rows:
            self.fail(
                loc,
                f"{owner}: row {view.row} of buffer {view.buffer} is out of range (rows = {rows})",
            )

    def broadcast(self, instruction: BroadcastActivation) -> tuple[int, int]:
        owner = format_instruction(instruction)
        views = [s for s in instruction.sources if isinstance(s, View)]
        # A stream of #1 alone has format 0 (SPEC section 5).
        fracs = {self.program.buffers[v.buffer].frac for v in views} or {0}
        if len(fracs) > 1:
            listing = ", ".join(f"{v} ({self.program.buffers[v.buffer].frac})" for v in views)
            self.fail(
                instruction.loc,
                f"{owner}: the sources have different fracs: {listing}",
                "copy them into buffers of one format with ew-copy",
            )
        length = sum(
            1 if isinstance(s, One) else self.program.view_length(s) for s in instruction.sources
        )
        return length, fracs.pop()

    def mac(
        self,
        instruction: SparseColumnMac,
        stream: tuple[int, int] | None,
        codebook: Layer | None,
        pending: _Pending | None,
    ) -> _Pending:
        owner = format_instruction(instruction)
        layer = self.program.layers[instruction.layer]
        loc = instruction.loc
        if stream is None:
            self.fail(loc, f"{owner}: no broadcast-activation since the last sparse-column-mac")
        length, frac = stream
        if length != layer.cols:
            self.fail(
                loc,
                f"{owner}: the broadcast stream holds {length} activations, layer "
                f"{layer.name} has cols = {layer.cols}",
            )
        if codebook is None or codebook.name != layer.name:
            loaded = (
                "no codebook is loaded"
                if codebook is None
                else f"the loaded codebook is layer {codebook.name}'s"
            )
            self.fail(loc, f"{owner}: {loaded}", f"load-codebook {layer.name} first")
        acc_frac = layer.codebook.frac + frac
        if pending is not None:
            if pending.layer.rows != layer.rows:
                self.fail(
                    loc,
                    f"{owner}: the accumulators hold {pending.layer.rows} rows of layer "
                    f"{pending.layer.name}, layer {layer.name} has {layer.rows}",
                    "write back before a MAC of another row count",
                )
            if pending.frac != acc_frac:
                self.fail(
                    loc,
                    f"{owner}: accumulator format mismatch: the accumulators hold {pending.frac} "
                    f"fraction bits, this MAC adds {acc_frac} (codebook {layer.codebook.frac} + "
                    f"activations {frac})",
                    "MACs into the same accumulators need equal codebook frac + activation frac",
                )
        return _Pending(layer, acc_frac)

    def writeback(self, instruction: Instruction, pending: _Pending | None) -> None:
        owner = format_instruction(instruction)
        loc = instruction.loc
        if pending is None:
            self.fail(
                loc,
                f"{owner}: no pending accumulators (no sparse-column-mac since the last writeback)",
            )
        dst = instruction.dst
        length = self.program.view_length(dst)
        if length != pending.layer.rows:
            self.fail(
                loc,
                f"{owner}: {dst} covers {length} words, layer {pending.layer.name} has "
                f"rows = {pending.layer.rows}",
            )
        offset = self.program.view_offset(dst)
        if offset % self.machine.pes:
            self.fail(
                loc,
                f"{owner}: {dst} starts at word {offset}, on PE {offset % self.machine.pes}, "
                "not PE 0",
                "pad the buffer's pitch to a multiple of the PE count",
            )

    def elementwise(self, instruction: Instruction) -> None:
        owner = format_instruction(instruction)
        loc = instruction.loc
        pes = self.machine.pes
        views = [
            (name, getattr(instruction, name))
            for name, kind in instruction.OPERANDS
            if kind == VIEW
        ]
        dst_name, dst = views[0]
        length = self.program.view_length(dst)
        offset = self.program.view_offset(dst)
        for name, view in views[1:]:
            other = self.program.view_length(view)
            if other != length:
                self.fail(
                    loc,
                    f"{owner}: operand {name} ({view}) covers {other} words, {dst_name} "
                    f"({dst}) covers {length}",
                )
            start = self.program.view_offset(view)
            if (start - offset) % pes:
                self.fail(
                    loc,
                    f"{owner}: operand {name} ({view}) starts on PE {start % pes}, "
                    f"{dst_name} ({dst}) on PE {offset % pes}",
                    "element-wise operands need offsets congruent modulo the PE count",
                )
        if isinstance(instruction, EwLut):
            table = self.program.tables[instruction.table]
            frac = self.program.buffers[instruction.a.buffer].frac
            from fractions import Fraction  # lazy: fractions+decimal, only for ew-lut tables

            if (Fraction(table.lo) * Fraction(2) ** frac).denominator != 1:
                self.fail(
                    loc,
                    f"{owner}: table {table.name} starts at lo = {table.lo}, not a multiple of "
                    f"2**{-frac} (the frac of {instruction.a})",
                    "move the table's lo to a multiple of the input's step",
                )
