"""Batches: independent runs of one program, split and stacked along each port's batch axis.

The samples run in lockstep (a program has no control flow): one machine state holds every
sample as a lane, and each instruction runs once for all of them (``Emulator.reset_lanes``);
the outputs and statistics are those of one run per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from eiec.emulator.config import EmulatorConfig
from eiec.emulator.emulator import Emulator, RunResult
from eiec.emulator.events import Observer, Probe
from eiec.emulator.layers import LayerTables
from eiec.emulator.ports import (
    batch_size,
    check_dtype_and_values,
    check_lane_inputs,
    check_names,
    check_shape,
)
from eiec.emulator.stats import LaneTotals, Stats
from eiec.errors import InputError
from eiec.isa.program import Program


def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


@dataclass
class BatchStats:
    """A batch summed up: totals of cycles, time and energy, means of the ratios."""

    samples: int
    cycles: int
    time_us: float
    energy_pj: float
    useful_macs: int
    saturations: int
    mean_cycles: float
    alu_utilization: float
    load_efficiency: float
    energy_per_inference_pj: float = 0.0
    power_mw: float = 0.0
    gops: float = 0.0
    gops_per_w: float = 0.0
    chip_area_mm2: float = 0.0

    @classmethod
    def of(cls, runs: list[Stats]) -> BatchStats:
        """Aggregate the per-sample statistics."""
        count = len(runs)
        cycles = sum(s.cycles for s in runs)
        time_us = sum(s.time_us for s in runs)
        energy_pj = sum(s.energy_pj for s in runs)
        useful_macs = sum(s.useful_macs for s in runs)
        power_mw = _ratio(energy_pj, time_us) / 1e3
        gops = _ratio(2 * useful_macs, time_us) / 1e3
        return cls(
            samples=count,
            cycles=cycles,
            time_us=time_us,
            energy_pj=energy_pj,
            useful_macs=useful_macs,
            saturations=sum(s.saturations for s in runs),
            mean_cycles=cycles / count if count else 0.0,
            alu_utilization=float(np.mean([s.alu_utilization for s in runs])) if count else 0.0,
            load_efficiency=float(np.mean([s.load_efficiency for s in runs])) if count else 0.0,
            energy_per_inference_pj=energy_pj / count if count else 0.0,
            power_mw=power_mw,
            gops=gops,
            gops_per_w=_ratio(gops, power_mw / 1e3),
            chip_area_mm2=runs[0].chip_area_mm2 if count else 0.0,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def render(self) -> Any:
        """A rich table of the batch totals."""
        from rich.table import Table  # lazy: rich

        table = Table(title="EIE emulation (batch)", show_header=False)
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_row("samples", str(self.samples))
        table.add_row("cycles (total / mean)", f"{self.cycles:,} / {self.mean_cycles:,.1f}")
        table.add_row("time (total)", f"{self.time_us:,.3f} us")
        table.add_row("useful MACs", f"{self.useful_macs:,}")
        table.add_row("ALU utilisation (mean)", f"{self.alu_utilization:.1%}")
        table.add_row("load efficiency (mean)", f"{self.load_efficiency:.1%}")
        table.add_row("energy (total)", f"{self.energy_pj / 1e3:,.3f} nJ")
        table.add_row("energy per inference", f"{self.energy_per_inference_pj / 1e3:,.3f} nJ")
        table.add_row("average power", f"{self.power_mw:,.1f} mW")
        table.add_row("GOP/s / GOP/s/W", f"{self.gops:,.1f} / {self.gops_per_w:,.1f}")
        table.add_row("area (chip)", f"{self.chip_area_mm2:,.2f} mm^2")
        table.add_row("saturations", f"{self.saturations:,}")
        return table


@dataclass
class BatchResult:
    """``outputs`` stacked along each output port's batch axis; ``runs``: per-sample stats."""

    outputs: dict[str, np.ndarray]
    runs: list[Stats]
    stats: BatchStats


@dataclass(frozen=True)
class Batch:
    """Inputs of ``count`` samples; ``batched`` names the inputs stacked along their port's
    batch axis (the others have exactly their port's shape and serve every sample)."""

    program: Program
    inputs: Mapping[str, np.ndarray]
    count: int
    batched: frozenset[str]

    def sample(self, index: int) -> dict[str, np.ndarray]:
        """The inputs of sample ``index``, each of its port's shape."""
        axes = {port.name: port.batch_axis or 0 for port in self.program.inputs}
        return {
            name: _sample(array, axes[name], index) if name in self.batched else array
            for name, array in self.inputs.items()
        }


