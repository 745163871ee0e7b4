"""The ``eiec`` command line.

Exit codes: 0 success; 1 a user error (one line on stderr saying what, where, why, and how to
fix it) or a failed verification (the report, and its first problem on stderr); 2 a usage
error (argparse, or an option that has no effect in context: ``eiec.commands.context``); 141
when the reader of standard output went away (``eiec emulate --json | head``: no message, as
Unix tools). A disk that fills up (or ``ulimit -f``) is a user error naming the file. A result
whose meaning is limited (saturated data, weights rounded away) adds a line
``eiec CMD: warning: ...`` on stderr (``eiec.errors.EiecWarning``). A Python traceback means a
bug in eiec.

Each subcommand lives in ``eiec/commands/<name>.py`` with ``register(subparsers)`` adding its
parser (and ``set_defaults(run=...)``). Modules import heavy dependencies (TVM) only inside
their run function, so ``eiec emulate`` starts without loading TVM.

Before a command runs, :func:`main` checks every path its arguments mark
(``eiec.commands.argtypes``) with ``eiec.fileio.check_paths``: nothing is computed for an input
that is missing or an output that could not be written or would overwrite an input. An output
given as ``-`` goes to standard output, and what the command prints goes to stderr. Ctrl-C
anywhere prints ``interrupted`` and exits 130 (SIGTERM: ``terminated``, 143); outputs are
written atomically, so earlier ones stay intact and no temporary file is left.
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from eiec import __version__
from eiec.commands.argtypes import paths_of
from eiec.commands.context import check_context
from eiec.errors import EiecError, EiecWarning, UsageError
from eiec.fileio import STDOUT, check_paths, path_error, stdout_reserved

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
        with _counting_interrupts(interrupts), _named_stdout():
            parser = build_parser(_command_of(sys.argv[1:] if argv is None else argv))
            args = parser.parse_args(argv)
            if getattr(args, "run", None) is None:
                parser.print_help(sys.stderr)
                return 2
            command = f"eiec {args.command}"
            check_context(args)
            inputs, outputs = paths_of(args)
            check_paths(inputs, outputs)
            with (
                stdout_reserved(any(item.path == STDOUT for item in outputs)),
                _printing_warnings(command),
            ):
                return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return _interrupted(command, interrupts)
    except UsageError as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        return 2
    except EiecError as error:
        if interrupts:
            return _interrupted(command, interrupts)
        print(f"{command}: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError as error:
        if error.filename != STDOUT_NAME:  # another pipe (a worker's): not the reader of stdout
            raise
        return _stdout_closed()
    except OSError as error:
        if interrupts:
            return _interrupted(command, interrupts)
        if error.errno not in _WRITE_ERRORS:
            raise
        print(f"{command}: error: {_write_failure(error)}", file=sys.stderr)
        return 1
    except Exception:
        # Ctrl-C inside a native library (TVM) can surface as another exception.
        if interrupts:
            return _interrupted(command, interrupts)
        raise


#: Errors of a write that ran out of room: the disk, the quota, the file-size limit.
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: The exit status of a command whose reader went away (a shell's for death by SIGPIPE).
EXIT_PIPE = 128 + 13


def _write_failure(error: OSError) -> str:
    """The one-line message of a write that ran out of room, naming the file (standard output
    included: :class:`_NamedStdout`)."""
    where = str(error.filename) if error.filename else "a temporary file"
    if where == STDOUT_NAME:
        _silence_stdout()
    return str(path_error(error, where, "cannot write"))


#: How a failed write to standard output names it.
STDOUT_NAME = "standard output"


class _NamedStdout:
    """Standard output whose failed writes name it (``OSError.filename``), so that a full disk
    behind ``> file`` is told apart from one under a file eiec writes."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as error:
            error.filename = error.filename or STDOUT_NAME
            raise

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            error.filename = error.filename or STDOUT_NAME
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def _named_stdout() -> Iterator[None]:
    """While the body runs, ``sys.stdout`` is a :class:`_NamedStdout`."""
    stream = sys.stdout
    sys.stdout = _NamedStdout(stream)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout = stream


def _stdout_closed() -> int:
    """The reader of standard output went away (``eiec ... | head``): stop quietly, as Unix
    tools do, with the shell's status for a broken pipe."""
    _silence_stdout()
    return EXIT_PIPE


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that what is still buffered there cannot fail
    again when Python shuts down."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file (captured): nothing to do
        pass


def entry() -> int:
    """The ``eiec`` program (console script and ``python -m eiec``): :func:`main`, then Ctrl-C
    ignored while Python shuts down, so a late one cannot kill a finished command, and the
    objects left frozen out of the final collection; exit 130 when interrupted (143 on
    SIGTERM)."""
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:  # what is still buffered: a closed pipe or a full disk ends quietly here too
        sys.stdout.flush()
    except BrokenPipeError:
        code = _stdout_closed()
    except OSError as error:
        _silence_stdout()
        print(f"eiec: error: {path_error(error, 'standard output', 'cannot write')}",
              file=sys.stderr)  # fmt: skip
        code = code or 1
    # Shutting down: the final garbage collection need not walk every object left (about
    # 10 ms of a 0.15 s `eiec emulate`); outputs are written and closed by now.
    gc.freeze()
    if code in (130, 128 + signal.SIGTERM):
        # Interrupted: leave now. A KeyboardInterrupt that a native library printed instead of
        # raising marks the interpreter, whose shutdown would then die of SIGINT (exit -2).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _interrupted(command: str, signals: Sequence[int] = ()) -> int:
    """Say so, and the exit status of the signal: 130 for Ctrl-C, 143 for SIGTERM."""
    if signals and signals[-1] == signal.SIGTERM:
        print(f"{command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    print(f"{command}: interrupted", file=sys.stderr)
    return 130


@contextmanager
def _printing_warnings(command: str) -> Iterator[None]:
    """Print each :class:`EiecWarning` the body issues as one line ``CMD: warning: ...`` on
    stderr (each distinct message once); other warnings keep Python's handling."""
    with warnings.catch_warnings():
        shown = warnings.showwarning
        seen: set[str] = set()

        def show(message: Warning | str, category: type[Warning], *args: object) -> None:
            if not issubclass(category, EiecWarning):
                shown(message, category, *args)  # type: ignore[arg-type]
            elif str(message) not in seen:
                seen.add(str(message))
                print(f"{command}: warning: {message}", file=sys.stderr)

        warnings.simplefilter("always", EiecWarning)
        warnings.showwarning = show
        yield


@contextmanager
def _counting_interrupts(interrupts: list[int]) -> Iterator[None]:
    """Record each SIGINT and SIGTERM (then raise KeyboardInterrupt as Python does for SIGINT)
    while the body runs: either ends the command through its ``finally`` blocks (a sweep's
    workers stopped, temporary files removed)."""

    def handler(signum: int, frame: object) -> None:
        interrupts.append(signum)
        raise KeyboardInterrupt

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave Python's handlers alone
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


if __name__ == "__main__":
    sys.exit(entry())
