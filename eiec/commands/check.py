"""``eiec check PROG.eie``: parse and verify a program, print a one-line summary."""

from __future__ import annotations

import argparse

from eiec.commands.argtypes import input_file
from eiec.commands.options import add_quiet_option
from eiec.fileio import PROGRAM
from eiec.isa import load


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``check`` subcommand."""
    parser = subparsers.add_parser(
        "check",
        help="parse and verify an .eie program",
        description="Parse and verify an .eie program (isa/SPEC.md). Exit 0 when it is valid, "
        "1 with the first error (file:line:col: what) otherwise.",
    )
    parser.add_argument(
        "program", type=input_file(PROGRAM), metavar="PROG.eie", help="the program to check"
    )
    add_quiet_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the program and print ``PROG.eie: ok (...)``."""
    program = load(args.program)
    if args.quiet:
        return 0
    entries = sum(layer.stored_entries for layer in program.layers.values())
    print(
        f"{args.program}: ok ({_plural(len(program.layers), 'layer')}, "
        f"{_plural(entries, 'entry', 'entries')}, {_plural(program.machine.pes, 'PE')}, "
        f"{_plural(len(program.text), 'instruction')})"
    )
    return 0


def _plural(count: int, one: str, many: str | None = None) -> str:
    """``12 345 entries``: digits grouped by thin spaces, the noun agreeing with the count."""
    noun = one if count == 1 else (many or one + "s")
    return f"{count:,} {noun}".replace(",", " ")
