"""The Python API: step/run, observers, config overrides, batches, errors (full messages)."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest

from eiec.emulator import (
    Emulator,
    EmulatorConfig,
    EnergyModel,
    Tracer,
    run_batch,
)
from eiec.emulator.energy import DEFAULT_TABLE
from eiec.errors import EmulatorError, InputError
from eiec.isa.builder import fc_program
from eiec.isa.program import LoadCodebook, SparseColumnMac

from .programs import big_machine

CODES = np.array([[1, 0, 2], [0, 3, 0], [2, 2, 2], [0, 0, 1]], dtype=np.uint8)
BOOK = np.array([0, 256, -128, 64], dtype=np.int16)
X = np.array([[1.0, 2.0, -0.5]])


def program(fifo_depth: int = 8, machine=None, **kwargs):
    machine = machine or big_machine(2, fifo_depth)
    return fc_program([CODES], [BOOK], [8], [8, 8], machine=machine, **kwargs)


def test_step_by_step_then_none_after_halt() -> None:
    emulator = Emulator(program())
    emulator.reset({"x": X})
    executed = []
    while (instruction := emulator.step()) is not None:
        executed.append(instruction.MNEMONIC)
    assert executed == [
        "load-codebook",
        "broadcast-activation",
        "sparse-column-mac",
        "relu-writeback",
        "halt",
    ]
    assert emulator.step() is None
    assert emulator.result().outputs["y"].tolist() == [[1.25, 0.5, 0.0, 0.0]]


def test_runs_are_independent_and_deterministic() -> None:
    emulator = Emulator(program())
    first = emulator.run({"x": X})
    second = emulator.run({"x": X})
    assert json.dumps(first.stats.to_json()) == json.dumps(second.stats.to_json())


def test_config_overrides_header_and_header_latencies_count() -> None:
    base = Emulator(program(fifo_depth=8)).run({"x": X}).stats
    # The latencies are machine fields (the .machine header): alu_stages 4 -> 10 drains 6
    # cycles more, 2 cycles per codebook entry (4 entries) 4 more, no LNZD latency 1 fewer.
    slow = replace(big_machine(2, 8), lnzd_latency=0, alu_stages=10, codebook_cycles=2)
    stats = Emulator(program(machine=slow), EmulatorConfig(clock_mhz=100.0)).run({"x": X}).stats
    assert stats.cycles == base.cycles - 1 + 6 + 4
    assert stats.time_us == stats.cycles / 100.0
    assert Emulator(program(), EmulatorConfig(fifo_depth=1)).config.fifo_depth == 1


def test_energy_is_priced_per_event(tmp_path) -> None:
    table = tmp_path / "e.json"
    table.write_text(json.dumps({"events": {"multiply": {"pj": 2.0, "unit": "alu"}}}))
    config = EmulatorConfig(energy=EnergyModel.from_json(table))
    with pytest.raises(EmulatorError) as error:
        Emulator(program(), config).run({"x": X})
    assert str(error.value) == (
        "energy model: the energy table 'e' has no entry for event 'codebook_write' (add the "
        "event to the table (see emulator/energy_45nm.json))"
    )
    stats = Emulator(program()).run({"x": X}).stats
    # By hand from the table: each event's parts, memories scaled to the machine's (1 << 24 B
    # SRAMs, 32-bit pointers), plus the per-cycle energy of both PEs in every cycle.
    data = json.loads(DEFAULT_TABLE.read_text())
    machine = big_machine(2)

    def scaled(part: dict) -> float:
        factor = 1.0
        for scale in part.get("scale", []):
            factor *= (getattr(machine, scale["field"]) / scale["reference"]) ** scale["exponent"]
        return part["pj"] * factor

    expected = 0.0
    for name, count in stats.activity.items():
        for part in data["events"][name].get("parts", [data["events"][name]]):
            expected += scaled(part) * count
    expected += sum(scaled(p) for p in data["per_cycle"].values()) * stats.cycles * 2
    assert stats.energy_pj == pytest.approx(expected)
    assert sum(stats.energy_breakdown_pj.values()) == pytest.approx(stats.energy_pj)
    assert sum(stats.energy_components_pj.values()) == pytest.approx(stats.energy_pj)
    # 7 real entries of 3 broadcast columns, no padding: 7 multiplies.
    assert stats.activity["multiply"] == 7


def test_tracer_prints_every_instruction() -> None:
    out = io.StringIO()
    Emulator(program(), observers=[Tracer(out)]).run({"x": X})
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[0] == "    0  [        0,         4)         4  load-codebook fc0"
    assert lines[2].startswith("    2  [        4,        15)        11  sparse-column-mac fc0")


def test_run_batch_stacks_and_sums() -> None:
    batch = run_batch(program(), {"x": np.concatenate([X, -X])}, progress=False)
    assert batch.outputs["y"].shape == (2, 4)
    assert batch.stats.samples == 2
    assert batch.stats.cycles == sum(s.cycles for s in batch.runs)


def test_input_errors_full_messages() -> None:
    emulator = Emulator(program())
    with pytest.raises(InputError) as error:
        emulator.run({})
    assert str(error.value) == "<program>: missing input 'x' (give every input: x)"
    with pytest.raises(InputError) as error:
        emulator.run({"x": X, "q": X})
    assert str(error.value) == "<program>: unknown input 'q' (the program's inputs are: x)"
    with pytest.raises(InputError) as error:
        emulator.run({"x": np.zeros(3)})
    assert str(error.value) == (
        "<program>: input 'x' has shape (3,), expected (1, 3) (reshape the array to the "
        "port's shape; a batch of B samples along axis 0 (size B instead of 1) is also "
        "accepted)"
    )
    with pytest.raises(InputError) as error:
        emulator.run({"x": np.array([[0.0, np.nan, 1.0]])})
    assert str(error.value) == (
        "<program>: input 'x' has nan at index (0, 1); inputs must be finite (1 value(s) are "
        "NaN or Inf) (replace NaN/Inf before emulating)"
    )
    with pytest.raises(InputError) as error:
        run_batch(program(), {"x": np.zeros((2, 4))})
    assert str(error.value).startswith("<program>: input 'x' has shape (2, 4), expected (1, 3)")


def test_machine_errors_full_messages() -> None:
    with pytest.raises(EmulatorError) as error:
        Emulator(program()).step()
    assert str(error.value) == (
        "<program>: the emulator has no inputs yet (call reset(inputs) (or run(inputs)) "
        "before step())"
    )
    p = program()
    p.text = [p.text[1], SparseColumnMac("fc0"), *p.text[3:]]
    with pytest.raises(EmulatorError) as error:
        Emulator(p).run({"x": X})
    assert str(error.value) == (
        "<program>: instruction 1 (sparse-column-mac): the codebook registers hold nothing, "
        "not layer fc0 (run 'load-codebook fc0' before the MAC)"
    )
    p = program()
    p.text = [LoadCodebook("fc0"), SparseColumnMac("fc0"), *p.text[3:]]
    with pytest.raises(EmulatorError) as error:
        Emulator(p).run({"x": X})
    assert str(error.value) == (
        "<program>: instruction 1 (sparse-column-mac): layer fc0 has 3 columns but there is "
        "no stream (broadcast exactly one word per column (bias included) before the MAC)"
    )
    with pytest.raises(EmulatorError) as error:
        EmulatorConfig(fifo_depth=0)
    assert str(error.value) == (
        "emulator configuration: FIFO depth 0 is not positive (give a depth of at least 1 "
        "(the paper's chip has 8))"
    )


def test_stats_json_is_plain() -> None:
    stats = Emulator(program()).run({"x": X}).stats
    data = json.loads(json.dumps(stats.to_json()))
    assert data["layer_totals"][0]["layer"] == "fc0"
    assert data["layers"][0]["step"] == 0
    assert data["alu_utilization"] == pytest.approx(7 / (2 * data["cycles"]))


def test_repeated_layer_steps_are_numbered() -> None:
    p = program()
    p.text = p.text[:4] * 3 + p.text[4:]
    stats = Emulator(p).run({"x": X}).stats
    assert [(mac.layer, mac.step) for mac in stats.layers] == [("fc0", 0), ("fc0", 1), ("fc0", 2)]
    assert stats.layer_totals[0].macs == 3
    assert stats.layer_totals[0].cycles == 3 * stats.layers[0].cycles


def test_tracer_marks_each_sample_of_a_batch() -> None:
    out = io.StringIO()
    run_batch(program(), {"x": np.concatenate([X, -X])}, observers=[Tracer(out, samples=True)])
    lines = out.getvalue().splitlines()
    assert len(lines) == 12
    assert (lines[0], lines[6]) == ("; sample 0", "; sample 1")
    assert lines[1] == "    0  [        0,         4)         4  load-codebook fc0"
