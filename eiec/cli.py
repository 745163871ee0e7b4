"""The ``eiec`` command line.

Exit codes: 0 success; 1 a user error (one line on stderr saying what, where, why, and how to
fix it); 2 a usage error (argparse). A Python traceback means a bug in eiec.

Each subcommand lives in ``eiec/commands/<name>.py`` with ``register(subparsers)`` adding its
parser (and ``set_defaults(run=...)``). Modules import heavy dependencies (TVM) only inside
their run function, so ``eiec emulate`` starts without loading TVM.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from eiec import __version__
from eiec.errors import EiecError

#: Subcommand modules under eiec.commands, in the order ``eiec --help`` lists them.
COMMANDS = ("compile", "emulate", "verify", "run", "check", "fmt")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand that is installed."""
    parser = argparse.ArgumentParser(
        prog="eiec",
        description="Compile ONNX FC/LSTM models for EIE (Efficient Inference Engine), "
        "emulate them cycle by cycle, and verify them against TVM's CPU output.",
        epilog="Exit codes: 0 ok, 1 user error (cause on stderr), 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"eiec {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"eiec.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"eiec.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except EiecError as error:
        print(f"eiec {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"eiec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
