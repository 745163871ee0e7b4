"""The EIE program as typed data: machine header, data sections and the instruction stream.

This module is the one definition of the ISA's vocabulary. The parser builds these objects,
the printer prints them, the verifier checks them and the emulator executes them; the compiler
produces them. ``isa/SPEC.md`` states the semantics in prose; the instruction classes below state
them in their docstrings, and ``INSTRUCTIONS`` lists every instruction once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from eiec.errors import SourceLocation

FORMAT_VERSION = 1

#: Width of activations, codebook values and table values (bits, two's complement).
WORD_BITS = 16
WORD_MIN = -(1 << (WORD_BITS - 1))
WORD_MAX = (1 << (WORD_BITS - 1)) - 1
#: Width of a virtual weight (codebook index) and of a relative row index.
NIBBLE_BITS = 4
CODEBOOK_SIZE = 1 << NIBBLE_BITS
#: z of a padding entry: 15 zero rows are skipped and the entry itself (v = 0) adds nothing.
PADDING_Z = (1 << NIBBLE_BITS) - 1
#: Functions a ``.table`` may sample (its ``fn``); float32 emulation evaluates them exactly.
TABLE_FUNCTIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu")


# --- machine header ---------------------------------------------------------------------------


def _field(default: int | float, minimum: float, maximum: float, doc: str, unit: str = "") -> Any:
    """A ``Machine`` field with its documentation, range and unit (``fields(Machine)``
    metadata: the one place of each field's sane range, which the verifier, every machine file,
    the command line and ``eiec machines`` use)."""
    return field(
        default=default, metadata={"doc": doc, "min": minimum, "max": maximum, "unit": unit}
    )


#: Largest per-PE memory (1 GiB) and pipeline latency (cycles) a machine may have.
_MEMORY_MAX = 1 << 30
_LATENCY_MAX = 1024


@dataclass(frozen=True)
class Machine:
    """The EIE machine a program was compiled for (the ``.machine`` header).

    Memory sizes are per PE, in bytes; latencies in cycles (isa/SPEC.md §6 says where each one
    counts). Defaults are the paper's 64-PE chip (45 nm, 800 MHz). ``REQUIRED`` fields are
    always written in the header; the others (the pipeline's latencies and the DRAM interface)
    only when they differ from their default. Each field's range is in its metadata (``min``,
    ``max``).

    The DRAM interface (the paper's chip has none: every weight is on chip) serves layers
    streamed chunk by chunk (``Layer.chunks``): its default is one 64-bit DDR3-1600 channel
    (12.8 GB/s, the same as a 32-bit LPDDR4-3200 one) with 100 ns to the first word, and
    Table I's DRAM access energy, 640 pJ per 32 bits (20 pJ per bit).
    """

    pes: int = _field(64, 1, 4096, "processing elements")
    fifo_depth: int = _field(8, 1, 1024, "activation queue entries per PE (emulate-time)")
    clock_mhz: float = _field(800.0, 0.001, 1e5, "clock (emulate-time)", "MHz")
    spmat_sram: int = _field(128 * 1024, 1, _MEMORY_MAX, "sparse-matrix SRAM per PE", "B")
    ptr_sram: int = _field(32 * 1024, 1, _MEMORY_MAX, "pointer SRAM per PE", "B")
    act_sram: int = _field(2 * 1024, 1, _MEMORY_MAX, "activation SRAM per PE", "B")
    ptr_bits: int = _field(16, 8, 32, "column pointer width, a multiple of 4 in 8..32", "bit")
    acc_bits: int = _field(48, 17, 64, "accumulator width, 17..64", "bit")
    lnzd_latency: int = _field(
        1,
        0,
        _LATENCY_MAX,
        "MAC start to the first broadcast out of the leading-non-zero detector",
        "cycles",
    )
    queue_latency: int = _field(
        1, 1, _LATENCY_MAX, "broadcast (queue write) to the pointer-read unit taking the pair",
        "cycles",
    )  # fmt: skip
    ptr_latency: int = _field(
        1, 0, _LATENCY_MAX, "pointer read (p_j, p_j+1) to the column's first sparse-matrix read",
        "cycles",
    )  # fmt: skip
    alu_stages: int = _field(
        4, 1, _LATENCY_MAX,
        "arithmetic pipeline stages: sparse-matrix read, decode, multiply, accumulate",
    )  # fmt: skip
    codebook_cycles: int = _field(
        1, 1, _LATENCY_MAX, "load-codebook cycles per codebook entry", "cycles"
    )
    writeback_rows: int = _field(1, 1, 1 << 20, "rows each PE writes back per cycle")
    ew_latency: int = _field(
        2, 0, _LATENCY_MAX, "element-wise add/mul/copy pipeline latency", "cycles"
    )
    lut_latency: int = _field(
        3, 0, _LATENCY_MAX, "ew-lut pipeline latency (read, multiply, add)", "cycles"
    )
    dram_gbps: float = _field(
        12.8, 1e-3, math.inf, "DRAM bandwidth for streamed weights (emulate-time)", "GB/s"
    )
    dram_latency_ns: float = _field(
        100.0, 0.0, 1e9, "DRAM first-word latency of each chunk transfer (emulate-time)", "ns"
    )
    dram_pj_per_bit: float = _field(
        20.0, 0.0, 1e6, "DRAM energy per bit transferred (Table I: 640 pJ / 32 bit)", "pJ"
    )
    lnzd_group_scan: int = _field(
        0, 0, 1,
        "1: the detector scans one group of N activations per cycle and spends a cycle leaving "
        "a group, as the authors' simulator does (eie-sim); 0: the next non-zero in one cycle",
    )  # fmt: skip

    #: Every field, in header order.
    FIELDS: ClassVar[tuple[str, ...]] = (
        "pes",
        "fifo_depth",
        "clock_mhz",
        "spmat_sram",
        "ptr_sram",
        "act_sram",
        "ptr_bits",
        "acc_bits",
        "lnzd_latency",
        "queue_latency",
        "ptr_latency",
        "alu_stages",
        "codebook_cycles",
        "writeback_rows",
        "ew_latency",
        "lut_latency",
        "dram_gbps",
        "dram_latency_ns",
        "dram_pj_per_bit",
        "lnzd_group_scan",
    )
    #: Fields holding reals (the others are integers).
    REALS: ClassVar[tuple[str, ...]] = (
        "clock_mhz",
        "dram_gbps",
        "dram_latency_ns",
        "dram_pj_per_bit",
    )
    #: The fields every header holds (format version 1 as first published).
    REQUIRED: ClassVar[tuple[str, ...]] = FIELDS[:8]


#: Width of a streamed layer's pointers in its DRAM image (the program text): whole-layer
#: pointers, which the transfer of a chunk rebases to ``ptr_bits``-bit chunk-relative ones.
DRAM_PTR_BITS = 32


def stored_ptr_bits(machine: Machine, streamed: bool) -> int:
    """Width of a layer's pointers in the program text: ``ptr_bits`` for a layer held on chip,
    ``DRAM_PTR_BITS`` for a streamed one."""
    return DRAM_PTR_BITS if streamed else machine.ptr_bits


# --- data sections ----------------------------------------------------------------------------


class _ArrayFields:
    """Equality of a dataclass with array fields: every compared field equal, arrays by value
    (``np.array_equal``), source locations (``compare=False``) ignored."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        for item in fields(self):
            if not item.compare:
                continue
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if isinstance(mine, np.ndarray) or isinstance(theirs, np.ndarray):
                if mine is None or theirs is None or not np.array_equal(mine, theirs):
                    return False
            elif mine != theirs:
                return False
        return True


@dataclass(eq=False)
class Buffer(_ArrayFields):
    """An activation buffer: ``rows`` x ``pitch`` 16-bit words with ``frac`` fraction bits.

    Element ``e`` (flat, row-major with row stride ``pitch``) lives on PE ``e mod N``. Only the
    first ``cols`` words of each row are data; the rest pad rows to a PE-aligned stride.
    ``init`` (``rows * pitch`` int16 words) gives constant initial contents; otherwise zero.
    """

    name: str
    rows: int
    cols: int
    pitch: int
    frac: int
    init: np.ndarray | None = None
    loc: SourceLocation | None = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> int:
        """Words in the buffer, padding included."""
        return self.rows * self.pitch


@dataclass(frozen=True)
class Port:
    """A program input or output: a host tensor of ``shape`` stored in a buffer.

    The tensor's elements, in C order, fill the buffer's data words row by row (``cols`` per
    row, skipping the pitch padding). ``batch_axis`` names the axis of size 1 along which the
    host stacks independent runs for a batch; None when the tensor has no batch axis.
    """

    name: str
    buffer: str
    shape: tuple[int, ...]
    batch_axis: int | None = None
    loc: SourceLocation | None = field(default=None, compare=False, repr=False)


@dataclass(eq=False)
class Codebook(_ArrayFields):
    """A layer's shared weights: up to 16 int16 values with ``frac`` fraction bits; entry 0 is 0."""

    values: np.ndarray
    frac: int
    loc: SourceLocation | None = field(default=None, compare=False, repr=False)


@dataclass(eq=False)
class Layer(_ArrayFields):
    """A weight matrix of ``rows`` x ``cols`` in interleaved CSC over the machine's PEs.

    Row ``r`` belongs to PE ``r mod N`` as local row ``r div N``. For PE ``p``, the entries of
    column ``j`` are ``v[base_p + ptr[p, j] : base_p + ptr[p, j + 1]]`` (likewise ``z``), where
    ``base_p`` is the number of entries of PEs ``0 .. p-1``: ``v`` and ``z`` hold every PE's
    entries, PE after PE. ``ptr`` has shape ``(N, cols + 1)`` and ``ptr[p, 0] == 0``.
    ``loc`` is the ``.layer`` line, ``pe_locs`` the ``.pe`` lines (set by the parser).

    ``chunks``: None for a layer held in the PEs' SRAMs; for a layer held in DRAM and streamed
    into them, the column cut points ``(0, c_1, ..., cols)``: chunk i is columns
    ``chunks[i] .. chunks[i + 1] - 1`` (every PE's entries and pointers of those columns).
    """

    name: str
    rows: int
    cols: int
    codebook: Codebook
    ptr: np.ndarray
    v: np.ndarray
    z: np.ndarray
    chunks: tuple[int, ...] | None = None
    loc: SourceLocation | None = field(default=None, compare=False, repr=False)
    pe_locs: tuple[SourceLocation, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def pes(self) -> int:
        """Number of PEs the layer is interleaved over."""
        return int(self.ptr.shape[0])

    @property
    def entries_per_pe(self) -> np.ndarray:
        """Stored entries (padding included) of each PE, shape ``(N,)``."""
        return self.ptr[:, -1].astype(np.int64)

    @property
    def pe_base(self) -> np.ndarray:
        """Offset of each PE's first entry in ``v`` / ``z``, shape ``(N,)``."""
        counts = self.entries_per_pe
        return np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)

    @property
    def stored_entries(self) -> int:
        """All stored entries, padding included."""
        return int(self.v.size)

    @property
    def padding_entries(self) -> int:
        """Entries with ``v == 0`` (padding, or explicitly stored zeros)."""
        return int(np.count_nonzero(self.v == 0))

    @property
    def streamed(self) -> bool:
        """Whether the layer is held in DRAM and streamed chunk by chunk."""
        return self.chunks is not None

    def chunk_entries(self) -> np.ndarray:
        """Stored entries of each chunk on each PE, shape ``(chunks, N)`` (a layer in SRAM is
        one chunk)."""
        cuts = list(self.chunks) if self.chunks is not None else [0, self.cols]
        ptr = np.asarray(self.ptr, dtype=np.int64)
        return np.diff(ptr[:, cuts], axis=1).T

    def local_rows(self, pe: int) -> int:
        """Rows of the matrix owned by PE ``pe``."""
        n = self.pes
        return max(0, (self.rows - pe + n - 1) // n)


@dataclass(eq=False)
class Table(_ArrayFields):
    """A piecewise-linear function table for ``ew-lut``.

    ``values[i]`` (int16, ``frac`` fraction bits) is the function at ``lo + i * 2**step_log2``.
    ``fn`` names the function it samples (``sigmoid``, ``tanh``, ...); the float32 arithmetic mode
    evaluates ``fn`` exactly instead of the table.
    """

    name: str
    fn: str
    lo: float
    step_log2: int
    frac: int
    values: np.ndarray
    loc: SourceLocation | None = field(default=None, compare=False, repr=False)

    @property
    def hi(self) -> float:
        """The input at the last sample."""
        return self.lo + (self.values.size - 1) * 2.0**self.step_log2


# --- operands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """A buffer operand: the whole buffer (``row`` is None, ``rows * pitch`` words, padding
    included) or one row (``cols`` words starting at word ``row * pitch``)."""

    buffer: str
    row: int | None = None

    def __str__(self) -> str:
        return self.buffer if self.row is None else f"{self.buffer}[{self.row}]"


@dataclass(frozen=True)
class One:
    """The constant activation 1.0 in a broadcast: the bias column (written ``#1``)."""

    def __str__(self) -> str:
        return "#1"


Source = View | One


# --- instructions -----------------------------------------------------------------------------

#: Operand kinds, used by the parser, the printer and the verifier.
LAYER = "layer"  # a layer name
TABLE = "table"  # a table name
VIEW = "view"  # a buffer view: NAME or NAME[ROW]
SOURCES = "sources"  # a non-empty comma list of views and #1
CHUNK = "chunk"  # a chunk of a streamed layer: LAYER[INDEX]


@dataclass(frozen=True)
class Chunk:
    """A chunk operand: chunk ``index`` of streamed layer ``layer`` (written ``L[i]``)."""

    layer: str
    index: int

    def __str__(self) -> str:
        return f"{self.layer}[{self.index}]"


@dataclass(frozen=True)
class Instruction:
    """Base of all instructions. ``OPERANDS`` lists (field name, operand kind) in text order."""

    MNEMONIC: ClassVar[str] = ""
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = ()
    loc: SourceLocation | None = field(default=None, compare=False, repr=False, kw_only=True)

    def operand_values(self) -> Iterator[tuple[str, object]]:
        """(kind, value) of each operand, in text order."""
        for name, kind in self.OPERANDS:
            yield kind, getattr(self, name)


@dataclass(frozen=True)
class LoadCodebook(Instruction):
    """``load-codebook L``: copy layer L's codebook into every PE's codebook registers.

    The following ``sparse-column-mac`` instructions decode virtual weights through it.
    """

    MNEMONIC: ClassVar[str] = "load-codebook"
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = (("layer", LAYER),)
    layer: str


@dataclass(frozen=True)
class BroadcastActivation(Instruction):
    """``broadcast-activation S1, S2, ...``: set the activation stream of the next MAC.

    The stream is the concatenation of the sources (``#1`` is one element of value 1.0); its
    element j is activation a_j of column j. The central unit's leading-non-zero detector sends
    each non-zero (j, a_j) to every PE's activation queue while the next ``sparse-column-mac``
    runs. All view sources share one fixed-point format, in which ``#1`` is ``2**frac``.
    """

    MNEMONIC: ClassVar[str] = "broadcast-activation"
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = (("sources", SOURCES),)
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class SparseColumnMac(Instruction):
    """``sparse-column-mac L``: every PE, for each broadcast (j, a_j), adds
    ``codebook[v] * a_j`` into the accumulator of each of its local rows that column j of
    layer L stores (padding entries add 0). Accumulators are wide (``acc_bits``) integers with
    ``codebook.frac + activation frac`` fraction bits. For a streamed layer the columns come
    from the chunks ``stream-chunk`` queued (the sums are the same as from SRAM).
    """

    MNEMONIC: ClassVar[str] = "sparse-column-mac"
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = (("layer", LAYER),)
    layer: str


@dataclass(frozen=True)
class StreamChunk(Instruction):
    """``stream-chunk L[i]``: queue the transfer of chunk i of streamed layer L (columns
    ``L.chunks[i] .. L.chunks[i + 1] - 1``: every PE's entries and pointers of them) from DRAM
    into the PEs' sparse-matrix and pointer SRAMs. Changes no value.

    The next ``sparse-column-mac L`` reads its columns from the queued chunks, which must be
    L's chunks 0, 1, ... in order, all of them. The transfers run during that MAC, into two
    alternating halves of the SRAM space left by the layers held on chip (double buffering):
    chunk i + 2's transfer starts when chunk i's columns are done.
    """

    MNEMONIC: ClassVar[str] = "stream-chunk"
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = (("chunk", CHUNK),)
    chunk: Chunk


@dataclass(frozen=True)
class Writeback(Instruction):
    """``writeback D``: round each accumulator to D's format, saturate to 16 bits, store row r
    of the layer in word r of view D, and clear the accumulators."""

    MNEMONIC: ClassVar[str] = "writeback"
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = (("dst", VIEW),)
    dst: View


@dataclass(frozen=True)
class ReluWriteback(Instruction):
    """``relu-writeback D``: as ``writeback``, storing max(0, value)."""

    MNEMONIC: ClassVar[str] = "relu-writeback"
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = (("dst", VIEW),)
    dst: View


@dataclass(frozen=True)
class EwAdd(Instruction):
    """``ew-add D, A, B``: D[i] = sat(round(A[i] + B[i])) in D's format, on each PE's slice."""

    MNEMONIC: ClassVar[str] = "ew-add"
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = (("dst", VIEW), ("a", VIEW), ("b", VIEW))
    dst: View
    a: View
    b: View


@dataclass(frozen=True)
class EwMul(Instruction):
    """``ew-mul D, A, B``: D[i] = sat(round(A[i] * B[i])) in D's format, on each PE's slice."""

    MNEMONIC: ClassVar[str] = "ew-mul"
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = (("dst", VIEW), ("a", VIEW), ("b", VIEW))
    dst: View
    a: View
    b: View


@dataclass(frozen=True)
class EwLut(Instruction):
    """``ew-lut D, A, T``: D[i] = sat(round(T(A[i]))), T the piecewise-linear table T."""

    MNEMONIC: ClassVar[str] = "ew-lut"
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("dst", VIEW),
        ("a", VIEW),
        ("table", TABLE),
    )
    dst: View
    a: View
    table: str


@dataclass(frozen=True)
class EwCopy(Instruction):
    """``ew-copy D, A``: D[i] = sat(round(A[i])) in D's format, on each PE's slice."""

    MNEMONIC: ClassVar[str] = "ew-copy"
    OPERANDS: ClassVar[tuple[tuple[str, str], ...]] = (("dst", VIEW), ("a", VIEW))
    dst: View
    a: View


@dataclass(frozen=True)
class Halt(Instruction):
    """``halt``: stop. Every program ends with exactly one ``halt``."""

    MNEMONIC: ClassVar[str] = "halt"


#: Every instruction, by mnemonic: the one list parser, printer, verifier and emulator use.
INSTRUCTIONS: dict[str, type[Instruction]] = {
    cls.MNEMONIC: cls
    for cls in (
        LoadCodebook,
        BroadcastActivation,
        SparseColumnMac,
        StreamChunk,
        Writeback,
        ReluWriteback,
        EwAdd,
        EwMul,
        EwLut,
        EwCopy,
        Halt,
    )
}

WRITEBACKS: tuple[type[Instruction], ...] = (Writeback, ReluWriteback)
ELEMENTWISE: tuple[type[Instruction], ...] = (EwAdd, EwMul, EwLut, EwCopy)


# --- the program ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """Where a program came from (the ``.origin`` header): ``model``, the SHA-256 fingerprint
    of the source model's structure (``eiec.frontend.fingerprint``), ``options``, the compile
    options as ``key=value`` words, and the fingerprints of the weights it was compiled from."""

    model: str
    options: str
    #: :func:`eiec.frontend.fingerprint.weights_fingerprint` of the source model and of the
    #: compressed model compiling it exports (None in programs written before they were kept).
    weights: str | None = None
    compressed: str | None = None


@dataclass(eq=False)
class Program:
    """A whole EIE program. Dicts keep declaration order, which the printer preserves."""

    machine: Machine
    buffers: dict[str, Buffer] = field(default_factory=dict)
    inputs: list[Port] = field(default_factory=list)
    outputs: list[Port] = field(default_factory=list)
    layers: dict[str, Layer] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    text: list[Instruction] = field(default_factory=list)
    version: int = FORMAT_VERSION
    origin: Origin | None = None
    source: str = field(default="<program>", repr=False)

    def view_length(self, view: View) -> int:
        """Words a view covers."""
        buf = self.buffers[view.buffer]
        return buf.size if view.row is None else buf.cols

    def view_offset(self, view: View) -> int:
        """Flat word offset of a view's first word in its buffer."""
        buf = self.buffers[view.buffer]
        return 0 if view.row is None else view.row * buf.pitch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Program):
            return NotImplemented
        return (
            self.version == other.version
            and self.machine == other.machine
            and self.origin == other.origin
            and list(self.buffers.items()) == list(other.buffers.items())
            and self.inputs == other.inputs
            and self.outputs == other.outputs
            and list(self.layers.items()) == list(other.layers.items())
            and list(self.tables.items()) == list(other.tables.items())
            and self.text == other.text
        )
