"""Machines as data: presets, .toml machine files, field checks (full messages)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eiec.cli import main
from eiec.errors import MachineError
from eiec.isa.machines import PRESETS, load_machine, machine_from
from eiec.isa.program import Machine


def test_presets_are_the_papers_machines() -> None:
    assert load_machine("eie-45nm") == Machine()
    chip = load_machine("eie-28nm")
    assert (chip.pes, chip.clock_mhz, chip.spmat_sram, chip.fifo_depth) == (256, 1200.0, 131072, 8)


def test_a_toml_file_holds_any_fields_over_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('preset = "eie-28nm"\nptr_bits = 32\nalu_stages = 6\nclock_mhz = 1000\n')
    machine = load_machine(path)
    assert (machine.pes, machine.ptr_bits, machine.alu_stages) == (256, 32, 6)
    assert machine.clock_mhz == 1000.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ptr_bits = 10", "machine: ptr_bits must be a multiple of 4 in 8..32, got 10"),
        ("pes = 0", "machine: pes must be in 1..4096, got 0"),
        ("pes = 100000", "machine: pes must be in 1..4096, got 100000"),
        (
            "pes = 99999999999999999999",
            "machine: pes must be in 1..4096, got 99999999999999999999",
        ),
        ("pes = 1e400", "machine field pes = inf is not an integer"),
        ("clock_mhz = 1e-300", "machine: clock_mhz must be in 0.001..100000, got 1e-300"),
        ("clock_mhz = 1e999", "machine: clock_mhz must be in 0.001..100000, got inf"),
        ("clock_mhz = nan", "machine: clock_mhz must be in 0.001..100000, got nan"),
        (
            'preset = ["eie-45nm"]',
            "unknown preset ['eie-45nm'] (use one of eie-45nm, eie-sim, eie-28nm)",
        ),
        ("queue_latency = -1", "machine: queue_latency must be in 1..1024, got -1"),
        ("clock_mhz = -5.0", "machine: clock_mhz must be in 0.001..100000, got -5.0"),
        ("pes = 2.5", "machine field pes = 2.5 is not an integer"),
        ('pes = "many"', "machine field pes = 'many' is not an integer"),
        ("alu_stage = 3", "unknown machine field 'alu_stage' (did you mean 'alu_stages'?)"),
    ],
)
def test_invalid_fields_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text + "\n")
    with pytest.raises(MachineError) as error:
        load_machine(path)
    fix = (
        ""
        if "did you mean" in message or "use one of" in message
        else " (see eiec machines --fields)"
    )
    assert str(error.value) == f"{path}: {message}{fix}"


def test_unknown_machine_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(MachineError) as error:
        load_machine("eie-7nm")
    assert str(error.value) == (
        "unknown machine 'eie-7nm' (give a preset (eie-45nm, eie-sim, eie-28nm) or a .toml "
        "machine file)"
    )
    with pytest.raises(MachineError) as error:
        load_machine(tmp_path / "none.toml")
    assert str(error.value) == f"{tmp_path / 'none.toml'}: no such machine file (check the path)"
    (tmp_path / "bad.toml").write_text("pes = = 3\n")
    with pytest.raises(MachineError, match=r"not a readable TOML file: Invalid value"):
        load_machine(tmp_path / "bad.toml")


def test_machine_from_keeps_the_base() -> None:
    assert machine_from({"fifo_depth": 2}, PRESETS["eie-28nm"].machine).pes == 256


def test_eiec_machines_lists_presets_and_fields(capsys: pytest.CaptureFixture) -> None:
    assert main(["machines", "--json"]) == 0
    presets = json.loads(capsys.readouterr().out)
    assert list(presets) == ["eie-45nm", "eie-sim", "eie-28nm"]
    assert presets["eie-28nm"]["machine"]["pes"] == 256
    assert main(["machines", "--fields", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["field"] for row in rows] == list(Machine.FIELDS)
    assert main(["machines"]) == 0
    assert "eie-28nm" in capsys.readouterr().out


def test_dram_fields_are_reals_written_only_when_not_default() -> None:
    from eiec.isa import format_program, parse
    from eiec.isa.program import Halt, Program

    plain = format_program(Program(Machine(), text=[Halt()]))
    assert "dram" not in plain
    machine = Machine(dram_gbps=math.inf, dram_latency_ns=12.5, dram_pj_per_bit=2.0)
    text = format_program(Program(machine, text=[Halt()]))
    assert "dram_gbps=inf dram_latency_ns=12.5 dram_pj_per_bit=2" in text
    assert parse(text).machine == machine
    assert machine_from({"dram_gbps": 51.2}).dram_gbps == 51.2
    with pytest.raises(MachineError, match=r"dram_gbps must be in 0\.001\.\.inf, got 0\.0"):
        machine_from({"dram_gbps": 0})
    with pytest.raises(MachineError, match=r"dram_latency_ns must be in 0\.\.1e\+09, got inf"):
        machine_from({"dram_latency_ns": math.inf})
