"""Lockstep batches (eiec.emulator.run_batch): the batched pipeline recurrence equals the
per-sample one, and a lockstep batch gives exactly the outputs and statistics of running the
samples one after the other."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import programs

from eiec.emulator import Emulator, EmulatorConfig, run_batch, schedule, split_batch
from eiec.emulator import batch as batch_module
from eiec.emulator.batch import run_chunks, stack_samples
from eiec.emulator.cycles import _cycle_dtype, schedules
from eiec.emulator.ports import input_clamps
from eiec.errors import EmulatorError
from eiec.isa import load
from eiec.isa.builder import fc_program, random_codes
from eiec.isa.program import Program

from .programs import big_machine

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@st.composite
def batched_work(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A work table (C x N), per-sample item rows (K_max x B) and counts (some 0)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pes, rows, samples = draw(st.integers(1, 6)), draw(st.integers(1, 30)), draw(st.integers(1, 7))
    table = rng.integers(1, draw(st.integers(2, 40)), size=(rows, pes))
    counts = rng.integers(0, draw(st.integers(1, 40)), size=samples)
    items = rng.integers(0, rows, size=(int(counts.max()), samples))
    return table, items, counts


@given(batched_work(), st.integers(1, 12), st.integers(0, 3), st.integers(1, 3))
@settings(max_examples=150, deadline=None)
def test_batched_schedule_equals_each_samples(
    case: tuple[np.ndarray, np.ndarray, np.ndarray], depth: int, lnzd: int, queue: int
) -> None:
    table, items, counts = case
    plans = schedules(table, items, counts, depth, lnzd, queue)
    for sample, count in enumerate(counts):
        alone = schedule(table[items[:count, sample]], depth, lnzd, queue)
        assert plans.window[sample] == alone.window
        assert plans.stall[sample].tolist() == alone.stall.tolist()
        assert plans.stall_cycles[sample] == alone.stall_cycles


@pytest.mark.parametrize(
    ("largest", "dtype"), [(12, np.int16), (3000, np.int32), (1 << 40, np.int64)]
)
def test_batched_schedule_of_long_work_in_each_cycle_type(largest: int, dtype: type) -> None:
    # Items past one gather chunk, and cycles in int16, int32 or int64 as their bound needs.
    rng = np.random.default_rng(3)
    table = rng.integers(1, largest, size=(50, 3))
    counts = np.array([700, 0, 300])
    items = rng.integers(0, 50, size=(700, 3))
    assert _cycle_dtype(table, items, 4, 1, 1) is dtype
    plans = schedules(table, items, counts, 4)
    for sample, count in enumerate(counts):
        alone = schedule(table[items[:count, sample]], 4)
        assert (plans.window[sample], plans.stall_cycles[sample]) == (
            alone.window,
            alone.stall_cycles,
        )
        assert plans.stall[sample].tolist() == alone.stall.tolist()
        if count:
            assert alone.window == _by_cycles_window(table[items[:count, sample]], 4)


def _by_cycles_window(work: np.ndarray, depth: int) -> int:
    """The window by the plain recurrence in Python integers (no numpy types)."""
    free = [None] * work.shape[1]
    last: list[int] = []
    sent = 0
    for k, row in enumerate(work.tolist()):
        sent = max(sent + 1, last[k - depth] + 1) if k >= depth else sent + 1
        take = [sent + 1 if f is None else max(f, sent + 1) for f in free]
        last.append(max(take))
        free = [t + w for t, w in zip(take, row, strict=True)]
    return max(free) - 2


def assert_lockstep_equals_sequential(
    program: Program, inputs: dict[str, np.ndarray], config: EmulatorConfig | None = None
) -> None:
    """run_batch (lockstep) against each sample run alone: outputs bitwise, Stats equal."""
    lockstep = run_batch(program, inputs, config)
    batch = split_batch(program, inputs)
    emulator = Emulator(program, config)
    alone = [emulator.run(batch.sample(index)) for index in range(batch.count)]
    assert len(lockstep.runs) == batch.count
    for got, want in zip(lockstep.runs, alone, strict=True):
        assert got == want.stats
    for port in program.outputs:
        parts = [run.outputs[port.name] for run in alone]
        axis = port.batch_axis
        want = np.stack(parts) if axis is None else np.concatenate(parts, axis=axis)
        if axis is None and batch.count == 1 and not batch.batched:
            want = parts[0]
        got = lockstep.outputs[port.name]
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), port.name
    # The sequential path (observers given) is the same too.
    observed = run_batch(program, inputs, config, observers=[_Nothing()])
    assert observed.runs == lockstep.runs
    # run_chunks gives each lane's outputs and totals without its Stats: the same figures.
    samples = [batch.sample(index) for index in range(batch.count)]
    stacked = stack_samples(program, samples)
    chunks = run_chunks(Emulator(program, config), stacked, count=batch.count)
    lanes = [(chunk, lane) for chunk in chunks for lane in range(chunk.totals.cycles.size)]
    for (chunk, lane), run in zip(lanes, alone, strict=True):
        totals, stats = chunk.totals, run.stats
        assert int(totals.cycles[lane]) == stats.cycles
        assert float(totals.energy_pj[lane]) == stats.energy_pj
        assert int(totals.saturations[lane]) == stats.saturations
        clamped = {port: int(c[lane]) for port, c in totals.clamped.items() if c[lane]}
        assert clamped == input_clamps([stats])
        layers = {
            name: (m, int(c[lane]), float(e[lane])) for name, (m, c, e) in totals.layers.items()
        }
        assert layers == {t.layer: (t.macs, t.cycles, t.energy_pj) for t in stats.layer_totals}
        for name, value in chunk.outputs.items():
            assert value[lane].tobytes() == run.outputs[name].tobytes()


class _Nothing:
    def reset(self) -> None:
        pass

    def observe(self, event: object, timing: object) -> None:
        pass


def _samples(rng: np.random.Generator, program: Program, count: int, scale: float) -> dict:
    """``count`` samples of every batched input (sample 0 all zeros), the others once."""
    inputs = {}
    for port in program.inputs:
        shape = list(port.shape)
        if port.batch_axis is None:
            inputs[port.name] = rng.normal(0, scale, size=shape).astype(np.float32)
            continue
        shape[port.batch_axis] *= count
        values = rng.normal(0, scale, size=shape) * (rng.random(shape) < 0.6)
        first = [slice(None)] * len(shape)
        first[port.batch_axis] = slice(0, port.shape[port.batch_axis])
        values[tuple(first)] = 0.0
        inputs[port.name] = values.astype(np.float32)
    return inputs


def _fc_chain(rng: np.random.Generator, pes: int, depth: int, acc_bits: int = 48) -> Program:
    sizes = [int(rng.integers(1, 90)) for _ in range(3)]
    codes = [
        random_codes(rng, sizes[i + 1], sizes[i], float(rng.uniform(0.05, 0.7))) for i in range(2)
    ]
    books = [np.array([0, *rng.integers(-3000, 3000, 15)], dtype=np.int16) for _ in range(2)]
    machine = dataclasses.replace(big_machine(pes, depth), acc_bits=acc_bits)
    return fc_program(
        codes, books, [12, 12], [8, 6, 8], machine=machine, relu=bool(rng.random() < 0.5)
    )


@pytest.mark.parametrize("arith", ["fixed16", "float32"])
@pytest.mark.parametrize("seed", range(6))
def test_lockstep_equals_sequential_on_fc_chains(arith: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    program = _fc_chain(rng, pes=int(rng.integers(1, 9)), depth=int(rng.integers(1, 9)))
    count = int(rng.integers(2, 12))
    inputs = _samples(rng, program, count, scale=float(rng.choice([0.1, 4.0, 300.0])))
    assert_lockstep_equals_sequential(program, inputs, EmulatorConfig(arith=arith))


def test_lockstep_counts_accumulator_overflows_per_sample() -> None:
    rng = np.random.default_rng(11)
    program = _fc_chain(rng, pes=4, depth=2, acc_bits=20)
    inputs = _samples(rng, program, 8, scale=100.0)
    batch = run_batch(program, inputs)
    assert sum(run.saturations for run in batch.runs) > 0
    assert batch.runs[0].saturations == 0  # the all-zero sample
    assert_lockstep_equals_sequential(program, inputs)


@pytest.mark.parametrize("count", [1, 2])
def test_lockstep_batch_of_one_and_two(count: int) -> None:
    rng = np.random.default_rng(5)
    program = _fc_chain(rng, pes=3, depth=4)
    assert_lockstep_equals_sequential(program, _samples(rng, program, count, scale=2.0))


def test_lockstep_single_unbatched_input() -> None:
    rng = np.random.default_rng(6)
    program = _fc_chain(rng, pes=3, depth=4)
    (port,) = program.inputs
    x = rng.normal(size=port.shape).astype(np.float32)
    assert_lockstep_equals_sequential(program, {port.name: x})


@pytest.mark.parametrize("arith", ["fixed16", "float32"])
@pytest.mark.parametrize("path", ["compile/lstm_head.eie", "valid/lstm_two_steps.eie"])
def test_lockstep_equals_sequential_on_lstm_programs(path: str, arith: str) -> None:
    program = load(GOLDEN / path)
    rng = np.random.default_rng(2)
    for scale in (0.5, 3.0):
        inputs = _samples(rng, program, 6, scale=scale)
        assert_lockstep_equals_sequential(program, inputs, EmulatorConfig(arith=arith))


@given(
    programs(),
    st.integers(1, 5),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["fixed16", "float32"]),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_lockstep_equals_sequential_on_random_programs(
    program: Program, count: int, seed: int, arith: str
) -> None:
    rng = np.random.default_rng(seed)
    if arith == "float32" and any(
        t.fn not in ("sigmoid", "tanh", "relu") for t in program.tables.values()
    ):
        arith = "fixed16"
    inputs = _samples(rng, program, count, scale=float(rng.choice([0.5, 50.0])))
    assert_lockstep_equals_sequential(program, inputs, EmulatorConfig(arith=arith))


def test_lockstep_in_chunks_of_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    # 8 samples in lockstep chunks of 3: the dense weights of the batch serve every chunk.
    monkeypatch.setattr(batch_module, "LANES", 3)
    rng = np.random.default_rng(9)
    program = _fc_chain(rng, pes=4, depth=3)
    assert_lockstep_equals_sequential(program, _samples(rng, program, 8, scale=3.0))


def test_lockstep_with_a_progress_bar_gives_the_same_runs() -> None:
    rng = np.random.default_rng(12)
    program = _fc_chain(rng, pes=2, depth=2)
    inputs = _samples(rng, program, 4, scale=2.0)
    assert run_batch(program, inputs, progress=True).runs == run_batch(program, inputs).runs


@pytest.mark.parametrize("fault", ["no halt", "no codebook"])
def test_lockstep_fails_as_a_single_run_does(fault: str) -> None:
    rng = np.random.default_rng(13)
    program = _fc_chain(rng, pes=2, depth=2)
    text = program.text[:-1] if fault == "no halt" else program.text[1:]
    broken = dataclasses.replace(program, text=text)
    inputs = _samples(rng, broken, 3, scale=1.0)
    with pytest.raises(EmulatorError) as alone:
        Emulator(broken).run(split_batch(broken, inputs).sample(0))
    with pytest.raises(EmulatorError) as lockstep:
        run_batch(broken, inputs)
    assert str(lockstep.value) == str(alone.value)


def _same_bounds(program: Program, inputs: dict, config: EmulatorConfig | None = None) -> None:
    """``emulate_all_with_bounds`` (lockstep, a bound probe per lane) gives what one
    ``emulate_with_bounds`` per sample gives: outputs, bounds, taints, statistics."""
    from eiec.runtime.verify import emulate_all_with_bounds, emulate_with_bounds

    batch = split_batch(program, inputs)
    samples = [batch.sample(index) for index in range(batch.count)]
    together = emulate_all_with_bounds(Emulator(program, config), samples)
    for sample, got in zip(samples, together, strict=True):
        alone = emulate_with_bounds(program, sample, config)
        for table in ("outputs", "bounds", "saturated"):
            mine, theirs = getattr(got, table), getattr(alone, table)
            assert all(np.array_equal(mine[k], theirs[k]) for k in theirs), table
        assert (got.first_saturation, got.first_unbounded) == (
            alone.first_saturation,
            alone.first_unbounded,
        )
        assert [(w.layer, w.step) for w in got.writebacks] == [
            (w.layer, w.step) for w in alone.writebacks
        ]
        assert all(
            np.array_equal(a.bound, b.bound) and np.array_equal(a.values, b.values)
            for a, b in zip(got.writebacks, alone.writebacks, strict=True)
        )
        assert got.stats.to_json() == alone.stats.to_json()


@pytest.mark.parametrize("seed", range(4))
def test_lockstep_with_bound_probes_equals_one_run_per_sample(seed: int) -> None:
    rng = np.random.default_rng(seed)
    program = _fc_chain(rng, pes=int(rng.integers(1, 9)), depth=int(rng.integers(1, 9)))
    scale = [0.1, 4.0, 300.0, 2.0][seed]  # 300: saturated words, tainted outputs
    _same_bounds(program, _samples(rng, program, 5, scale=scale))


@pytest.mark.parametrize("path", ["compile/lstm_head.eie", "valid/lstm_two_steps.eie"])
def test_lockstep_with_bound_probes_on_an_lstm(path: str) -> None:
    program = load(GOLDEN / path)
    _same_bounds(program, _samples(np.random.default_rng(4), program, 3, scale=1.0))


def test_mac_of_a_dense_stream_as_one_sparse_product_equals_the_gather(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # FixedArith.mac: the CSR product of the decoded weights (dense streams) and the gather +
    # bincount (sparse streams) give the same integers, overflow counts and cycles.
    from eiec.emulator import arith as arith_module

    rng = np.random.default_rng(13)
    program = _fc_chain(rng, pes=4, depth=3, acc_bits=24)
    inputs = _samples(rng, program, 6, scale=50.0)
    batch = split_batch(program, inputs)
    runs = {}
    for share in (10**9, 0):  # 10**9: the product for any non-empty stream; 0: the gather
        monkeypatch.setattr(arith_module, "SPARSE_STREAM", share)
        emulator = Emulator(program)
        runs[share] = [emulator.run(batch.sample(i)) for i in range(batch.count)]
    for product, gather in zip(runs[10**9], runs[0], strict=True):
        assert all(np.array_equal(product.outputs[k], gather.outputs[k]) for k in gather.outputs)
        assert product.stats.to_json() == gather.stats.to_json()
    assert sum(run.stats.saturations for run in runs[0]) > 0  # the clamps are compared too
