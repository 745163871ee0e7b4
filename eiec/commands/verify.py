"""``eiec verify MODEL.onnx PROG.eie --input X.npy``: the emulator against TVM's CPU build.

MODEL is the compressed model PROG was compiled from (``eiec compile --export-onnx`` writes
it); ``--original`` adds the comparison with the model before compression. Exit 0 when every
output element is within its fixed-point error bound, 1 with the report (which names the layer
where emulator and CPU first diverge) and its first problem on stderr when not. See
``eiec.runtime.verify``.
"""

from __future__ import annotations

import argparse
import json

from eiec.commands.argtypes import input_file
from eiec.commands.machine_options import FIFO_DEPTH
from eiec.commands.options import (
    add_arith_option,
    add_input_option,
    add_json_option,
    add_quiet_option,
    read_inputs,
    verdict,
)
from eiec.fileio import MODEL, PROGRAM
from eiec.isa import load


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` subcommand."""
    parser = subparsers.add_parser(
        "verify",
        help="check an .eie program's emulated output against TVM's CPU output",
        description="Emulate PROG.eie on the inputs and compare with TVM's CPU build of "
        "MODEL.onnx (the compressed model the program was compiled from) within the error "
        "bound derived from the program's fixed-point formats. Exit 0 within tolerance, 1 not.",
    )
    parser.add_argument(
        "model", type=input_file(MODEL), metavar="MODEL.onnx", help="the compressed model"
    )
    parser.add_argument(
        "program", type=input_file(PROGRAM), metavar="PROG.eie", help="the compiled program"
    )
    add_input_option(parser)
    parser.add_argument(
        "--original",
        type=input_file(MODEL),
        metavar="ORIG.onnx",
        help="the model before compression (optional)",
    )
    parser.add_argument(
        "--classifier",
        action="store_true",
        help="report top-1 agreement (default: when the model has Softmax/ArgMax)",
    )
    add_arith_option(parser)
    parser.add_argument(
        "--fifo-depth", type=FIFO_DEPTH, help="activation queue depth, 1..1024 (default: header)"
    )
    add_json_option(parser)
    add_quiet_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Verify and print the report; 0 when it passed, 1 when not."""
    from eiec.frontend.checks import check_program_matches  # lazy: onnx
    from eiec.frontend.load import load_model  # lazy: onnx

    # Checked before TVM is imported.
    proto = load_model(args.model)
    if args.original is not None:
        load_model(args.original)
    program = load(args.program)
    check_program_matches(proto, program, args.program)
    inputs = read_inputs(args.input)

    from eiec.emulator import EmulatorConfig  # lazy: emulator, for start-up
    from eiec.runtime.verify import verify  # lazy: TVM

    report = verify(
        args.model,
        program,
        inputs,
        original=args.original,
        config=EmulatorConfig(fifo_depth=args.fifo_depth, arith=args.arith),
        classifier=True if args.classifier else None,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    elif not (args.quiet and report.passed):
        print(report.summary())
    return verdict("eiec verify", report)
