"""``eiec fmt PROG.eie [-o OUT]``: print a program in canonical form."""

from __future__ import annotations

import argparse
import sys

from eiec.commands.argtypes import input_file, text_output_file
from eiec.fileio import PROGRAM, write_atomic
from eiec.isa import format_program, load


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fmt`` subcommand."""
    parser = subparsers.add_parser(
        "fmt",
        help="print an .eie program in canonical form",
        description="Parse an .eie program and print it in canonical form (isa/SPEC.md): "
        "to stdout, or atomically to OUT. The program is parsed, not verified "
        "(use eiec check).",
    )
    parser.add_argument(
        "program", type=input_file(PROGRAM), metavar="PROG.eie", help="the program to format"
    )
    parser.add_argument(
        "-o", "--output", type=text_output_file, metavar="OUT", help="write here instead of stdout"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Format the program."""
    text = format_program(load(args.program, check=False))
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.output, text)
    return 0
