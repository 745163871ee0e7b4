"""A BYOC call's profile record (eiec.byoc.offload.call_record) from its lockstep chunks' lane
totals: the figures of the lanes' own statistics, added one run after the other."""

from __future__ import annotations

import numpy as np
import pytest

from eiec.byoc.offload import call_record
from eiec.emulator import Emulator, Stats
from eiec.emulator import batch as batch_module
from eiec.emulator.batch import run_chunks
from eiec.isa.builder import fc_program, random_codes
from eiec.isa.program import Machine


def _expected(runs: list[Stats]) -> tuple:
    """The record's figures summed from each run's Stats, run after run."""
    layers: dict[str, list[float]] = {}
    for stats in runs:
        for totals in stats.layer_totals:
            entry = layers.setdefault(totals.layer, [0, 0, 0.0, 0.0])
            entry[0] += totals.macs
            entry[1] += totals.cycles
            entry[2] += totals.cycles / stats.clock_mhz
            entry[3] += totals.energy_pj
    return (
        len(runs),
        sum(stats.cycles for stats in runs),
        sum(stats.time_us for stats in runs),
        sum(stats.energy_pj for stats in runs),
        {name: tuple(entry) for name, entry in layers.items()},
    )


@pytest.mark.parametrize("lanes", [3, 128])
def test_a_call_record_adds_up_its_lanes_runs(monkeypatch: pytest.MonkeyPatch, lanes: int) -> None:
    monkeypatch.setattr(batch_module, "LANES", lanes)  # 3: several chunks
    rng = np.random.default_rng(3)
    codes = [random_codes(rng, 24, 40, 0.3), random_codes(rng, 10, 24, 0.5)]
    books = [np.array([0, *rng.integers(-3000, 3000, 15)], dtype=np.int16) for _ in codes]
    machine = Machine(pes=4, fifo_depth=2, spmat_sram=1 << 20, ptr_sram=1 << 20, act_sram=1 << 20)
    program = fc_program(codes, books, [12, 12], [8, 6, 8], machine=machine)
    (port,) = program.inputs
    x = rng.normal(0, 2, size=(8, *port.shape)) * (rng.random((8, *port.shape)) < 0.5)
    chunks = run_chunks(Emulator(program), {port.name: x.astype(np.float32)})
    record = call_record("f", [chunk.totals for chunk in chunks])
    runs = [run.stats for chunk in chunks for run in chunk.machine.lane_results()]
    got = (
        record.runs,
        record.cycles,
        record.time_us,
        record.energy_pj,
        {
            layer.layer: (layer.executions, layer.cycles, layer.time_us, layer.energy_pj)
            for layer in record.layers
        },
    )
    assert got == _expected(runs)
    assert len(chunks) == (3 if lanes == 3 else 1)