def split_batch(program: Program, inputs: Mapping[str, np.ndarray]) -> Batch:
    """How ``inputs`` split into samples (InputError for a wrong shape, dtype or value, or
    inputs that disagree on the batch size). Names that are not inputs are left to
    ``Emulator.reset`` to report."""
    sizes: dict[str, int] = {}
    ports = {port.name: port for port in program.inputs}
    arrays = {name: np.asarray(array) for name, array in inputs.items()}
    for name, array in arrays.items():
        port = ports.get(name)
        if port is None:
            continue
        check_dtype_and_values(port, array, program.source)
        size = batch_size(port, array, program.source)
        if size is not None:
            sizes[name] = size
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{name}: {size}" for name, size in sizes.items())
        raise InputError(
            f"inputs disagree on the batch size ({shown})",
            where=program.source,
            fix="give every batched input the same number of samples",
        )
    return Batch(program, arrays, next(iter(sizes.values()), 1), frozenset(sizes))


def _sample(array: np.ndarray, axis: int, index: int) -> np.ndarray:
    where = [slice(None)] * array.ndim
    where[axis] = slice(index, index + 1)
    return array[tuple(where)]


def run_batch(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    config: EmulatorConfig | None = None,
    progress: bool = False,
    observers: Iterable[Observer] = (),
    tables: Mapping[str, LayerTables] | None = None,
) -> BatchResult:
    """Run every sample of ``inputs`` (stacked along the input ports' batch axes); ``tables``
    as for ``Emulator`` (e.g. from ``eiec.emulator.image.load_image``).

    An input with exactly its port's shape is reused for every sample. All batched inputs
    must agree on the batch size. The samples run in lockstep (programs have no control flow,
    so every sample executes the same instruction at the same time; the MACs are batched, see
    :func:`_lockstep`); with ``observers`` they run one after the other, each observed whole.
    """
    batch = split_batch(program, inputs)
    count = batch.count
    observers = tuple(observers)
    emulator = Emulator(program, config, observers, tables=tables)
    runs: list[Stats] = []
    outputs: dict[str, list[np.ndarray]] = {port.name: [] for port in program.outputs}
    for result in _runs(emulator, batch, progress):  # kept: outputs and stats, not buffers
        runs.append(result.stats)
        for name, parts in outputs.items():
            parts.append(result.outputs[name])
    stacked = {}
    for port in program.outputs:
        parts = outputs[port.name]
        if port.batch_axis is None:
            stacked[port.name] = parts[0] if count == 1 and not batch.batched else np.stack(parts)
        else:
            stacked[port.name] = np.concatenate(parts, axis=port.batch_axis)
    return BatchResult(outputs=stacked, runs=runs, stats=BatchStats.of(runs))


def _runs(emulator: Emulator, batch: Batch, progress: bool) -> Iterator[RunResult]:
    """The run of each sample, in order: in lockstep chunks of ``LANES`` samples, or one after
    the other when the emulator has observers besides its statistics."""
    if len(emulator.observers) > 1:
        yield from _sequential(emulator, batch, progress)
        return
    chunks = [
        range(start, min(start + LANES, batch.count)) for start in range(0, batch.count, LANES)
    ]
    # One BLAS thread: the lockstep's products are small, and a BLAS thread that waits for a
    # busy CPU costs more than it saves (4096x1000, 100 samples at load 1: 3.1 ms per sample
    # on two threads, 0.7 ms on one).
    with one_blas_thread():
        if not progress:
            for chunk in chunks:
                samples = [batch.sample(index) for index in chunk]
                yield from _lockstep(emulator, samples)
            return
        from eiec.console import progress_bar  # lazy: rich

        with progress_bar() as bar:
            task = bar.add_task("emulating", total=len(chunks) * len(emulator.program.text))
            for chunk in chunks:
                samples = [batch.sample(index) for index in chunk]
                tick = lambda: bar.advance(task)  # noqa: E731
                yield from _lockstep(emulator, samples, tick)


def _sequential(emulator: Emulator, batch: Batch, progress: bool) -> Iterator[RunResult]:
    """One whole run per sample."""
    samples: Iterable[int] = range(batch.count)
    if progress:
        from eiec.console import track  # lazy: rich

        samples = track(samples, "emulating", total=batch.count)
    for index in samples:
        yield emulator.run(batch.sample(index))


_BLAS: list[Any] = []  # the process's threadpoolctl controller, made on first use


