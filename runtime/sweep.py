"""Design-space sweeps: one model over PE counts, FIFO depths and any machine fields, locally or
on Ray.

:func:`sweep` compiles the model once per machine that needs it (the PE count and the
``settings`` of other machine fields, e.g. ``spmat_sram``, shape the program; the FIFO depth is
emulate-time, isa/SPEC.md §6), then emulates every (PE count, settings, depth) point on the same
inputs. Each point reports cycles and time, and from the power and area model
(``eiec.emulator.energy``) energy per inference, average power, GOP/s, GOP/s/W and chip area.
Each point's ``cycles`` is what ``eiec emulate`` of that program at that depth reports. The work
runs as independent tasks (one per compile, one per point) on a process pool
(``engine="local"``) or as Ray tasks (``engine="ray"``, the cluster at ``address`` /
``RAY_ADDRESS`` or a local Ray started for the sweep); both give identical points.
A point whose program does not fit its machine is kept, with the compiler's error.

Heavy imports (TVM, Ray, matplotlib) happen inside the functions that need them.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eiec.emulator import EmulatorConfig, EnergyModel, run_batch
from eiec.emulator.ports import saturation_warnings
from eiec.errors import EiecError, InputError, PathError
from eiec.fileio import write_atomic
from eiec.isa import format_program, parse
from eiec.isa.machines import machine_from
from eiec.isa.program import Machine
from eiec.runtime.engines import ENGINES, Engine, open_engine

if TYPE_CHECKING:
    import onnx

    from eiec.compiler import CompileOptions

#: The paper's PE counts (Fig. 11) and queue depths (Fig. 8).
DEFAULT_PES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DEFAULT_DEPTHS: tuple[int, ...] = (1, 2, 4, 8, 16)
#: Point fields written to the CSV and shown in the table, in order.
CSV_FIELDS: tuple[str, ...] = (
    "pes",
    "fifo_depth",
    "cycles",
    "time_us",
    "speedup",
    "load_efficiency",
    "alu_utilization",
    "energy_pj",
    "energy_per_inference_pj",
    "power_mw",
    "gops",
    "gops_per_w",
    "area_mm2",
    "ideal_cycles",
    "error",
)
#: A combination of swept machine fields: (field, value) pairs in the order given.
Settings = tuple[tuple[str, int | float], ...]


@dataclass
class SweepPoint:
    """One machine and depth: the emulation's figures (None where ``error`` says why not).

    ``speedup``: cycles at the smallest PE count of the sweep (same depth and settings) / these
    cycles. ``settings``: the swept machine fields' values of this point. ``energy_pj``: all
    samples; ``energy_per_inference_pj``: per sample; ``power_mw``: energy / time; ``gops``:
    2 x useful MACs / time; ``area_mm2``: the chip's; ``compute_cycles``: the cycles less those
    spent waiting for weights from DRAM (the compute bound of a roofline: every weight on chip
    here, so the cycles themselves).
    ``layers``: per layer (name, cycles, ideal_cycles, load_efficiency, alu_utilization).
    ``warnings``: ``{"what", "fix"}`` per saturation of the emulation (clamped inputs, words
    clamped inside the program: ``eiec emulate``'s warnings), in the order it gives them.
    """

    pes: int
    fifo_depth: int
    clock_mhz: float
    settings: dict[str, int | float] = field(default_factory=dict)
    cycles: int | None = None
    time_us: float | None = None
    speedup: float | None = None
    load_efficiency: float | None = None
    alu_utilization: float | None = None
    energy_pj: float | None = None
    energy_per_inference_pj: float | None = None
    power_mw: float | None = None
    gops: float | None = None
    gops_per_w: float | None = None
    area_mm2: float | None = None
    compute_cycles: int | None = None
    ideal_cycles: float | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None


@dataclass
class SweepResult:
    """The points in (PE count, depth) order, the base machine and how the sweep ran."""

    points: list[SweepPoint]
    machine: Machine
    engine: str
    workers: int
    wall_s: float

    def to_json(self) -> dict[str, Any]:
        """``{"points": [...], "machine": {...}, "engine", "workers", "wall_s"}``."""
        return {
            "points": [asdict(point) for point in self.points],
            "machine": asdict(self.machine),
            "engine": self.engine,
            "workers": self.workers,
            "wall_s": self.wall_s,
        }

    def warnings(self) -> list[tuple[str, str]]:
        """(what, how to fix) per distinct saturation warning of the points, ``what`` ending
        with the points that gave it (all of them, or their PE counts and depths)."""
        where: dict[tuple[str, str], list[SweepPoint]] = {}
        for point in self.points:
            for warning in point.warnings:
                where.setdefault((warning["what"], warning["fix"]), []).append(point)
        found = []
        for (what, fix), points in where.items():
            if len(points) == len(self.points):
                at = "every point"
            else:
                at = ", ".join(f"{p.pes} PEs FIFO {p.fifo_depth}" for p in points)
                at = f"{len(points)} of {len(self.points)} points ({at})"
            found.append((f"{what}; at {at}", fix))
        return found

    @property
    def fields(self) -> list[str]:
        """The swept machine fields, in order."""
        return list(self.points[0].settings) if self.points else []

    def to_csv(self) -> str:
        """One row per point (PEs, depth, the swept fields, the rest of ``CSV_FIELDS``, then
        ``LAYER cycles`` per layer)."""
        names = [layer["layer"] for layer in self.points[0].layers] if self.points else []
        for point in self.points:
            names += [layer["layer"] for layer in point.layers if layer["layer"] not in names]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        swept = self.fields
        writer.writerow([*CSV_FIELDS[:2], *swept, *CSV_FIELDS[2:], *(f"{n} cycles" for n in names)])
        for point in self.points:
            cycles = {layer["layer"]: layer["cycles"] for layer in point.layers}
            row = [getattr(point, key) for key in CSV_FIELDS]
            row[2:2] = [point.settings[name] for name in swept]
            writer.writerow(
                ["" if v is None else v for v in row] + [cycles.get(n, "") for n in names]
            )
        return out.getvalue()

    def table(self) -> Any:
        """A rich table: one row per point."""
        from rich.table import Table  # lazy: rich

        table = Table(
            title=f"EIE design space ({len(self.points)} points, {self.engine}, "
            f"{self.wall_s:.1f} s)"
        )
        swept = self.fields
        heads = ("cycles", "us", "speed-up", "load eff", "ALU util", "nJ/inf", "mW", "GOP/s")
        for head in ("PEs", "FIFO", *swept, *heads, "GOP/s/W", "mm^2"):
            table.add_column(head, justify="right")
        table.add_column("per layer (cycles)")
        for p in self.points:
            first = [str(p.pes), str(p.fifo_depth), *(f"{p.settings[f]:g}" for f in swept)]
            if p.error is not None:
                table.add_row(*first, *["-"] * (len(heads) + 2), p.error)
                continue
            assert p.cycles is not None and p.time_us is not None
            assert p.energy_per_inference_pj is not None and p.area_mm2 is not None
            table.add_row(
                *first,
                f"{p.cycles:,}",
                f"{p.time_us:,.2f}",
                f"{p.speedup:.1f}x" if p.speedup is not None else "-",
                f"{p.load_efficiency:.1%}",
                f"{p.alu_utilization:.1%}",
                f"{p.energy_per_inference_pj / 1e3:,.1f}",
                f"{p.power_mw:,.1f}",
                f"{p.gops:,.1f}",
                f"{p.gops_per_w:,.1f}",
                f"{p.area_mm2:,.2f}",
                ", ".join(f"{layer['layer']} {layer['cycles']:,}" for layer in p.layers),
            )
        return table

    def plot(self, directory: str | Path) -> list[Path]:
        """``speedup.png`` (speed-up against PEs, per depth, with the ideal line),
        ``load_efficiency.png`` (load efficiency against depth, per PE count), ``power.png``
        (energy per inference, power, GOP/s/W and area against PEs, per depth) and, when
        machine fields were swept, ``machine_fields.png`` (cycles, energy per inference and
        area against each swept field)."""
        import matplotlib  # lazy: matplotlib, only for plots

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # lazy: matplotlib

        out = Path(directory)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PathError(
                f"cannot make the folder: {error.strerror}",
                where=str(directory),
                fix="choose a folder you can write to",
            ) from None
        good = [p for p in self.points if p.error is None]
        depths = sorted({p.fifo_depth for p in good})
        counts = sorted({p.pes for p in good})
        paths = []
        figure, axes = plt.subplots(figsize=(6, 4.5))
        for depth in depths:
            row = [p for p in good if p.fifo_depth == depth and p.speedup is not None]
            axes.plot([p.pes for p in row], [p.speedup for p in row], "o-", label=f"FIFO {depth}")
        if counts:
            axes.plot(counts, [c / counts[0] for c in counts], "k--", label="ideal")
        axes.set(
            xscale="log",
            yscale="log",
            xlabel="PEs",
            ylabel=f"speed-up over {counts[0] if counts else 1} PE",
            title="speed-up against PEs",
        )
        axes.legend(fontsize="small")
        paths.append(_save(figure, out / "speedup.png"))
        figure, axes = plt.subplots(figsize=(6, 4.5))
        for pes in counts:
            row = [p for p in good if p.pes == pes]
            axes.plot(
                [p.fifo_depth for p in row],
                [100 * (p.load_efficiency or 0.0) for p in row],
                "o-",
                label=f"{pes} PEs",
            )
        axes.set(
            xscale="log",
            xlabel="FIFO depth",
            ylabel="load efficiency (%)",
            title="load efficiency against activation queue depth",
        )
        axes.set_xticks(depths, [str(d) for d in depths])
        axes.legend(fontsize="small", ncol=2)
        paths.append(_save(figure, out / "load_efficiency.png"))
        paths.append(self._plot_power(plt, good, out / "power.png"))
        if self.fields:
            paths.append(self._plot_fields(plt, good, out / "machine_fields.png"))
        return paths

    def _plot_power(self, plt: Any, good: list[SweepPoint], path: Path) -> Path:
        """Energy per inference, power, GOP/s/W and area against PEs, one line per depth (and
        setting)."""
        figure, grid = plt.subplots(2, 2, figsize=(9, 7))
        metrics = (
            ("energy_per_inference_pj", 1e-3, "energy per inference (nJ)"),
            ("power_mw", 1.0, "average power (mW)"),
            ("gops_per_w", 1.0, "GOP/s/W"),
            ("area_mm2", 1.0, "chip area (mm$^2$)"),
        )
        series: dict[str, list[SweepPoint]] = {}
        for p in good:
            label = ", ".join(
                [f"FIFO {p.fifo_depth}", *(f"{k}={v:g}" for k, v in p.settings.items())]
            )
            series.setdefault(label, []).append(p)
        for axes, (name, factor, ylabel) in zip(grid.flat, metrics, strict=True):
            for label, row in series.items():
                values = [getattr(p, name) * factor for p in row]
                axes.plot([p.pes for p in row], values, "o-", label=label)
            axes.set(xscale="log", xlabel="PEs", ylabel=ylabel)
        grid.flat[0].legend(fontsize="x-small")
        figure.suptitle("energy, power and area against PEs")
        return _save(figure, path)

    def _plot_fields(self, plt: Any, good: list[SweepPoint], path: Path) -> Path:
        """Per swept field (a row): cycles, energy per inference and area against its values,
        one line per PE count and depth, the other fields at the first good point's values. A
        bandwidth (a field named ``*_gbps``) gets a roofline: cycles on log axes with the compute
        bound (``compute_cycles``) dashed."""
        swept = self.fields
        first = dict(good[0].settings) if good else {}
        figure, grid = plt.subplots(len(swept), 3, figsize=(12, 3.6 * len(swept)), squeeze=False)
        for row, name in enumerate(swept):
            others = {k: v for k, v in first.items() if k != name}
            chosen = [p for p in good if all(p.settings[k] == v for k, v in others.items())]
            lines: dict[tuple[int, int], list[SweepPoint]] = {}
            for p in chosen:
                lines.setdefault((p.pes, p.fifo_depth), []).append(p)
            for col, (metric, factor, ylabel) in enumerate(
                (
                    ("cycles", 1.0, "cycles"),
                    ("energy_per_inference_pj", 1e-3, "energy per inference (nJ)"),
                    ("area_mm2", 1.0, "chip area (mm$^2$)"),
                )
            ):
                axes = grid[row][col]
                roofline = metric == "cycles" and name.endswith("_gbps")
                for (pes, depth), points in lines.items():
                    points = sorted(points, key=lambda p: p.settings[name])
                    xs = [p.settings[name] for p in points]
                    (line,) = axes.plot(
                        xs,
                        [getattr(p, metric) * factor for p in points],
                        "o-",
                        label=f"{pes} PEs, FIFO {depth}",
                    )
                    if roofline:
                        bound = [p.compute_cycles for p in points]
                        axes.plot(xs, bound, "--", color=line.get_color(), label="compute bound")
                axes.set(xlabel=name, ylabel=ylabel)
                if roofline:
                    axes.set_yscale("log")
                axes.set_xscale("log", base=2)
                values = sorted({p.settings[name] for p in chosen})
                axes.set_xticks(values, [_short(v) for v in values])
                axes.minorticks_off()
            if lines:
                grid[row][0].legend(fontsize="x-small")
        figure.suptitle("against the swept machine fields")
        return _save(figure, path)


def _short(value: float) -> str:
    """``131072`` -> ``128K``; other values as they are."""
    for suffix, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= size and value % size == 0:
            return f"{value // size:g}{suffix}"
    return f"{value:g}"


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt  # lazy: matplotlib

    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    plt.close(figure)
    write_atomic(path, image.getvalue())
    return path


# --- the tasks (pure functions of their arguments: the same on every engine) --------------------


def compile_task(
    model: bytes | str, options: CompileOptions, pes: int, settings: Settings = ()
) -> str:
    """The program text of ``model`` compiled for ``pes`` PEs and the machine fields of
    ``settings``, or ``"error: ..."``."""
    import onnx  # lazy: onnx, in the worker

    from eiec.compiler import compile_model  # lazy: TVM, in the worker

    try:
        proto = onnx.load_from_string(model) if isinstance(model, bytes) else model
        result = compile_model(proto, _with_machine(options, pes, settings))
        return format_program(result.program)
    except EiecError as error:
        return f"error: {error}"


def emulate_task(
    text: str,
    inputs: Mapping[str, np.ndarray],
    depth: int,
    clock_mhz: float | None,
    process: str | None = None,
) -> SweepPoint:
    """One point: the program (text) emulated on ``inputs`` at FIFO ``depth`` (energy and
    area at ``process``, default the table's own, 45 nm)."""
    program = parse(text)
    machine = program.machine
    energy = EnergyModel.default(process)
    config = EmulatorConfig(fifo_depth=depth, clock_mhz=clock_mhz, energy=energy)
    point = SweepPoint(pes=machine.pes, fifo_depth=depth, clock_mhz=clock_mhz or machine.clock_mhz)
    try:
        batch = run_batch(program, _named(program, inputs), config)
    except EiecError as error:
        point.error = str(error)
        return point
    stats = batch.stats
    layers: dict[str, dict[str, Any]] = {}
    for run in batch.runs:
        for total in run.layer_totals:
            entry = layers.setdefault(
                total.layer, {"layer": total.layer, "cycles": 0, "ideal_cycles": 0.0, "_eff": []}
            )
            entry["cycles"] += total.cycles
            entry["ideal_cycles"] += total.ideal_cycles
            entry["_eff"].append((total.load_efficiency, total.alu_utilization))
    for entry in layers.values():
        pairs = entry.pop("_eff")
        entry["load_efficiency"] = float(np.mean([p[0] for p in pairs]))
        entry["alu_utilization"] = float(np.mean([p[1] for p in pairs]))
    point.cycles = stats.cycles
    point.time_us = stats.time_us
    point.load_efficiency = stats.load_efficiency
    point.alu_utilization = stats.alu_utilization
    point.energy_pj = stats.energy_pj
    point.energy_per_inference_pj = stats.energy_per_inference_pj
    point.power_mw = stats.power_mw
    point.gops = stats.gops
    point.gops_per_w = stats.gops_per_w
    point.area_mm2 = stats.chip_area_mm2
    point.compute_cycles = stats.cycles - sum(run.dram_stall_cycles for run in batch.runs)
    point.ideal_cycles = float(sum(run.ideal_cycles for run in batch.runs))
    point.layers = list(layers.values())
    point.warnings = [
        {"what": what, "fix": fix} for what, fix in saturation_warnings(program, batch.runs)
    ]
    return point


def _named(program: Any, inputs: Mapping[str, np.ndarray] | np.ndarray) -> Mapping[str, np.ndarray]:
    if not isinstance(inputs, np.ndarray):
        return inputs
    if len(program.inputs) != 1:
        raise InputError(
            f"the program has {len(program.inputs)} inputs; got one array",
            where=program.source,
            fix="pass a dict of input name -> array (--input NAME=X.npy)",
        )
    return {program.inputs[0].name: inputs}


def _with_machine(options: CompileOptions, pes: int, settings: Settings) -> CompileOptions:
    return replace(options, machine=replace(options.machine, pes=pes, **dict(settings)))


def _failed(pes: int, depth: int, clock: float, settings: Settings, error: str) -> SweepPoint:
    return SweepPoint(
        pes=pes, fifo_depth=depth, clock_mhz=clock, settings=dict(settings), error=error
    )


def sweep(
    model: str | Path | onnx.ModelProto,
    inputs: Mapping[str, np.ndarray] | np.ndarray,
    pes: Sequence[int] = DEFAULT_PES,
    fifo_depths: Sequence[int] = DEFAULT_DEPTHS,
    options: CompileOptions | None = None,
    engine: Engine = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = False,
    settings: Mapping[str, Sequence[int | float]] | None = None,
    process: str | None = None,
) -> SweepResult:
    """Compile ``model`` for each PE count and combination of ``settings`` (machine field ->
    values, e.g. ``{"spmat_sram": [65536, 131072]}``) and emulate ``inputs`` at each FIFO depth.

    ``options``: the compile options (their machine is the base; its PE count, FIFO depth and
    swept fields are replaced by the sweep's). ``process``: of the energy and area figures.
    ``workers``: processes (local) or CPUs of a local Ray (default: the machine's cores).
    """
    from eiec.compiler import CompileOptions  # lazy: TVM

    options = options or CompileOptions()
    if engine not in ENGINES:  # before any compile
        raise EiecError(f"unknown engine {engine!r}", fix="use --engine local or --engine ray")
    counts, depths = _distinct("--pes", pes), _distinct("--fifo-depth", fifo_depths)
    combos = _combinations(settings or {}, options.machine)
    workers = workers or os.cpu_count() or 1
    blob: bytes | str = (
        model.SerializeToString() if not isinstance(model, str | Path) else str(model)
    )
    start = time.perf_counter()
    runner = open_engine(engine, workers, address)
    points: dict[tuple[int, int, int], SweepPoint] = {}
    machines = len(counts) * len(combos)
    aborted = True
    try:
        with _progress(progress, machines * (1 + len(depths))) as advance:
            shared_inputs = runner.put(inputs)
            pending: dict[Any, tuple[str, int, int, int]] = {
                runner.submit(compile_task, blob, options, n, combo): ("compile", n, c, 0)
                for n in counts
                for c, combo in enumerate(combos)
            }
            while pending:
                done, _ = runner.wait(set(pending))
                for handle in done:
                    kind, n, c, depth = pending.pop(handle)
                    value = runner.result(handle)
                    advance()
                    if kind == "emulate":
                        value.settings = dict(combos[c])
                        points[n, c, depth] = value
                    elif value.startswith("error: "):
                        clock = dict(combos[c]).get("clock_mhz", options.machine.clock_mhz)
                        for d in depths:
                            error = value.removeprefix("error: ")
                            points[n, c, d] = _failed(n, d, float(clock), combos[c], error)
                            advance()
                    else:
                        text = runner.put(value)
                        for d in depths:
                            job = runner.submit(emulate_task, text, shared_inputs, d, None, process)
                            pending[job] = ("emulate", n, c, d)
        aborted = False
    finally:
        runner.close(abort=aborted)
    ordered = [points[n, c, d] for n in counts for c in range(len(combos)) for d in depths]
    _speedups(ordered, counts[0])
    return SweepResult(
        points=ordered,
        machine=replace(options.machine, pes=counts[0]),
        engine=engine,
        workers=workers,
        wall_s=time.perf_counter() - start,
    )


def _distinct(option: str, values: Iterable[int]) -> list[int]:
    values = list(values)
    if not values or any(isinstance(v, bool) or int(v) != v or v < 1 for v in values):
        raise EiecError(f"{option}: {values} is not a list of positive integers")
    return sorted(set(int(v) for v in values))


def _combinations(settings: Mapping[str, Sequence[int | float]], base: Machine) -> list[Settings]:
    """Every combination of the swept fields' values (each checked as a machine), in order."""
    for name in ("pes", "fifo_depth"):
        if name in settings:
            option = "--" + name.replace("_", "-")
            raise EiecError(
                f"the machine field {name} is swept by its own option",
                where="--set",
                fix=f"give {option} N,N,... instead",
            )
    names = list(settings)
    combos: list[Settings] = []
    for values in itertools.product(*(settings[name] for name in names)):
        combo = tuple(zip(names, values, strict=True))
        machine_from(dict(combo), base, where="--set " + ", ".join(f"{k}={v}" for k, v in combo))
        combos.append(combo)
    return combos


def _speedups(points: list[SweepPoint], smallest: int) -> None:
    def key(p: SweepPoint) -> tuple:
        return (p.fifo_depth, tuple(p.settings.items()))

    base = {key(p): p.cycles for p in points if p.pes == smallest and p.cycles}
    for point in points:
        reference = base.get(key(point))
        if point.cycles and reference:
            point.speedup = reference / point.cycles


class _progress:
    """A rich progress bar over ``total`` tasks (or nothing)."""

    def __init__(self, show: bool, total: int) -> None:
        self.show, self.total, self.bar = show, total, None

    def __enter__(self) -> Callable[[], None]:
        if not self.show:
            return lambda: None
        from eiec.console import progress_bar  # lazy: rich, only with a progress bar

        self.bar = progress_bar()
        self.bar.start()
        task = self.bar.add_task("sweeping", total=self.total)
        return lambda: self.bar.advance(task) if self.bar else None

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
