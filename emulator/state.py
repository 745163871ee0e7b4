"""The architectural state of the EIE machine between two instructions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MachineState:
    """Everything an instruction reads or writes (isa/SPEC.md §5).

    ``buffers``: every activation buffer as a flat array of ``rows * pitch`` words, int16
    (fixed16 mode) or float32 (float32 mode). ``codebook``: the codebook registers (int64
    words, or float64 values) and the layer they were loaded from. ``stream``: the pending
    activation stream of the next MAC (int64 words with ``stream_frac`` fraction bits, or
    float64 values). ``acc``: the accumulators of the pending layer (int64 with ``acc_frac``
    fraction bits, or float64), None when no MAC is pending. ``pc``: the next instruction.

    ``lanes``: None for one run; B for a lockstep batch of B runs, whose ``buffers``, ``stream``
    and ``acc`` have a leading axis of the B lanes (the rest is the same in every lane: the
    program has no control flow).
    """

    buffers: dict[str, np.ndarray]
    lanes: int | None = None
    codebook: np.ndarray | None = None
    codebook_layer: str | None = None
    codebook_frac: int = 0
    stream: np.ndarray | None = None
    stream_frac: int = 0
    acc: np.ndarray | None = None
    acc_frac: int = 0
    acc_layer: str | None = None
    pc: int = 0
    halted: bool = False
    #: Chunks ``stream-chunk`` queued for the next MAC: (layer, index) in order.
    queued: list[tuple[str, int]] = field(default_factory=list)
    #: How many times each layer has been multiplied so far (the ``step`` of the next MAC).
    mac_steps: dict[str, int] = field(default_factory=dict)

    @property
    def lead(self) -> tuple[int, ...]:
        """The leading shape of the arrays: ``()`` for one run, ``(lanes,)`` for a batch."""
        return () if self.lanes is None else (self.lanes,)
