"""The EIE emulator: functional semantics, cycle model, statistics and energy (isa/SPEC.md)."""

from eiec.emulator.batch import Batch, BatchResult, BatchStats, run_batch, split_batch
from eiec.emulator.config import EmulatorConfig
from eiec.emulator.cycles import CycleModel, schedule
from eiec.emulator.emulator import Emulator, RunResult
from eiec.emulator.energy import EnergyModel
from eiec.emulator.events import Observer, Timing
from eiec.emulator.image import Image, load_image
from eiec.emulator.state import MachineState
from eiec.emulator.stats import LayerTotals, MacStats, PeStats, Stats
from eiec.emulator.trace import Tracer

__all__ = [
    "Batch",
    "BatchResult",
    "BatchStats",
    "CycleModel",
    "Emulator",
    "EmulatorConfig",
    "EnergyModel",
    "Image",
    "LayerTotals",
    "MacStats",
    "MachineState",
    "Observer",
    "PeStats",
    "RunResult",
    "Stats",
    "Timing",
    "Tracer",
    "load_image",
    "run_batch",
    "schedule",
    "split_batch",
]
