"""``eiec run MODEL.onnx --input X.npy``: compile in memory, emulate a batch, verify, report.

Prints the compression report, cycles, time, ALU utilisation and energy per inference, the
verification against TVM's CPU build (compressed and original model) and, with ``--labels``,
accuracy before and after compression. A classifier tail EIE does not run (Softmax, ArgMax,
ArrayFeatureExtractor) runs on the CPU. Exit 0 when the emulator matched the compressed model
within tolerance, 1 when not. See ``eiec.runtime.run``.
"""

from __future__ import annotations

import argparse
import json

from eiec.commands.verify import add_input_arguments, read_inputs
from eiec.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="compile, emulate, verify and report on a batch of inputs in one go",
        description="Compile MODEL.onnx for EIE in memory, emulate every input sample (the "
        "first axis is the batch), verify against TVM's CPU build, and print compression, "
        "cycles, energy and accuracy. Exit 0 when within tolerance, 1 when not.",
    )
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    add_input_arguments(parser)
    parser.add_argument("--labels", metavar="Y.npy", help="true classes, for accuracy")
    # The options of ``eiec compile`` (same names, same defaults).
    parser.add_argument("--pes", type=int, default=64, metavar="N", help="PEs (default 64)")
    parser.add_argument(
        "--fifo-depth", type=int, default=8, metavar="D", help="activation queue depth (8)"
    )
    parser.add_argument(
        "--sparsity",
        default="0.9",
        metavar="S | LAYER=S,...",
        help="fraction of weights to prune, or per-layer LAYER=S values (default 0.9)",
    )
    parser.add_argument("--bits", type=int, default=4, metavar="B", help="index bits (4)")
    parser.add_argument(
        "--calibration", metavar="X.npy", help="sample inputs that set the activation formats"
    )
    parser.add_argument(
        "--input-range",
        type=float,
        default=8.0,
        metavar="R",
        help="without --calibration: inputs are assumed within +-R (default 8)",
    )
    parser.add_argument(
        "--arith",
        choices=("fixed16", "float32"),
        default="fixed16",
        help="emulator arithmetic (default: the machine's fixed16)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compile, emulate, verify, print; 0 when within tolerance."""
    from eiec.commands.compile import parse_sparsity
    from eiec.commands.emulate import load_npy
    from eiec.compiler import CompileOptions
    from eiec.emulator import EmulatorConfig
    from eiec.runtime.run import run as run_model

    sparsity, default = parse_sparsity(args.sparsity)
    options = CompileOptions(
        pes=args.pes,
        fifo_depth=args.fifo_depth,
        sparsity=sparsity,
        default_sparsity=default,
        bits=args.bits,
        calibration=load_npy(args.calibration) if args.calibration else None,
        input_range=args.input_range,
        progress=not args.json,
    )
    inputs = read_inputs(args.input)
    labels = load_npy(args.labels) if args.labels else None
    if labels is not None and labels.dtype.kind not in "iu":
        raise InputError(
            f"labels have dtype {labels.dtype}", where=args.labels, fix="give integer classes"
        )
    report = run_model(
        args.model,
        inputs,
        labels=labels,
        options=options,
        config=EmulatorConfig(arith=args.arith),
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        from rich.console import Console

        Console().print(report.compiled.report.table())
        print(report.summary())
    return 0 if report.passed else 1
