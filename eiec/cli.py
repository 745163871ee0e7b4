"""The ``eiec`` command line.

Exit codes: 0 success; 1 a user error (one line on stderr saying what, where, why, and how to
fix it) or a failed verification (the report, and its first problem on stderr); 2 a usage
error (argparse). A Python traceback means a bug in eiec.

Each subcommand lives in ``eiec/commands/<name>.py`` with ``register(subparsers)`` adding its
parser (and ``set_defaults(run=...)``). Modules import heavy dependencies (TVM) only inside
their run function, so ``eiec emulate`` starts without loading TVM.

Before a command runs, :func:`main` checks every path its arguments mark
(``eiec.commands.argtypes``) with ``eiec.fileio.check_paths``: nothing is computed for an input
that is missing or an output that could not be written or would overwrite an input. Ctrl-C
anywhere prints ``interrupted`` and exits 130; outputs are written atomically, so earlier ones
stay intact and no temporary file is left.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from eiec import __version__
from eiec.commands.argtypes import paths_of
from eiec.errors import EiecError
from eiec.fileio import check_paths

#: Subcommand modules under eiec.commands, in the order ``eiec --help`` lists them.
COMMANDS = ("compile", "emulate", "verify", "run", "sweep", "machines", "check", "fmt")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand that is installed, or with ``only`` (a
    command name) alone: a run imports just the module of its command."""
    parser = argparse.ArgumentParser(
        prog="eiec",
        description="Compile ONNX FC/LSTM/GRU models for EIE (Efficient Inference Engine), "
        "emulate them cycle by cycle, and verify them against TVM's CPU output.",
        epilog="Exit codes: 0 ok, 1 user error (cause on stderr), 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"eiec {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        try:
            module = importlib.import_module(f"eiec.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"eiec.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not an option), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    interrupts: list[int] = []
    words = list(sys.argv[1:] if argv is None else argv)
    command = f"eiec {words[0]}" if words and words[0] in COMMANDS else "eiec"
    try:
        with _counting_interrupts(interrupts):
            parser = build_parser(_command_of(sys.argv[1:] if argv is None else argv))
            args = parser.parse_args(argv)
            if getattr(args, "run", None) is None:
                parser.print_help(sys.stderr)
                return 2
            command = f"eiec {args.command}"
            check_paths(*paths_of(args))
            return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return _interrupted(command)
    except EiecError as error:
        if interrupts:
            return _interrupted(command)
        print(f"{command}: error: {error}", file=sys.stderr)
        return 1
    except Exception:
        # Ctrl-C inside a native library (TVM) can surface as another exception.
        if interrupts:
            return _interrupted(command)
        raise


def entry() -> int:
    """The ``eiec`` program (console script and ``python -m eiec``): :func:`main`, then Ctrl-C
    ignored while Python shuts down, so a late one cannot kill a finished command, and the
    objects left frozen out of the final collection; exit 130 when interrupted."""
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Shutting down: the final garbage collection need not walk every object left (about
    # 10 ms of a 0.15 s `eiec emulate`); outputs are written and closed by now.
    gc.freeze()
    if code == 130:
        # Interrupted: leave now. A KeyboardInterrupt that a native library printed instead of
        # raising marks the interpreter, whose shutdown would then die of SIGINT (exit -2).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return code


def _interrupted(command: str) -> int:
    print(f"{command}: interrupted", file=sys.stderr)
    return 130


@contextmanager
def _counting_interrupts(interrupts: list[int]) -> Iterator[None]:
    """Record each SIGINT (then raise KeyboardInterrupt as Python does) while the body runs."""

    def handler(signum: int, frame: object) -> None:
        interrupts.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Python's handler alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(entry())
