"""The EIE emulator: executes a Program instruction by instruction, observed by the cycle model.

emulator = Emulator(program, EmulatorConfig(fifo_depth=4))
result = emulator.run({"x": x})          # or: emulator.reset({"x": x}); emulator.step() ...
result.outputs["y"], result.stats.cycles
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from eiec.emulator.arith import TABLE_FUNCTIONS, Arithmetic, FixedArith, FloatArith
from eiec.emulator.config import EmulatorConfig
from eiec.emulator.cycles import CycleModel
from eiec.emulator.events import Event, Observer, Probe
from eiec.emulator.layers import LayerTables, program_tables
from eiec.emulator.ports import check_inputs, check_lane_inputs, data_words
from eiec.emulator.semantics import HANDLERS, Context
from eiec.emulator.state import MachineState
from eiec.emulator.stats import Stats, StatsCollector
from eiec.errors import EmulatorError
from eiec.isa.program import Instruction, Program, View


@dataclass
class RunResult:
    """What a run produced: ``outputs`` (float32, the ports' shapes), ``buffers`` (float32 final
    contents of every buffer, rows x cols, values not words) and ``stats``."""

    outputs: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray]
    stats: Stats


class Emulator:
    """Runs ``program`` on the machine of its header (FIFO depth and clock overridable).

    Layer tables are built once here (or given, as ``eiec.emulator.image.load_image`` makes
    them); ``reset`` loads inputs, ``step`` executes one
    instruction, ``run`` does both until ``halt``. Observers receive every executed instruction
    with its timing from the cycle model (see ``eiec.emulator.events.Observer``); probes see the
    values before and after it (``eiec.emulator.events.Probe``, e.g. the error bound of
    ``eiec.emulator.bounds``).
    """

    def __init__(
        self,
        program: Program,
        config: EmulatorConfig | None = None,
        observers: Iterable[Observer] = (),
        probes: Iterable[Probe] = (),
        tables: Mapping[str, LayerTables] | None = None,
    ) -> None:
        self.program = program
        self.config = (config or EmulatorConfig()).resolve(program.machine)
        self.arith: Arithmetic = (
            FixedArith(acc_bits=self.config.acc_bits)
            if self.config.arith == "fixed16"
            else FloatArith()
        )
        self._check_program()
        if tables is None:
            tables = program_tables(program)
        elif set(tables) != set(program.layers):
            raise ValueError("tables must hold exactly the program's layers")
        self.tables = dict(tables)
        self._words = {name: data_words(buf) for name, buf in program.buffers.items()}
        self.context = Context(program, self.tables, self.arith)
        self.cycle_model = CycleModel(self.config)
        self.collector = StatsCollector(self.config)
        self.observers: tuple[Observer, ...] = (self.collector, *observers)
        self.probes: tuple[Probe, ...] = tuple(probes)
        self.state: MachineState | None = None

    def _check_program(self) -> None:
        pes = self.program.machine.pes
        for layer in self.program.layers.values():
            if layer.pes != pes:
                raise EmulatorError(
                    f"layer {layer.name} is stored for {layer.pes} PEs, the machine has {pes}",
                    where=str(layer.loc or self.program.source),
                    fix="recompile the program for the machine's PE count",
                )
        if self.config.arith == "float32":
            for table in self.program.tables.values():
                if table.fn not in TABLE_FUNCTIONS:
                    raise EmulatorError(
                        f"table {table.name} samples {table.fn!r}, which float32 mode cannot "
                        "evaluate",
                        where=str(table.loc or self.program.source),
                        fix=f"use one of {', '.join(TABLE_FUNCTIONS)}, or fixed16 mode",
                    )

    def reset(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Start a run: buffers from their initial contents, inputs quantised into theirs."""
        checked = check_inputs(self.program, dict(inputs))
        self._load({name: array.ravel() for name, array in checked.items()}, None)
        for probe in self.probes:
            probe.start(checked, self.values)

    def reset_lanes(self, inputs: Mapping[str, np.ndarray], count: int | None = None) -> None:
        """Start a lockstep batch: one lane per sample of ``inputs`` (by port, lanes x the
        port's shape; ``count`` lanes, needed for a program without inputs), every array of the
        state with a leading lane axis (``MachineState``).
        Each instruction then runs once for all lanes; ``lane_results`` gives each lane's run,
        equal to the sample run alone. The emulator's observers must be its statistics only;
        its probes see the lanes' values with the lane axis (and these inputs)."""
        if len(self.observers) > 1:
            raise ValueError("a lockstep batch is observed by its statistics only")
        lanes = check_lane_inputs(self.program, inputs, count)
        self._load(
            {name: np.asarray(array).reshape(lanes, -1) for name, array in inputs.items()}, lanes
        )
        for probe in self.probes:
            probe.start(inputs, self.values)

    def _load(self, inputs: Mapping[str, np.ndarray], lanes: int | None) -> None:
        """A fresh state of ``lanes`` lanes (or one run) holding the (flattened) ``inputs``."""
        arith = self.arith
        lead = () if lanes is None else (lanes,)
        buffers = {}
        for name, buf in self.program.buffers.items():
            if buf.init is None:
                buffers[name] = np.zeros((*lead, buf.size), dtype=arith.word_dtype)
            else:
                buffers[name] = np.broadcast_to(
                    arith.constant(buf.init, buf.frac), (*lead, buf.size)
                ).copy()
        self.cycle_model.reset(lanes)
        self.collector.reset(lanes)
        for observer in self.observers[1:]:
            observer.reset()
        for port in self.program.inputs:
            buf = self.program.buffers[port.buffer]
            words, saturations = arith.quantize(inputs[port.name], buf.frac)
            buffers[port.buffer][..., self._words[port.buffer]] = words
            self.collector.add_input_saturations(port.name, saturations)
        self.state = MachineState(buffers=buffers, lanes=lanes)

    def values(self, view: View) -> np.ndarray:
        """A view's current contents as real values (float64; lanes x words for a batch)."""
        if self.state is None:
            raise EmulatorError(
                "the emulator has no inputs yet",
                where=self.program.source,
                fix="call reset(inputs) (or run(inputs)) before reading values",
            )
        start = self.program.view_offset(view)
        words = self.state.buffers[view.buffer][..., start : start + self.program.view_length(view)]
        frac = self.program.buffers[view.buffer].frac
        return self.arith.to_host(words, frac).astype(np.float64)

    def sibling(self) -> Emulator:
        """An emulator of the same program and configuration sharing these layer tables, with
        its own state, cycle model and statistics, and no other observers or probes (one
        sample of a lockstep batch)."""
        other = copy.copy(self)
        other.cycle_model = CycleModel(self.config)
        other.collector = StatsCollector(self.config, self.collector)
        other.observers = (other.collector,)
        other.probes = ()
        other.state = None
        return other

    def next_instruction(self) -> Instruction | None:
        """The instruction ``step`` would execute; None once the program has halted."""
        state = self.state
        if state is None:
            raise EmulatorError(
                "the emulator has no inputs yet",
                where=self.program.source,
                fix="call reset(inputs) (or run(inputs)) before step()",
            )
        if state.halted:
            return None
        if state.pc >= len(self.program.text):
            raise EmulatorError(
                "the program ran past its last instruction without a halt",
                where=self.program.source,
                fix="end the instruction stream with halt",
            )
        return self.program.text[state.pc]

    def step(self) -> Instruction | None:
        """Execute the next instruction and return it; None once the program has halted."""
        instruction = self.next_instruction()
        if instruction is None:
            return None
        state = self.state
        assert state is not None
        for probe in self.probes:
            probe.before(instruction, self.values)
        event = HANDLERS[type(instruction)](self.context, state, instruction, state.pc)
        self.retire(event)
        return instruction

    def retire(self, event: Event) -> None:
        """Finish an executed instruction: advance the pc, time it, tell the observers and
        probes."""
        assert self.state is not None
        self.state.pc += 1
        timing = self.cycle_model.time(event)
        for observer in self.observers:
            observer.observe(event, timing)
        for probe in self.probes:
            probe.after(event, self.values)

    def run(self, inputs: Mapping[str, np.ndarray]) -> RunResult:
        """``reset(inputs)``, then ``step()`` until ``halt``."""
        self.reset(inputs)
        while self.step() is not None:
            pass
        return self.result()

    def result(self) -> RunResult:
        """Outputs, buffers and statistics of the run so far."""
        if self.state is not None and self.state.lanes is not None:
            raise EmulatorError(
                "the emulator runs a lockstep batch",
                where=self.program.source,
                fix="call lane_results() for each lane's run",
            )
        buffers = self._host_buffers()
        outputs = {
            port.name: buffers[port.buffer].reshape(port.shape).copy()
            for port in self.program.outputs
        }
        return RunResult(outputs=outputs, buffers=buffers, stats=self.collector.finish())

    def lane_outputs(self) -> dict[str, np.ndarray]:
        """Every lane's outputs so far (a lockstep batch), lanes x the port's shape."""
        return self._lane_outputs(
            self._host_buffers({port.buffer for port in self.program.outputs})
        )

    def _lane_outputs(self, buffers: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert self.state is not None and self.state.lanes is not None, "reset_lanes() first"
        return {
            port.name: buffers[port.buffer].reshape(-1, *port.shape)
            for port in self.program.outputs
        }

    def lane_results(self) -> list[RunResult]:
        """Each lane's run so far (a lockstep batch: ``reset_lanes``)."""
        buffers = self._host_buffers()
        outputs = self._lane_outputs(buffers)
        return [
            RunResult(
                outputs={name: value[lane].copy() for name, value in outputs.items()},
                buffers={name: value[lane] for name, value in buffers.items()},
                stats=stats,
            )
            for lane, stats in enumerate(self.collector.finish_lanes())
        ]

    def _host_buffers(self, names: set[str] | None = None) -> dict[str, np.ndarray]:
        """Every buffer's (or those ``names``) words as host values, rows x cols (lanes x rows
        x cols)."""
        if self.state is None:
            raise EmulatorError(
                "the emulator has not run",
                where=self.program.source,
                fix="call run(inputs) first",
            )
        buffers = {}
        for name, buf in self.program.buffers.items():
            if names is not None and name not in names:
                continue
            words = self.state.buffers[name][..., self._words[name]]
            shape = (*self.state.lead, buf.rows, buf.cols)
            buffers[name] = self.arith.to_host(words, buf.frac).reshape(shape)
        return buffers
