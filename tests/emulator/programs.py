"""The machine of the emulator tests' programs (built by ``eiec.isa.builder.fc_program``)."""

from __future__ import annotations

from eiec.isa.program import Machine

#: Memories large enough for any test layer (the emulator does not check capacity).
BIG = 1 << 24


def big_machine(pes: int, fifo_depth: int = 8) -> Machine:
    """``pes`` PEs with memories and 32-bit pointers large enough for any test layer."""
    return Machine(
        pes=pes, fifo_depth=fifo_depth, spmat_sram=BIG, ptr_sram=BIG, act_sram=BIG, ptr_bits=32
    )
