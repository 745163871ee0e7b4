"""``--trace``: an observer printing each executed instruction with its cycle span."""

from __future__ import annotations

import sys
from typing import TextIO

from eiec.emulator.events import Event, MacEvent, Timing
from eiec.isa.printer import format_instruction


class Tracer:
    """Prints ``pc  [start, end)  cycles  text  details`` for every instruction; with
    ``samples`` (a batch), a line ``; sample N`` before each sample's instructions."""

    def __init__(self, file: TextIO | None = None, samples: bool = False) -> None:
        self.file = file
        self.samples = samples
        self.sample = 0

    def reset(self) -> None:
        """A new run: its sample's marker line, with ``samples``."""
        if self.samples:
            print(f"; sample {self.sample}", file=self.file or sys.stdout)
            self.sample += 1

    def observe(self, event: Event, timing: Timing) -> None:
        """Print one line."""
        details = []
        if isinstance(event, MacEvent) and timing.mac is not None:
            mac = timing.mac
            details.append(
                f"step {event.step}: {mac.broadcasts}/{event.stream_length} broadcast, "
                f"window {mac.window}, stalled {mac.stall_cycles}, "
                f"useful {int(mac.busy.sum())}, padding {int(mac.padding.sum())}"
            )
        if event.saturations:
            details.append(f"{event.saturations} saturated")
        line = (
            f"{event.pc:5d}  [{timing.start:9d}, {timing.end:9d})  {timing.cycles:8d}  "
            f"{format_instruction(event.instruction)}"
        )
        if details:
            line += "  ; " + "; ".join(details)
        print(line, file=self.file or sys.stdout)
