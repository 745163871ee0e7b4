"""``eiec sweep MODEL.onnx --input X.npy --pes 1,2,...,256 --fifo-depth 1,2,4,8,16 [--set
FIELD=V,V,...]``: the design space of one model (cycles, energy, power, area, GOP/s per point),
on a process pool or on Ray (``eiec.runtime.sweep``)."""

from __future__ import annotations

import argparse
import importlib.util
import json

from eiec.commands.argtypes import (
    field_values,
    input_file,
    int_list,
    output_folder,
    text_output_file,
)
from eiec.commands.options import (
    add_compile_options,
    add_engine_options,
    add_input_option,
    add_process_option,
    add_quiet_option,
    options_from_args,
    precheck_model,
    read_inputs,
)
from eiec.console import print_table
from eiec.errors import InputError, warn
from eiec.fileio import MODEL, write_atomic

#: The files ``--plot DIR`` writes (``SweepResult.plot``).
PLOTS = ("speedup.png", "load_efficiency.png", "power.png", "machine_fields.png")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` subcommand."""
    parser = subparsers.add_parser(
        "sweep",
        help="emulate one model over PE counts, FIFO depths and machine fields (locally or on Ray)",
        description="Compile MODEL once per PE count and combination of --set machine fields, "
        "and emulate X at every FIFO depth (the depth is emulate-time); print cycles, time, "
        "speed-up over the smallest PE count, load efficiency, ALU utilisation, energy per "
        "inference, average power, GOP/s, GOP/s/W, chip area and per-layer cycles per point.",
    )
    parser.add_argument("model", type=input_file(MODEL), metavar="MODEL.onnx", help="the model")
    add_input_option(parser)
    parser.add_argument(
        "--pes",
        dest="sweep_pes",
        type=int_list(1, 4096),
        default=[1, 2, 4, 8, 16, 32, 64, 128, 256],
        metavar="N,N,...",
        help="PE counts (default 1,2,4,...,256)",
    )
    parser.add_argument(
        "--fifo-depth",
        dest="sweep_depths",
        type=int_list(1, 1024),
        default=[1, 2, 4, 8, 16],
        metavar="D,D,...",
        help="activation queue depths (default 1,2,4,8,16)",
    )
    parser.add_argument(
        "--set",
        dest="sweep_fields",
        action="append",
        default=[],
        type=field_values,
        metavar="FIELD=V,V,...",
        help="also sweep a machine field (eiec machines --fields), e.g. --set spmat_sram=64K,"
        "128K,256K (K, M, G: x1024); repeat for several fields (every combination is a point)",
    )
    add_process_option(parser)
    add_compile_options(parser, sweep=True)
    add_engine_options(parser, "the compiles and design points")
    parser.add_argument(
        "--json", type=text_output_file, metavar="OUT.json", help='write {"points"} (- stdout)'
    )
    parser.add_argument("--csv", type=text_output_file, metavar="OUT.csv", help="write the points")
    parser.add_argument(
        "--plot",
        type=output_folder(*PLOTS),
        metavar="DIR",
        help="write speedup.png, load_efficiency.png, power.png (and with --set "
        "machine_fields.png) into DIR (made when missing)",
    )
    add_quiet_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Sweep, print the table, write the outputs."""
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise InputError(
            "cannot plot: matplotlib is not installed",
            where=f"--plot {args.plot}",
            fix="pip install 'eiec[plot]', or leave out --plot",
        )
    settings: dict[str, list[int | float]] = {}
    for name, values in args.sweep_fields:
        if name in settings:
            raise InputError(
                f"the machine field {name} is given twice", where="--set", fix="give it once"
            )
        if getattr(args, name, None) is not None:
            raise InputError(
                f"the machine field {name} is given both as --{name.replace('_', '-')} and in "
                "--set",
                where="--set",
                fix="give it once",
            )
        settings[name] = values
    inputs = read_inputs(args.input)
    precheck_model(args, inputs=inputs)  # the model's own errors once, before any point

    from eiec.runtime.sweep import sweep  # lazy: start-up of the other commands

    options = options_from_args(args)
    result = sweep(
        args.model,
        inputs,
        pes=args.sweep_pes,
        fifo_depths=args.sweep_depths,
        options=options,
        engine=args.engine,
        workers=args.workers,
        address=args.address,
        progress=not args.quiet,
        settings=settings,
        process=args.process,
    )
    for what, fix in result.warnings():
        warn(what, where=args.model, fix=fix)
    if args.json:
        write_atomic(args.json, json.dumps(result.to_json(), indent=2) + "\n")
    if args.csv:
        write_atomic(args.csv, result.to_csv())
    if args.plot:
        result.plot(args.plot)
    if not args.quiet:
        print_table(result.table())
    return 0
