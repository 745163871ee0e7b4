"""The power and area model (emulator/energy_45nm.json): its derivation from the paper's Tables
I-II, area scaling, processes, and the paper's chip reproduced on its workload."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from eiec.commands.options import PROCESSES
from eiec.emulator import Emulator, EmulatorConfig, EnergyModel
from eiec.emulator.energy import DEFAULT_TABLE, EventEnergy
from eiec.errors import EmulatorError
from eiec.isa import fixed
from eiec.isa.builder import fc_program
from eiec.isa.machines import PRESETS
from eiec.isa.program import Machine

TABLE = json.loads(DEFAULT_TABLE.read_text())
REPO = Path(__file__).resolve().parents[2]
FIXTURE = next(
    (
        path
        for path in (base / "shared/fixtures/alexnet_fc8_eie.npz" for base in REPO.parents[:2])
        if path.exists()
    ),
    None,
)
#: Table II: one PE's power by module (mW) and by component (share of 9.157 mW).
MODULES = {
    "spmat_sram": 0.5411,
    "ptr_sram": 0.1973,
    "arithmetic": 0.1268,
    "activation": 0.1225,
    "activation_queue": 0.0123,
}
COMPONENTS = {"memory": 0.5915, "clock": 0.2046, "register": 0.1120, "combinational": 0.0918}
SIM = PRESETS["eie-sim"].machine


def padding(rows: int, density: float) -> float:
    """Expected padding entries of a column of ``rows`` local rows, each non-zero with
    probability ``density`` (an entry after g zeros needs floor(g / 16))."""
    zero = 1.0 - density
    return sum(density * zero ** (16 * k) for i in range(rows) for k in range(1, i // 16 + 1))


def column_counts(rows: int, density: float) -> np.ndarray:
    """The distribution of a PE's stored entries (padding included) in one column of ``rows``
    local rows, each non-zero with probability ``density``: P[n]."""
    states = {(0, 0, 0): 1.0}  # (zeros since the last entry mod 16, pending padding, n) -> P
    for _ in range(rows):
        after: dict[tuple[int, int, int], float] = {}
        for (run, pending, n), p in states.items():
            entry = (0, 0, n + pending + 1)  # a non-zero: its padding entries, then itself
            after[entry] = after.get(entry, 0.0) + p * density
            zero = (0, pending + 1, n) if run == 15 else (run + 1, pending, n)
            after[zero] = after.get(zero, 0.0) + p * (1.0 - density)
        states = after
    counts = np.zeros(max(n for _, _, n in states) + 1)
    for (_, _, n), p in states.items():
        counts[n] += p
    return counts


def reads_per_column(counts: np.ndarray, acts: float) -> float:
    """Expected 64-bit reads of a broadcast column: its words, (n + 7) / 8 for n >= 1 entries
    starting anywhere in a word, less the probability that its first word is the one still
    held, the last of the previous broadcast column with entries: (7 - G) / 8 when G <= 6
    entries lie between them. G sums, walking back, the entries of each column not
    broadcast (1 - acts); a broadcast empty column adds none; a broadcast column with entries
    ends the walk (acts * (1 - P[0]))."""
    n = np.arange(counts.size)
    empty = counts[0]
    words = (counts @ n + 7 * (1 - empty)) / 8
    step = np.zeros(7)  # one column of the walk: continue with g more entries
    step[: min(7, counts.size)] = (1 - acts) * counts[:7]
    step[0] += acts * empty
    between = np.zeros(7)  # P(G = g) / P(end), by g = sum_j step[j] * between[g - j]
    between[0] = 1 / (1 - step[0])
    for g in range(1, 7):
        between[g] = sum(step[j] * between[g - j] for j in range(1, g + 1)) / (1 - step[0])
    shared = acts * (1 - empty) * sum(between[g] * (7 - g) / 8 for g in range(7))
    return words - (1 - empty) * shared


def test_reference_workload_follows_table_iii() -> None:
    # The AlexNet FC layers (Table III) at one stored entry per PE per cycle, on 64 PEs.
    stored = broadcasts = spmat = reads = writes = 0.0
    for inputs, outputs, weights, acts in ((9216, 4096, 0.09, 0.351), (4096, 4096, 0.09, 0.353),
                                           (4096, 1000, 0.25, 0.375)):  # fmt: skip
        full, extra = divmod(outputs, 64)  # PEs with full + 1 rows, and with full
        per_column = column = 0.0
        for rows, pes in ((full + 1, extra), (full, 64 - extra)):
            counts = column_counts(rows, weights)
            assert counts @ np.arange(counts.size) == pytest.approx(
                weights * rows + padding(rows, weights)
            )
            per_column += pes / 64 * (counts @ np.arange(counts.size))
            column += pes / 64 * reads_per_column(counts, acts)
        sent = acts * inputs
        stored += per_column * sent
        broadcasts += sent
        spmat += sent * column
        reads += inputs / 64
        writes += outputs / 64
    rates = TABLE["reference"]["events_per_entry"]
    assert rates["ptr_read"] == pytest.approx(broadcasts / stored, rel=1e-4)
    assert rates["fifo_access"] == rates["ptr_read"]
    assert rates["spmat_read"] == pytest.approx(spmat / stored, rel=1e-4)
    assert rates["act_read"] == pytest.approx(reads / stored, rel=1e-4)
    assert rates["act_write"] == pytest.approx(writes / stored, rel=1e-4)


def test_random_layers_read_the_sparse_matrix_as_the_reference_predicts() -> None:
    # The closed form of the reference workload against the cycle model's count on a random
    # Alex-8-shaped layer (4096 x 1000, 25% weights, 37.5% activations).
    rng = np.random.default_rng(8)
    codes = np.where(rng.random((1000, 4096)) < 0.25, 1, 0).astype(np.uint8)
    x = np.where(rng.random(4096) < 0.375, 1.0, 0.0)
    book = np.array([0, *range(1, 16)], dtype=np.int16)
    program = fc_program([codes], [book], [12], [8, 8], machine=SIM, relu=False)
    activity = Emulator(program).run({"x": x.reshape(1, -1)}).stats.activity
    predicted = sum(
        pes / 64 * reads_per_column(column_counts(rows, 0.25), 0.375)
        for rows, pes in ((16, 40), (15, 24))
    )
    assert activity["spmat_read"] / activity["ptr_read"] == pytest.approx(predicted, rel=0.02)
    words = sum(
        pes / 64 * (0.25 * rows + 7 * (1 - 0.75**rows)) / 8 for rows, pes in ((16, 40), (15, 24))
    )
    assert activity["spmat_read"] / activity["ptr_read"] < 0.75 * words  # the word held saves


def test_table_follows_its_derivation() -> None:
    ref = TABLE["reference"]
    power, parts, rates = ref["module_power_mw"], ref["component_power_mw"], ref["events_per_entry"]
    total = ref["pe_power_mw"]
    assert sum(parts.values()) == pytest.approx(total, abs=1e-3)
    assert sum(power.values()) == pytest.approx(total, abs=2e-3)
    ghz = ref["clock_mhz"] / 1e3
    events, per_cycle = TABLE["events"], TABLE["per_cycle"]
    # Memory: SpmatRead is all SRAM (Table II's areas); its reads at Table I's rule, the rest
    # its static power; the activation SRAM at Table I's rule; the pointer SRAM the remainder.
    assert events["spmat_read"]["pj"] == pytest.approx(5 * 64 / 32 * (128 / 32) ** 0.5)
    spmat_reads = events["spmat_read"]["pj"] * rates["spmat_read"] * ghz
    static = per_cycle["spmat_sram_static"]
    assert (static["unit"], static["component"]) == ("spmat_sram", "memory")
    assert static["pj"] * ghz == pytest.approx(power["spmat_sram"] - spmat_reads, rel=1e-4)
    assert events["act_read"]["pj"] == events["act_write"]["pj"] == 5 * 16 / 32 * (2 / 32) ** 0.5
    act_memory = events["act_read"]["pj"] * (rates["act_read"] + rates["act_write"]) * ghz
    pointer = {part["component"]: part["pj"] for part in events["ptr_read"]["parts"]}
    ptr_memory = parts["memory"] - power["spmat_sram"] - act_memory
    assert pointer["memory"] == pytest.approx(ptr_memory / ghz / rates["ptr_read"], rel=1e-4)
    # Cross-check, not an input: Table I's rule for two 16-bit reads of a 16 KB bank.
    assert pointer["memory"] == pytest.approx(2 * 5 * 16 / 32 * (16 / 32) ** 0.5, rel=0.02)
    # Logic: each module's rest in the clock / register / combinational rows' proportions,
    # clock and registers per cycle, combinational per event at the reference rate.
    logic = {
        "ptr_sram": power["ptr_sram"] - ptr_memory,
        "arithmetic": power["arithmetic"],
        "activation": power["activation"] - act_memory,
        "activation_queue": power["activation_queue"],
    }
    rows = parts["clock"] + parts["register"] + parts["combinational"]
    assert sum(logic.values()) == pytest.approx(rows, abs=2e-3)
    for unit, mw in logic.items():
        for component in ("clock", "register"):
            entry = per_cycle[f"{unit}_{component}"]
            assert entry["pj"] == pytest.approx(mw * parts[component] / rows / ghz, rel=1e-4)
    combinational = {unit: mw * parts["combinational"] / rows / ghz for unit, mw in logic.items()}
    assert pointer["combinational"] == pytest.approx(
        combinational["ptr_sram"] / rates["ptr_read"], rel=1e-4
    )
    assert events["fifo_access"]["pj"] == pytest.approx(
        combinational["activation_queue"] / rates["fifo_access"], rel=1e-4
    )
    # Arithmetic: one lookup, multiply and add per entry, shared 0.5 : 0.775 : 0.15 (Table I).
    arith = combinational["arithmetic"] / 1.425
    accumulate = {part["unit"]: part["pj"] for part in events["accumulate"]["parts"]}
    assert events["codebook_lookup"]["pj"] == pytest.approx(0.5 * arith, rel=1e-4)
    assert events["multiply"]["pj"] == pytest.approx(0.775 * arith, rel=1e-4)
    assert accumulate["arithmetic"] == pytest.approx(0.15 * arith, rel=1e-4)
    assert accumulate["activation"] == pytest.approx(combinational["activation"], rel=1e-4)


def test_the_reference_workload_reproduces_table_ii() -> None:
    # One PE at the reference rates for 10**6 cycles: every module's and every component's
    # power as in Table II.
    ref = TABLE["reference"]
    cycles = 10**6
    rates = ref["events_per_entry"]
    activity = {
        name: round(rates[name] * cycles)
        for name in ("ptr_read", "fifo_access", "spmat_read", "act_read", "act_write")
    }
    activity |= dict.fromkeys(("codebook_lookup", "multiply", "accumulate"), cycles)
    priced = EnergyModel.default().price(activity, Machine(), cycles)
    mw = ref["clock_mhz"] / 1e3 / cycles  # pJ over the run -> mW
    for unit, power in ref["module_power_mw"].items():
        got = sum(pj for (u, _), pj in priced.items() if u == unit) * mw
        assert got == pytest.approx(power, rel=2e-3), unit
    for component, power in ref["component_power_mw"].items():
        got = sum(pj for (_, c), pj in priced.items() if c == component) * mw
        assert got == pytest.approx(power, rel=2e-3), component


def test_area_of_the_paper_chips_and_its_scaling() -> None:
    model = EnergyModel.default()
    chip = model.chip_area(Machine())
    assert chip.pe_mm2 == pytest.approx(0.638024, abs=2e-6)  # Table II
    assert chip.chip_mm2 == pytest.approx(40.8, rel=2e-3)  # Table V
    # Twice the sparse-matrix SRAM: its 469,412 um^2 again, with 3.9% filler cells.
    bigger = model.chip_area(replace(Machine(), spmat_sram=256 * 1024))
    assert bigger.pe_mm2 - chip.pe_mm2 == pytest.approx(0.469412 * 1.039021, rel=1e-5)
    half_ptr = model.chip_area(replace(Machine(), ptr_sram=16 * 1024))
    assert chip.pe_mm2 - half_ptr.pe_mm2 == pytest.approx(0.117353 / 2 * 1.039021, rel=1e-4)
    assert model.chip_area(replace(Machine(), pes=128)).chip_mm2 == pytest.approx(2 * chip.chip_mm2)
    # Table V's 28 nm chip: 256 PEs, 63.8 mm^2.
    preset = PRESETS["eie-28nm"]
    area28 = EnergyModel.default(preset.process).chip_area(preset.machine)
    assert area28.chip_mm2 == pytest.approx(63.8, rel=2e-3)


def test_processes_scale_energy() -> None:
    assert set(PROCESSES) == set(TABLE["processes"])
    base, small = EnergyModel.default(), EnergyModel.default("28nm")
    activity = {"multiply": 10, "spmat_read": 3}
    at45 = sum(base.price(activity, Machine(), 100).values())
    at28 = sum(small.price(activity, Machine(), 100).values())
    assert at28 / at45 == pytest.approx(2.36 / 256 / 1200 / (0.59 / 64 / 800), rel=1e-4)
    with pytest.raises(EmulatorError, match="has no process '7nm'"):
        base.at_process("7nm")


def test_memories_scale_access_energy() -> None:
    model = EnergyModel.default()
    one = model.price({"spmat_read": 1, "ptr_read": 1}, Machine())
    four = model.price(
        {"spmat_read": 1, "ptr_read": 1}, replace(Machine(), spmat_sram=512 * 1024, ptr_bits=32)
    )
    assert four["spmat_sram", "memory"] == pytest.approx(2 * one["spmat_sram", "memory"])
    assert four["ptr_sram", "memory"] == pytest.approx(2 * one["ptr_sram", "memory"])


def test_a_table_without_components_charges_the_unit(tmp_path) -> None:
    # A table entry without a component (an off-chip memory, say) is its own component.
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"events": {"dram": {"pj": 640.0, "unit": "dram"}}}))
    model = EnergyModel.from_json(table)
    assert model.price({"dram": 2}) == {("dram", "dram"): 1280.0}
    assert model.chip_area(Machine()).chip_mm2 == 0.0
    # One more event on the default table keeps its per-cycle energies and areas.
    default = EnergyModel.default()
    more = default.with_event("dram_bit", EventEnergy(20.0, "dram"))
    assert more.price({"dram_bit": 3}, Machine(), 10) == {
        **default.price({}, Machine(), 10),
        ("dram", "dram"): 60.0,
    }
    assert more.chip_area(Machine()) == default.chip_area(Machine())
    assert "dram" in more.units and "dram" in more.components
    with pytest.raises(EmulatorError, match="malformed energy table"):
        table.write_text(json.dumps({"events": {"x": {"parts": []}}}))
        EnergyModel.from_json(table)


def _shares(parts: dict[str, float], total: float) -> dict[str, float]:
    return {name: pj / total for name, pj in parts.items() if pj}


def _power_matches(stats, modules_points: float, components_points: dict[str, float]) -> None:
    """Average power within 10% of the paper's 586-590 mW, the splits within the points."""
    assert 0.9 * 586 <= stats.power_mw <= 1.1 * 590
    modules = _shares(stats.energy_breakdown_pj, stats.energy_pj)
    assert set(modules) == set(MODULES)
    for unit, share in MODULES.items():
        assert abs(modules[unit] - share) <= modules_points, (unit, modules[unit])
    components = _shares(stats.energy_components_pj, stats.energy_pj)
    assert set(components) == set(COMPONENTS)
    for component, share in COMPONENTS.items():
        assert abs(components[component] - share) <= components_points[component], (
            component,
            components[component],
        )