def one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread (threadpoolctl's controller of the process's
    libraries is made once: scanning them costs about 1 ms in a process with TVM loaded)."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController  # lazy: only a lockstep batch multiplies

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


#: Samples run in lockstep at once (bounds the memory of the batched MACs).
LANES = 128


def stack_samples(
    program: Program, samples: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``samples`` (each input of its port's shape) as lockstep lanes: by port, samples x the
    port's shape (InputError for a missing input or a wrong shape, as one sample's; the values
    are checked on the stack, by ``Emulator.reset_lanes``)."""
    for sample in samples:
        check_names(program, sample)
        for port in program.inputs:
            check_shape(port, np.asarray(sample[port.name]), program.source)
    return {
        port.name: np.stack([sample[port.name] for sample in samples]) for port in program.inputs
    }


def run_lanes(
    emulator: Emulator,
    samples: Sequence[Mapping[str, np.ndarray]],
    probes: Callable[[int], tuple[Probe, ...]],
) -> list[tuple[RunResult, tuple[Probe, ...]]]:
    """Run each of ``samples`` (inputs of exactly the ports' shapes) in lockstep, as
    :func:`run_batch` does, probed by ``probes(lanes)`` (probes of that many lockstep lanes,
    e.g. ``ErrorBounds(..., lanes=lanes)``): each sample's run and its own probes (each lane
    probe's ``lane(i)``), in order, as ``Emulator.run`` with one-run probes gives them."""
    stacked = stack_samples(emulator.program, samples)
    return [
        (run, tuple(probe.lane(index) for probe in chunk.probes))  # type: ignore[attr-defined]
        for chunk in run_chunks(emulator, stacked, probes, len(samples))
        for index, run in enumerate(chunk.machine.lane_results())
    ]


@dataclass
class LaneChunk:
    """Samples run in lockstep by ``machine`` (``Emulator.reset_lanes``): their ``outputs``
    (by port, lanes x the port's shape), what each lane added up to (``totals``) and the
    probes of all lanes; ``machine.lane_results()`` gives each lane's whole run."""

    machine: Emulator
    outputs: dict[str, np.ndarray]
    totals: LaneTotals
    probes: tuple[Probe, ...]


def run_chunks(
    emulator: Emulator,
    inputs: Mapping[str, np.ndarray],
    probes: Callable[[int], tuple[Probe, ...]] = lambda lanes: (),
    count: int | None = None,
) -> list[LaneChunk]:
    """:func:`run_lanes` of ``inputs`` (by port, samples x the port's shape) in chunks of up
    to ``LANES`` lockstep lanes, each with its outputs, totals and probes over all its lanes
    (e.g. the error bounds of every lane's outputs at once), without each lane's
    :class:`Stats` (``chunk.machine.lane_results()``); ``count`` samples (needed for a
    program without inputs)."""
    count = check_lane_inputs(emulator.program, inputs, count)
    chunks = []
    with one_blas_thread():
        for start in range(0, count, LANES):
            chunk = {name: array[start : start + LANES] for name, array in inputs.items()}
            lanes = min(LANES, count - start)
            lane_probes = probes(lanes)
            machine = _lockstep_machine(emulator, chunk, lanes, probes=lane_probes)
            outputs = machine.lane_outputs()
            chunks.append(LaneChunk(machine, outputs, machine.collector.lane_totals(), lane_probes))
    return chunks


def _lockstep(
    emulator: Emulator,
    samples: Sequence[Mapping[str, np.ndarray]],
    tick: Callable[[], None] | None = None,
) -> list[RunResult]:
    """Each lane's run of :func:`_lockstep_machine` of ``samples`` (each input of its port's
    shape), as :func:`_sequential` gives it."""
    stacked = stack_samples(emulator.program, samples)
    return _lockstep_machine(emulator, stacked, len(samples), tick).lane_results()


def _lockstep_machine(
    emulator: Emulator,
    samples: Mapping[str, np.ndarray],
    count: int,
    tick: Callable[[], None] | None = None,
    probes: tuple[Probe, ...] = (),
) -> Emulator:
    """``samples`` (by port, ``count`` lanes x the port's shape) run at once: one state of
    every lane (``Emulator.reset_lanes``), each instruction executed once for all of them,
    observed by ``probes`` of as many lanes; ``tick`` is called after each instruction. The
    emulator (a sibling of ``emulator``) that ran them."""
    machine = emulator.sibling()
    machine.probes = probes
    machine.reset_lanes(samples, count)
    while machine.step() is not None:
        if tick is not None:
            tick()
    return machine
