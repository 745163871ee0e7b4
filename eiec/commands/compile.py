"""``eiec compile MODEL.onnx -o PROG.eie``: compile an ONNX FC model into an EIE program.

Prints the compression report (per layer and total); writes the program, and on request the
compressed ONNX model and the report as JSON, each atomically.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eiec.errors import CompileError
from eiec.fileio import write_atomic


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compile`` subcommand."""
    parser = subparsers.add_parser(
        "compile",
        help="compile an ONNX FC model into an EIE program",
        description="Compile an ONNX model of fully-connected layers (Gemm, MatMul+Add, Relu, "
        "...) into an EIE program: magnitude pruning, k-means weight sharing, interleaved CSC "
        "over the PEs, 16-bit fixed point. Prints the compression report.",
    )
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    parser.add_argument("-o", "--output", required=True, metavar="PROG.eie", help="the program")
    parser.add_argument("--pes", type=int, default=64, metavar="N", help="PEs (default 64)")
    parser.add_argument(
        "--fifo-depth", type=int, default=8, metavar="D", help="activation queue depth (8)"
    )
    parser.add_argument(
        "--sparsity",
        default="0.9",
        metavar="S | LAYER=S,...",
        help="fraction of weights to prune: one value for all layers, or per-layer values "
        "LAYER=S (layer, ONNX node or weight name; '*=S' sets the others; default 0.9)",
    )
    parser.add_argument(
        "--bits", type=int, default=4, metavar="B", help="weight index bits, 1..4 (default 4)"
    )
    parser.add_argument(
        "--calibration",
        metavar="X.npy",
        help="sample inputs (stacked along the batch axis) that set the activation formats",
    )
    parser.add_argument(
        "--input-range",
        type=float,
        default=8.0,
        metavar="R",
        help="without --calibration: inputs are assumed within +-R (default 8)",
    )
    for flag, what in (
        ("--spmat-sram", "sparse-matrix SRAM"),
        ("--ptr-sram", "pointer SRAM"),
        ("--act-sram", "activation SRAM"),
    ):
        parser.add_argument(flag, type=int, metavar="BYTES", help=f"{what} per PE (paper's chip)")
    parser.add_argument("--export-onnx", metavar="OUT.onnx", help="write the compressed model")
    parser.add_argument("--report-json", metavar="R.json", help="write the report as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="do not print the report")
    parser.set_defaults(run=run)


def parse_sparsity(text: str) -> tuple[float | dict[str, float], float]:
    """``0.9`` -> (0.9, 0.9); ``fc1=0.8,*=0.5`` -> ({'fc1': 0.8}, 0.5); default 0.9."""
    text = text.strip()
    if "=" not in text:
        return _fraction(text, "--sparsity"), 0.9
    overrides: dict[str, float] = {}
    default = 0.9
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CompileError(
                f"--sparsity item '{item}' is not LAYER=S",
                fix="write --sparsity 0.9 or --sparsity fc1=0.9,fc2=0.8",
            )
        if name.strip() == "*":
            default = _fraction(value, f"--sparsity {item}")
        else:
            overrides[name.strip()] = _fraction(value, f"--sparsity {item}")
    return overrides, default


def _fraction(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise CompileError(f"{option}: '{text}' is not a number in [0, 1]")
    return value


def run(args: argparse.Namespace) -> int:
    """Compile, print the report, write the outputs."""
    import numpy as np

    from eiec.compiler import CompileOptions, compile_model
    from eiec.isa import format_program

    sparsity, default = parse_sparsity(args.sparsity)
    calibration = None
    if args.calibration:
        try:
            calibration = np.load(args.calibration, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise CompileError(
                f"cannot read calibration data: {error}",
                where=args.calibration,
                fix="give a .npy file of sample inputs",
            ) from error
    options = CompileOptions(
        pes=args.pes,
        fifo_depth=args.fifo_depth,
        sparsity=sparsity,
        default_sparsity=default,
        bits=args.bits,
        calibration=calibration,
        input_range=args.input_range,
        spmat_sram=args.spmat_sram,
        ptr_sram=args.ptr_sram,
        act_sram=args.act_sram,
        progress=True,
    )
    for path in (args.output, args.export_onnx, args.report_json):
        if path and not Path(path).resolve().parent.is_dir():
            raise CompileError("output folder does not exist", where=path)
    result = compile_model(args.model, options)
    write_atomic(args.output, format_program(result.program))
    if args.export_onnx:
        write_atomic(args.export_onnx, result.compressed_model.SerializeToString())
    if args.report_json:
        write_atomic(args.report_json, json.dumps(result.report.to_json(), indent=2) + "\n")
    if not args.quiet:
        from rich.console import Console

        Console().print(result.report.table())
        total = result.report.total
        print(
            f"{args.output}: {len(result.program.layers)} layers, {total.stored_entries} "
            f"entries, {total.stored_bytes} bytes stored ({total.compression_ratio:.1f}x "
            f"smaller than dense fp32)"
        )
    return 0