@pytest.mark.fixture
@pytest.mark.skipif(FIXTURE is None, reason="needs ../shared/fixtures/alexnet_fc8_eie.npz")
def test_alexnet_fc8_on_the_authors_simulator_and_the_chip() -> None:
    data = np.load(FIXTURE)
    codes = np.concatenate([data["codes"], data["bias_codes"][:, None]], axis=1)
    book, a = data["codebook"].astype(np.float64), data["activations"].astype(np.float64)
    book_frac = fixed.frac_for_range(np.abs(book).max())
    words, _ = fixed.quantize(book, book_frac)
    x_frac = fixed.frac_for_range(a.max())

    def run(machine: Machine):
        program = fc_program(
            [codes], [words], [book_frac], [x_frac, 8], machine=machine, bias=True, relu=False
        )
        return Emulator(program).run({"x": a.reshape(1, -1)}).stats

    stats = run(SIM)
    # The authors' simulator at buffersize 8: 7926 MAC cycles (Table IV: 9.9 us).
    assert stats.layers[0].cycles == 7926
    assert stats.time_us == pytest.approx(9.9, abs=0.05)
    assert stats.pe_area_mm2 == pytest.approx(0.638, abs=1e-3)
    # Table II: the modules and the components within 3 points.
    _power_matches(stats, 0.03, dict.fromkeys(COMPONENTS, 0.03))
    assert stats.gops == pytest.approx(2 * stats.useful_macs / stats.time_us / 1e3)
    # eie-45nm (the paper's text: queue of 8, detector 1 cycle, 4 ALU stages) is faster.
    assert run(Machine()).layers[0].cycles == 7894
    # The authors' simulator at 1-256 PEs, buffersize 8 (its MAC cycles, measured outside the
    # project with its end-of-layer test waiting for every queue to drain): eie-sim's group
    # scan gives its 1-2 PE figures (a[0] = a[1] = 0: two empty groups of one word, one of
    # two), which are 2 and 1 cycles above the same machine without it.
    for pes, cycles in ((1, 461330), (2, 231613), (4, 116654), (16, 30001), (256, 2689)):
        sim = replace(SIM, pes=pes, spmat_sram=1 << 24, ptr_sram=1 << 20)
        assert run(sim).layers[0].cycles == cycles, pes
        if pes <= 2:
            plain = run(replace(sim, lnzd_group_scan=0)).layers[0].cycles
            assert plain == cycles - (3 - pes)


def _synthetic_layer(inputs: int, outputs: int, weights: float, acts: float):
    rng = np.random.default_rng(7)
    mask = rng.random((outputs, inputs)) < weights
    codes = np.where(mask, rng.integers(1, 16, size=mask.shape), 0).astype(np.uint8)
    x = np.where(rng.random(inputs) < acts, rng.random(inputs) * 4 + 1 / 256, 0.0)
    book = np.array([0, *np.linspace(-3000, 3000, 15).astype(int)], dtype=np.int16)
    program = fc_program([codes], [book], [15], [10, 8], machine=SIM, relu=True)
    return Emulator(program, EmulatorConfig()).run({"x": x.reshape(1, -1)}).stats


def test_alex7_shaped_layer_at_the_paper_densities() -> None:
    stats = _synthetic_layer(4096, 4096, 0.09, 0.353)  # Table III's Alex-7
    _power_matches(stats, 0.03, dict.fromkeys(COMPONENTS, 0.03))
    assert sum(stats.energy_components_pj.values()) == pytest.approx(stats.energy_pj)
