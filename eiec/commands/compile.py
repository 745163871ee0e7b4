"""``eiec compile MODEL.onnx -o PROG.eie``: compile an ONNX FC/LSTM model into an EIE program.

Prints the compression report (per layer and total; ``--json``: as JSON); writes the program,
and on request the compressed ONNX model and the report as JSON, each atomically.
"""

from __future__ import annotations

import argparse
import json
import sys

from eiec.commands.argtypes import input_file, output_file, text_output_file
from eiec.commands.options import (
    add_compile_options,
    add_json_option,
    add_quiet_option,
    options_from_args,
    precheck_model,
)
from eiec.fileio import MODEL, write_atomic
from eiec.isa import format_program
from eiec.isa.program import Program


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compile`` subcommand."""
    parser = subparsers.add_parser(
        "compile",
        help="compile an ONNX model of FC/LSTM layers into an EIE program",
        description="Compile an ONNX model of fully-connected and LSTM layers (Gemm, "
        "MatMul+Add, LSTM, Relu, ...) into an EIE program: magnitude pruning, k-means weight "
        "sharing, interleaved CSC over the PEs, 16-bit fixed point. Prints the compression "
        "report.",
    )
    parser.add_argument("model", type=input_file(MODEL), metavar="MODEL.onnx", help="the model")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=text_output_file,
        metavar="PROG.eie",
        help="the program (- for standard output)",
    )
    add_compile_options(parser)
    parser.add_argument(
        "--export-onnx", type=output_file, metavar="OUT.onnx", help="write the compressed model"
    )
    parser.add_argument(
        "--report-json",
        type=text_output_file,
        metavar="R.json",
        help="write the report as JSON (- for standard output)",
    )
    add_json_option(parser, "the report (as --report-json writes it) instead of the tables")
    add_quiet_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compile, print the report, write the outputs."""
    loaded = precheck_model(args, capacity=True)
    options = options_from_args(args, progress=not args.quiet)

    from eiec.codegen.streaming import stream_report, stream_table  # lazy: emulator, rich
    from eiec.compiler import compile_model  # lazy: TVM

    result = compile_model(loaded, options)  # loaded and checked once, by precheck_model
    if result.streamed and options.weights == "auto":
        print(streamed_note(result.program, result.streamed), file=sys.stderr)
    write_atomic(args.output, format_program(result.program))
    if args.export_onnx:
        write_atomic(args.export_onnx, result.compressed_model.SerializeToString())
    report = result.report.to_json()
    streaming = stream_report(result.program)
    if streaming:
        report["streaming"] = [entry.to_json() for entry in streaming]
    if result.training is not None:
        report["training"] = result.training.to_json()
    text = json.dumps(report, indent=2) + "\n"
    if args.report_json:
        write_atomic(args.report_json, text)
    if args.json:
        print(text, end="")
    elif not args.quiet:
        from eiec.console import print_table  # lazy: rich

        if result.training is not None:
            from eiec.training.pipeline import stage_table  # lazy: TVM

            if result.training.sensitivity is not None:
                print_table(result.training.sensitivity.table())
            print_table(stage_table(result.training))
        print_table(result.report.table())
        if streaming:
            print_table(stream_table(streaming, result.program.machine.dram_gbps))
        total = result.report.total
        print(
            f"{args.output}: {len(result.program.layers)} layers, {total.stored_entries} "
            f"entries, {total.stored_bytes} bytes stored ({total.compression_ratio:.1f}x "
            f"smaller than dense fp32)"
        )
    return 0


def streamed_note(program: Program, names: list[str]) -> str:
    """The one-line note that ``--weights auto`` streams layers ``names`` from DRAM."""
    counts = {name: len(program.layers[name].chunks or ()) - 1 for name in names}
    parts = [f"{name} in {n} chunk{'s' if n != 1 else ''}" for name, n in counts.items()]
    return (
        f"eiec compile: note: streaming {', '.join(parts)} from DRAM: "
        f"{'they do' if len(names) > 1 else 'it does'} not fit the PEs' SRAMs "
        "(--weights sram refuses instead)"
    )
