"""``eiec verify MODEL.onnx PROG.eie --input X.npy``: the emulator against TVM's CPU build.

MODEL is the compressed model PROG was compiled from (``eiec compile --export-onnx`` writes
it); ``--original`` adds the comparison with the model before compression. Exit 0 when every
output element is within its fixed-point error bound, 1 with the report (which names the layer
where emulator and CPU first diverge) when not. See ``eiec.runtime.verify``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from eiec.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` subcommand."""
    parser = subparsers.add_parser(
        "verify",
        help="check an .eie program's emulated output against TVM's CPU output",
        description="Emulate PROG.eie on the inputs and compare with TVM's CPU build of "
        "MODEL.onnx (the compressed model the program was compiled from) within the error "
        "bound derived from the program's fixed-point formats. Exit 0 within tolerance, 1 not.",
    )
    parser.add_argument("model", metavar="MODEL.onnx", help="the compressed model")
    parser.add_argument("program", metavar="PROG.eie", help="the compiled program")
    add_input_arguments(parser)
    parser.add_argument(
        "--original", metavar="ORIG.onnx", help="the model before compression (optional)"
    )
    parser.add_argument(
        "--classifier",
        action="store_true",
        help="report top-1 agreement (default: when the model has Softmax/ArgMax)",
    )
    parser.add_argument(
        "--arith",
        choices=("fixed16", "float32"),
        default="fixed16",
        help="emulator arithmetic (default: the machine's fixed16)",
    )
    parser.add_argument("--fifo-depth", type=int, help="activation queue depth (default: header)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """``--input [NAME=]X.npy`` (repeatable), shared with ``eiec run``."""
    parser.add_argument(
        "--input",
        "-i",
        action="append",
        required=True,
        metavar="[NAME=]X.npy",
        help="input tensor (.npy), a batch along the first axis; NAME= for several inputs",
    )


def read_inputs(specs: list[str]) -> dict[str, np.ndarray] | np.ndarray:
    """``[NAME=]FILE`` arguments -> one array, or {name: array} when named."""
    from eiec.commands.emulate import load_npy

    bare = [spec for spec in specs if "=" not in spec]
    if bare and len(specs) > 1:
        raise InputError(
            f"--input {bare[0]} does not name its input and {len(specs)} inputs are given",
            where="--input",
            fix=f"write --input NAME={bare[0]}",
        )
    if bare:
        return load_npy(bare[0])
    named = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        named[name] = load_npy(path)
    return named


def run(args: argparse.Namespace) -> int:
    """Verify and print the report; 0 when it passed, 1 when not."""
    from eiec.emulator import EmulatorConfig
    from eiec.isa import load
    from eiec.runtime.verify import verify

    program = load(args.program)
    inputs = read_inputs(args.input)
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
    else:
        print(report.summary())
    return 0 if report.passed else 1
