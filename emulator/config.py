"""Emulator configuration: run-time overrides of the program's machine.

The cycle model's constants (isa/SPEC.md §6) are fields of the program's ``.machine`` header
(``eiec.isa.program.Machine``); of them, the FIFO depth, the clock and the DRAM's bandwidth and
latency are emulate-time choices that a run may override without recompiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from eiec.emulator.energy import EnergyModel, EventEnergy
from eiec.errors import EmulatorError
from eiec.isa.program import Machine

Arith = Literal["fixed16", "float32"]
ARITH_MODES: tuple[str, ...] = ("fixed16", "float32")
#: The activity count of bits moved from DRAM, priced at the machine's ``dram_pj_per_bit``.
DRAM_EVENT = "dram_bit"


@dataclass(frozen=True)
class EmulatorConfig:
    """How to run a program. ``None`` takes the value from the program's ``.machine`` header."""

    fifo_depth: int | None = None
    clock_mhz: float | None = None
    dram_gbps: float | None = None
    dram_latency_ns: float | None = None
    arith: Arith = "fixed16"
    energy: EnergyModel = field(default_factory=EnergyModel.default)

    def __post_init__(self) -> None:
        if self.fifo_depth is not None and self.fifo_depth < 1:
            raise EmulatorError(
                f"FIFO depth {self.fifo_depth} is not positive",
                where="emulator configuration",
                fix="give a depth of at least 1 (the paper's chip has 8)",
            )
        if self.clock_mhz is not None and not self.clock_mhz > 0:
            raise EmulatorError(
                f"clock {self.clock_mhz} MHz is not positive",
                where="emulator configuration",
                fix="give a clock above 0 MHz (the paper's chip runs at 800)",
            )
        if self.dram_gbps is not None and not self.dram_gbps > 0:
            raise EmulatorError(
                f"DRAM bandwidth {self.dram_gbps} GB/s is not positive",
                where="emulator configuration",
                fix="give a bandwidth above 0 GB/s (inf: unbounded)",
            )
        if self.dram_latency_ns is not None and not 0 <= self.dram_latency_ns < math.inf:
            raise EmulatorError(
                f"DRAM latency {self.dram_latency_ns} ns is not a finite number >= 0",
                where="emulator configuration",
                fix="give a latency of 0 ns or more",
            )
        if self.arith not in ARITH_MODES:
            raise EmulatorError(
                f"unknown arithmetic mode {self.arith!r}",
                where="emulator configuration",
                fix="use 'fixed16' (the machine's) or 'float32' (debugging)",
            )

    def resolve(self, machine: Machine) -> ResolvedConfig:
        """The effective machine (FIFO depth and clock overridden) of a program's header."""
        if self.fifo_depth is not None:
            machine = replace(machine, fifo_depth=self.fifo_depth)
        if self.clock_mhz is not None:
            machine = replace(machine, clock_mhz=self.clock_mhz)
        if self.dram_gbps is not None:
            machine = replace(machine, dram_gbps=self.dram_gbps)
        if self.dram_latency_ns is not None:
            machine = replace(machine, dram_latency_ns=self.dram_latency_ns)
        # Streamed weights cost the machine's DRAM energy per bit (isa/SPEC.md §6).
        energy = self.energy.with_event(DRAM_EVENT, EventEnergy(machine.dram_pj_per_bit, "dram"))
        return ResolvedConfig(machine=machine, arith=self.arith, energy=energy)


@dataclass(frozen=True)
class ResolvedConfig:
    """The configuration an emulator actually runs with: the machine as run (no ``None``)."""

    machine: Machine
    arith: Arith
    energy: EnergyModel

    @property
    def pes(self) -> int:
        return self.machine.pes

    @property
    def fifo_depth(self) -> int:
        return self.machine.fifo_depth

    @property
    def clock_mhz(self) -> float:
        return self.machine.clock_mhz

    @property
    def acc_bits(self) -> int:
        return self.machine.acc_bits
