"""Emulator configuration: the cycle-cost constants of isa/SPEC.md §6 and run-time overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from eiec.emulator.energy import EnergyModel
from eiec.errors import EmulatorError
from eiec.isa.program import Machine

Arith = Literal["fixed16", "float32"]
ARITH_MODES: tuple[str, ...] = ("fixed16", "float32")


@dataclass(frozen=True)
class CycleCosts:
    """Every cost constant of the cycle model (isa/SPEC.md §6), in cycles."""

    #: From the MAC's start to the first broadcast leaving the leading-non-zero detector.
    lnzd_latency: int = 1
    #: Pipeline drain of the arithmetic unit after a PE's last entry (about 4 stages).
    alu_latency: int = 4
    #: Cycles per codebook entry of ``load-codebook`` (one 16-bit entry broadcast per cycle).
    codebook_entry: int = 1
    #: Rows each PE writes back per cycle in ``writeback`` / ``relu-writeback``.
    writeback_rows_per_cycle: int = 1
    #: Pipeline latency of ``ew-add``, ``ew-mul`` and ``ew-copy`` (on top of one word per PE
    #: per cycle).
    ew_latency: int = 2
    #: Pipeline latency of ``ew-lut`` (table read, interpolation multiply, add).
    lut_latency: int = 3


@dataclass(frozen=True)
class EmulatorConfig:
    """How to run a program. ``None`` takes the value from the program's ``.machine`` header."""

    fifo_depth: int | None = None
    clock_mhz: float | None = None
    arith: Arith = "fixed16"
    costs: CycleCosts = field(default_factory=CycleCosts)
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
        if self.arith not in ARITH_MODES:
            raise EmulatorError(
                f"unknown arithmetic mode {self.arith!r}",
                where="emulator configuration",
                fix="use 'fixed16' (the machine's) or 'float32' (debugging)",
            )

    def resolve(self, machine: Machine) -> ResolvedConfig:
        """The effective FIFO depth and clock for a program's machine."""
        return ResolvedConfig(
            pes=machine.pes,
            fifo_depth=machine.fifo_depth if self.fifo_depth is None else self.fifo_depth,
            clock_mhz=machine.clock_mhz if self.clock_mhz is None else self.clock_mhz,
            acc_bits=machine.acc_bits,
            arith=self.arith,
            costs=self.costs,
            energy=self.energy,
        )


@dataclass(frozen=True)
class ResolvedConfig:
    """The configuration an emulator actually runs with (no ``None`` left)."""

    pes: int
    fifo_depth: int
    clock_mhz: float
    acc_bits: int
    arith: Arith
    costs: CycleCosts
    energy: EnergyModel
