"""The error-bound probe of a lockstep batch: one probe per lane against one probe of all lanes.

    .venv/bin/python benchmarks/bench_lane_bounds.py [--lanes 64] [--rows 128] [--cols 512]

A random FC layer (``--cols`` inputs, ``--rows`` outputs, 10% dense, bias, 64 PEs) and
``--lanes`` samples run in lockstep on sibling emulators; the machine's values before and after
each instruction are recorded first, so only the probes are timed (start, then every
instruction's before and after), as the lockstep would drive them:

- **per lane**: one ``ErrorBounds`` per lane, every rule lane by lane (as a lockstep of
  one-run probes would drive them);
- **lanes**: one ``ErrorBounds(lanes=B)`` reading (B, n) views of the recorded values.

Both give every lane the same bounds bit for bit (checked here too). Best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from eiec.emulator.bounds import ErrorBounds
from eiec.emulator.emulator import Emulator
from eiec.emulator.events import Event
from eiec.isa.builder import fc_program, random_codes
from eiec.isa.program import Instruction, Machine, Program, View


class _Recorder:
    """Keeps each instruction's event and every buffer's values before and after it."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.events: list[Event] = []
        self.before_values: list[dict[str, np.ndarray]] = []
        self.after_values: list[dict[str, np.ndarray]] = []

    def _values(self) -> dict[str, np.ndarray]:
        program = self.emulator.program
        return {name: self.emulator.values(View(name)) for name in program.buffers}

    def start(self, inputs: object, read: object) -> None:
        pass

    def before(self, instruction: Instruction, read: object) -> None:
        self.before_values.append(self._values())

    def after(self, event: Event, read: object) -> None:
        self.events.append(event)
        self.after_values.append(self._values())


def _reader(program: Program, values: dict[str, np.ndarray]) -> Callable[[View], np.ndarray]:
    def read(view: View) -> np.ndarray:
        start = program.view_offset(view)
        return values[view.buffer][..., start : start + program.view_length(view)]

    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=64)
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--cols", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    codes = random_codes(rng, args.rows, args.cols, 0.1)
    book = np.concatenate([[0], rng.integers(-3000, 3000, 15)]).astype(np.int16)
    program = fc_program([codes], [book], [14], [10, 8], machine=Machine(pes=64), bias=True)
    port = program.inputs[0]
    samples = [{port.name: rng.normal(size=port.shape)} for _ in range(args.lanes)]
    lanes = [Emulator(program) for _ in samples]
    recorders = [_Recorder(lane) for lane in lanes]
    for lane, recorder, sample in zip(lanes, recorders, samples, strict=True):
        lane.probes = (recorder,)
        lane.run(sample)
    text = [event.instruction for event in recorders[0].events]
    stacked = {port.name: np.stack([sample[port.name] for sample in samples])}
    steps = []
    for index in range(len(text)):
        before = {
            n: np.stack([r.before_values[index][n] for r in recorders]) for n in program.buffers
        }
        after = {
            n: np.stack([r.after_values[index][n] for r in recorders]) for n in program.buffers
        }
        saturations = np.array([r.events[index].saturations for r in recorders], dtype=np.int64)
        steps.append((before, after, replace(recorders[0].events[index], saturations=saturations)))
    weights: dict = {}

    lane_reads = [
        [
            (
                _reader(program, {n: v[lane] for n, v in before.items()}),
                _reader(program, {n: v[lane] for n, v in after.items()}),
            )
            for lane in range(len(samples))
        ]
        for before, after, _ in steps
    ]

    def per_lane() -> list[ErrorBounds]:
        probes = [ErrorBounds(program, _weights=weights) for _ in samples]
        for probe, sample, (read, _) in zip(probes, samples, lane_reads[0], strict=True):
            probe.start(sample, read)
        for index, instruction in enumerate(text):
            reads = lane_reads[index]
            for probe, recorder, (before, after) in zip(probes, recorders, reads, strict=True):
                probe.before(instruction, before)
                probe.after(recorder.events[index], after)
        return probes

    def together() -> ErrorBounds:
        probe = ErrorBounds(program, lanes=len(samples), _weights=weights)
        probe.start(stacked, _reader(program, steps[0][0]))
        for (before, after, event), instruction in zip(steps, text, strict=True):
            probe.before(instruction, _reader(program, before))
            probe.after(event, _reader(program, after))
        return probe

    per_lane(), together()  # the layer's sparse matrices built once, outside the timing
    times = {}
    for name, run in (("per lane", per_lane), ("lanes", together)):
        best = np.inf
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = run()
            best = min(best, time.perf_counter() - start)
        times[name] = (best, result)
    probes, probe = times["per lane"][1], times["lanes"][1]
    for index, alone in enumerate(probes):
        lane = probe.lane(index)
        assert all(
            getattr(lane, t)[b].tobytes() == getattr(alone, t)[b].tobytes()
            for t in ("words", "spreads", "saturated", "known")
            for b in program.buffers
        )
    print(
        f"{args.lanes} lanes, FC {args.cols} -> {args.rows} (10% dense, {len(text)} instructions),"
        " probe time (start + every instruction's before and after), best of "
        f"{args.repeat}:"
    )
    for name, (best, _) in times.items():
        print(f"  {name:9s} {best * 1e3:8.2f} ms")
    print(
        f"  speed-up  {times['per lane'][0] / times['lanes'][0]:8.1f}x (bounds equal bit for bit)"
    )


if __name__ == "__main__":
    main()
