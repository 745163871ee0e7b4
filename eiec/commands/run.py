"""``eiec run MODEL.onnx --input X.npy``: compile in memory, emulate a batch, verify, report.

Two paths (``eiec.runtime.run``): a model of FC/LSTM/GRU layers, possibly ending in a classifier
tail (Softmax, ArgMax, ArrayFeatureExtractor) that runs on the CPU, is compiled whole, emulated
and verified against TVM's CPU build of the compressed model; a model with ops EIE does not run
before or between its layers (convolutions, element-wise ops) runs through BYOC, its FC/LSTM/GRU
layers offloaded to EIE and each offloaded call checked against its compressed function. Both
print the compression report, cycles, time and energy per inference, the errors against the
original model run on the CPU and, with ``--labels``, accuracy. Exit 0 when within tolerance,
1 when not. Without ``--calibration`` or ``--input-range`` the activation formats are
calibrated on the run's own inputs, and the report says so (``"calibration": "inputs"``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from eiec.commands.argtypes import PortFile, input_file, port_output
from eiec.commands.options import (
    add_arith_option,
    add_compile_options,
    add_engine_options,
    add_input_option,
    add_json_option,
    add_quiet_option,
    load_npy,
    options_from_args,
    precheck_model,
    read_inputs,
    verdict,
)
from eiec.errors import InputError
from eiec.fileio import MODEL, NPY, save_npy_atomic


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="compile, emulate, verify and report on a batch of inputs in one go",
        description="Compile MODEL.onnx for EIE in memory, emulate every input sample (a "
        "batch along the input's batch axis: the first, or axis 1 of an LSTM's [T, B, F]), "
        "verify against TVM's CPU build, and print compression, "
        "cycles, energy and accuracy. Ops EIE does not run execute on the CPU: a classifier "
        "tail after the EIE part, or, through BYOC, any op before or between EIE layers. "
        "Exit 0 when within tolerance, 1 when not.",
    )
    parser.add_argument("model", type=input_file(MODEL), metavar="MODEL.onnx", help="the model")
    add_input_option(parser)
    parser.add_argument(
        "--labels",
        type=input_file(NPY),
        metavar="Y.npy",
        help="true classes, for accuracy: one per sample, or one target per token "
        "([samples, T]) of a sequence output [samples, T, V] (perplexity, next-token accuracy)",
    )
    parser.add_argument(
        "--output",
        "-o",
        action="append",
        default=[],
        type=port_output,
        metavar="[NAME=]Y.npy",
        help="where to save a model output (EIE + CPU, samples stacked); NAME= selects the "
        "output when there are several (default: the first)",
    )
    add_compile_options(parser)
    add_arith_option(parser)
    add_engine_options(
        parser,
        "the shards of the samples (models run through BYOC)",
        "shards of the samples, the first run in this process (default 1: all here; "
        "--engine ray: the CPUs)",
    )
    add_json_option(parser)
    add_quiet_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compile, emulate, verify, print; 0 when within tolerance."""
    inputs = read_inputs(args.input)
    labels = load_npy(args.labels) if args.labels else None
    if labels is not None and labels.dtype.kind not in "iu":
        raise InputError(
            f"labels have dtype {labels.dtype}", where=args.labels, fix="give integer classes"
        )
    precheck_model(args, inputs=inputs)

    from eiec.emulator import EmulatorConfig  # lazy: emulator, for start-up
    from eiec.runtime.run import run as run_model  # lazy: TVM

    progress = not (args.json or args.quiet)
    options = options_from_args(args, progress=progress)
    report = run_model(
        args.model,
        inputs,
        labels=labels,
        options=options,
        config=EmulatorConfig(arith=args.arith),
        progress=progress,
        calibrate_on_inputs=args.input_range is None,
        engine=args.engine,
        workers=args.workers or (1 if args.engine == "local" else os.cpu_count() or 1),
        address=args.address,
    )
    _save_outputs(args.output, report.outputs)
    warning = getattr(report, "warning", None)
    if warning:
        print(f"eiec run: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    elif not (args.quiet and report.passed):
        from eiec.console import console, print_table  # lazy: rich

        terminal = console()
        for table in report.tables():
            print_table(table, terminal)
        print(report.summary())
    return verdict("eiec run", report.verify)


def _save_outputs(files: list[PortFile], outputs: dict) -> None:
    """Write each ``--output`` (the named model output, or the first) atomically."""
    for item in files:
        name = item.name if item.name is not None else next(iter(outputs))
        if name not in outputs:
            raise InputError(
                f"the model has no output '{name}'",
                where="--output",
                fix=f"name one of {', '.join(outputs)}",
            )
        save_npy_atomic(item.path, outputs[name])
