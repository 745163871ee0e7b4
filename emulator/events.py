"""What instruction handlers report to observers, and what the cycle model adds to it.

Handlers implement the semantics and return one :class:`Event` per instruction. The cycle
model turns an event into a :class:`Timing` (cycle span, per-PE accounting, activity counts);
the other observers (statistics, energy, tracing) receive both. For a lockstep batch (a machine
state with lanes) one event and one timing stand for all lanes: what differs between lanes
(saturation counts, a MAC's broadcast columns, start cycles, a MAC's cycles, activity and
per-PE accounting) is an array (or list) over the lanes; an int saturation count is every
lane's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from eiec.emulator.layers import LayerTables
from eiec.isa.program import Instruction, View


@dataclass(frozen=True)
class Event:
    """An executed instruction. ``saturations`` counts the words it clamped."""

    pc: int
    instruction: Instruction
    saturations: int = 0


@dataclass(frozen=True)
class CodebookEvent(Event):
    """``load-codebook``: ``size`` codebook entries sent to every PE."""

    size: int = 0


@dataclass(frozen=True)
class BroadcastEvent(Event):
    """``broadcast-activation``: a stream of ``length`` words was set up."""

    length: int = 0


@dataclass(frozen=True)
class MacEvent(Event):
    """``sparse-column-mac``: the broadcast items are the stream's non-zero ``columns``, in
    order; ``step`` counts earlier MACs of the same layer in this run."""

    layer: LayerTables | None = None
    columns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    stream_length: int = 0
    step: int = 0


@dataclass(frozen=True)
class StreamEvent(Event):
    """``stream-chunk``: chunk ``chunk`` of layer ``layer`` was queued for its MAC."""

    layer: str = ""
    chunk: int = 0


@dataclass(frozen=True)
class WritebackEvent(Event):
    """``writeback`` / ``relu-writeback`` of ``rows`` accumulators."""

    rows: int = 0


ElementwiseOp = Literal["add", "mul", "copy", "lut"]


@dataclass(frozen=True)
class ElementwiseEvent(Event):
    """An element-wise instruction over ``length`` words with ``sources`` operand views."""

    op: ElementwiseOp = "copy"
    length: int = 0
    sources: int = 1


@dataclass(frozen=True)
class HaltEvent(Event):
    """``halt``."""


@dataclass(frozen=True)
class MacTiming:
    """Per-PE accounting of a MAC's ``window``: its cycles less the pipeline's fill and drain,
    the span of the PEs' entry stage (isa/SPEC.md §6).

    ``busy``, ``padding``, ``pointer``, ``starved``, ``stall``: arrays of shape (N,): cycles of
    useful MACs, of padding entries (v == 0), of pointer reads of columns with no entries on the
    PE, of waiting for the broadcast, and cycles in which the broadcast stalled on this PE's
    full queue. ``stall_cycles``: cycles the broadcast stalled (any queue full).
    ``ideal_cycles``: stored entries of the broadcast columns / N (the paper's "theoretical").
    A streamed layer's MAC also has ``dram_bytes`` (its chunks' bytes), ``transfer_cycles``
    (their transfer times added up), ``compute_cycles`` (its cycles were every chunk on chip)
    and ``dram_stall_cycles`` (the cycles it waited for chunks: its cycles less
    ``compute_cycles``).
    """

    window: int
    broadcasts: int
    busy: np.ndarray
    padding: np.ndarray
    pointer: np.ndarray
    starved: np.ndarray
    stall: np.ndarray
    stall_cycles: int
    ideal_cycles: float
    dram_bytes: int = 0
    dram_stall_cycles: int = 0
    transfer_cycles: float = 0.0
    compute_cycles: int = 0

    @property
    def memory_bound(self) -> bool:
        """Whether the MAC's DRAM transfers take longer than its computation (streamed
        layers only; a layer held on chip transfers nothing)."""
        return self.transfer_cycles > self.compute_cycles


@dataclass(frozen=True)
class Timing:
    """When an instruction ran (``start`` .. ``start + cycles``) and what it did (event counts
    named as in the energy table)."""

    start: int
    cycles: int
    activity: dict[str, int]
    mac: MacTiming | None = None

    @property
    def end(self) -> int:
        """The cycle after the instruction's last."""
        return self.start + self.cycles


class Observer(Protocol):
    """Receives every executed instruction with its timing."""

    def reset(self) -> None:
        """A new run starts."""

    def observe(self, event: Event, timing: Timing) -> None:
        """One instruction ran."""


#: Reads a view's current contents as real values (float64, dequantised).
ReadView = Callable[[View], np.ndarray]


class Probe(Protocol):
    """Sees the machine's values around every instruction (the error bound is one): called
    with the host inputs after ``reset``, and before and after each instruction executes."""

    def start(self, inputs: Mapping[str, np.ndarray], read: ReadView) -> None:
        """A run starts with these inputs (one sample, the ports' shapes)."""

    def before(self, instruction: Instruction, read: ReadView) -> None:
        """``instruction`` is about to run."""

    def after(self, event: Event, read: ReadView) -> None:
        """``event.instruction`` ran."""
