"""``eiec emulate PROG.eie --input X.npy``: run a program on the emulator, print statistics.

Inputs are .npy files, one per input port (``NAME=FILE`` when the program has several). An
array with the port's shape is one run; one with B samples along the port's batch axis is a
batch of B runs. Outputs (float32 .npy) are written atomically. This module must not import
TVM: ``eiec emulate`` starts in well under a second.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from eiec.commands.argtypes import (
    PortFile,
    input_file,
    output_file,
    port_input,
    port_output,
    text_output_file,
)
from eiec.commands.machine_options import CLOCK_MHZ, DRAM_GBPS, DRAM_LATENCY_NS, FIFO_DEPTH
from eiec.commands.options import (
    add_arith_option,
    add_json_option,
    add_process_option,
    add_quiet_option,
    load_npy,
)
from eiec.errors import InputError, warn
from eiec.fileio import FILE, NPY, PROGRAM, save_npy_atomic, write_atomic
from eiec.isa.program import Port, Program


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``emulate`` subcommand."""
    parser = subparsers.add_parser(
        "emulate",
        help="run an .eie program on the cycle-counting EIE emulator",
        description="Run an .eie program on the EIE emulator: outputs, cycles, time, PE "
        "utilisation, energy (isa/SPEC.md §5, §6).",
    )
    parser.add_argument(
        "program", type=input_file(PROGRAM), metavar="PROG.eie", help="the program to run"
    )
    parser.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        type=port_input(NPY),
        metavar="[NAME=]X.npy",
        help="an input tensor (.npy); NAME= selects the port when there are several",
    )
    parser.add_argument(
        "--output",
        "-o",
        action="append",
        default=[],
        type=port_output,
        metavar="[NAME=]Y.npy",
        help="where to save an output tensor (.npy, float32)",
    )
    add_json_option(parser, "the statistics")
    parser.add_argument(
        "--stats-out",
        type=text_output_file,
        metavar="FILE.json",
        help="also write the JSON statistics to a file",
    )
    parser.add_argument(
        "--fifo-depth", type=FIFO_DEPTH, help="entries a PE queue holds, 1..1024 (default: header)"
    )
    parser.add_argument(
        "--clock-mhz", type=CLOCK_MHZ, help="clock in MHz, 0.001..1e5 (default: header)"
    )
    parser.add_argument(
        "--dram-gbps",
        type=DRAM_GBPS,
        metavar="GB/S",
        help="DRAM bandwidth for streamed weights, 0 < X <= 1e9 GB/s (default: header)",
    )
    parser.add_argument(
        "--dram-latency-ns",
        type=DRAM_LATENCY_NS,
        metavar="NS",
        help="DRAM first-word latency of each chunk transfer, 0..1e9 ns (default: header)",
    )
    add_arith_option(parser)
    parser.add_argument(
        "--energy",
        type=input_file(FILE),
        metavar="TABLE.json",
        help="energy and area table (default: emulator/energy_45nm.json, from the paper)",
    )
    add_process_option(parser)
    parser.add_argument(
        "--trace", action="store_true", help="print each instruction with its cycle span"
    )
    parser.add_argument("--progress", action="store_true", help="progress bar for batches")
    parser.add_argument(
        "--plot",
        type=output_file,
        metavar="FILE.png",
        help="save a picture of each PE's cycles and each MAC's timing (needs eiec[plot])",
    )
    add_quiet_option(parser)
    parser.set_defaults(run=run)


def _bind(specs: list[PortFile], ports: list[Port], kind: str) -> dict[str, str]:
    """``[NAME=]FILE`` arguments -> {port name: file}; a bare FILE needs a single port."""
    names = [port.name for port in ports]
    bound: dict[str, str] = {}
    for spec in specs:
        name, path = spec.name, spec.path
        if name is None:
            if len(ports) != 1:
                raise InputError(
                    f"--{kind} {spec} does not name a port and the program has "
                    f"{len(ports)} {kind}s ({', '.join(names) or 'none'})",
                    where=f"--{kind}",
                    fix=f"write --{kind} NAME={spec}",
                )
            name = names[0]
        if name not in names:
            raise InputError(
                f"the program has no {kind} {name!r}",
                where=f"--{kind} {spec}",
                fix=f"its {kind}s are: {', '.join(names) or 'none'}",
            )
        if name in bound:
            raise InputError(
                f"{kind} {name!r} is given twice", where=f"--{kind} {spec}", fix="give it once"
            )
        bound[name] = path
    return bound


def _inputs(program: Program, specs: list[str]) -> tuple[dict[str, np.ndarray], bool]:
    """The input arrays by port, and whether any of them is a batch."""
    from eiec.emulator.ports import (  # lazy: emulator, for start-up
        batch_size,
        check_dtype_and_values,
    )

    files = _bind(specs, program.inputs, "input")
    missing = [port.name for port in program.inputs if port.name not in files]
    if missing:
        shapes = ", ".join(f"{p.name} {list(p.shape)}" for p in program.inputs)
        raise InputError(
            f"missing input {missing[0]!r}",
            where=program.source,
            fix=f"give --input NAME=X.npy for every input ({shapes})",
        )
    arrays, batched = {}, False
    for port in program.inputs:
        path = files[port.name]
        array = load_npy(path)
        check_dtype_and_values(port, array, path)
        batched |= batch_size(port, array, path) is not None
        arrays[port.name] = array
    return arrays, batched


def run(args: argparse.Namespace) -> int:
    """Emulate, save the outputs, print the statistics."""
    from eiec.emulator import (  # lazy: emulator
        Emulator,
        EmulatorConfig,
        EnergyModel,
        Tracer,
        load_image,
        run_batch,
    )

    image = load_image(args.program)
    program = image.program
    arrays, batched = _inputs(program, args.input)
    outputs = _bind(args.output, program.outputs, "output")
    energy = (
        EnergyModel.from_json(args.energy, args.process)
        if args.energy
        else EnergyModel.default(args.process)
    )
    config = EmulatorConfig(
        fifo_depth=args.fifo_depth,
        clock_mhz=args.clock_mhz,
        dram_gbps=args.dram_gbps,
        dram_latency_ns=args.dram_latency_ns,
        arith=args.arith,
        energy=energy,
    )
    trace_to = sys.stderr if args.json else sys.stdout
    observers = [Tracer(trace_to, samples=batched)] if args.trace else []
    if batched:
        batch = run_batch(
            program,
            arrays,
            config,
            progress=args.progress,
            observers=observers,
            tables=image.tables,
        )
        results, stats, runs = batch.outputs, batch.stats, batch.runs
        report = {"batch": stats.to_json(), "runs": [s.to_json() for s in batch.runs]}
    else:
        result = Emulator(program, config, observers, tables=image.tables).run(arrays)
        results, stats, runs = result.outputs, result.stats, [result.stats]
        report = stats.to_json()
    from eiec.emulator.ports import saturation_warnings  # lazy: emulator

    for what, fix in saturation_warnings(program, runs):
        warn(what, where=args.program, fix=fix)
    if args.plot:
        from eiec.emulator.plot import plot_run  # lazy: matplotlib

        plot_run(runs, args.plot)
    for name, path in outputs.items():
        save_npy_atomic(path, results[name])
    text = json.dumps(report, indent=2)
    if args.stats_out:
        write_atomic(args.stats_out, text + "\n")
    if args.json:
        print(text)
    elif not args.quiet:
        from eiec.console import print_table  # lazy: rich

        print_table(stats.render())
    return 0
