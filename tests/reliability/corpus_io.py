"""The corpus's input/output cases (issue 21): output paths, blocking inputs, failed writes and
closed pipes, options that have no effect in context, machine files and fields, the caches,
the Python API, signals and an unreachable Ray cluster.

``tests/reliability/corpus.py`` includes :func:`io_cases` in its ``cases()`` and calls
:func:`build_io_fixtures` from ``build_fixtures``; the named cases' full messages are in
:data:`NAMED_IO`. Cases that must succeed (``-`` as standard output, the API, the caches) are
``may_pass`` and check their own result, raising :class:`IoFailure` (counted as a traceback)
when it is wrong.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from eiec.errors import EiecError
from tests.reliability.corpus import Case

LONG = "a" * 300
#: The file outputs of every command that writes: (label, argv before the path, argv after,
#: whether the output is text, the fixture linking to one of the command's inputs, slow).
OUTPUTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], bool, str, bool], ...] = (
    ("compile -o", ("compile", "{d}/m.onnx", "-o"), (), True, "sym.onnx", True),
    ("compile --export-onnx", ("compile", "{d}/m.onnx", "-o", "{d}/out.eie", "--export-onnx"),
     (), False, "sym.onnx", True),
    ("compile --report-json", ("compile", "{d}/m.onnx", "-o", "{d}/out.eie", "--report-json"),
     (), True, "sym.onnx", True),
    ("emulate -o", ("emulate", "{d}/p.eie", "-i", "{d}/x.npy", "-o"), (), False, "symp.eie",
     False),
    ("emulate --stats-out", ("emulate", "{d}/p.eie", "-i", "{d}/x.npy", "--stats-out"), (),
     True, "symp.eie", False),
    ("emulate --plot", ("emulate", "{d}/p.eie", "-i", "{d}/x.npy", "--plot"), (), False,
     "symx.npy", False),
    ("fmt -o", ("fmt", "{d}/p.eie", "-o"), (), True, "symp.eie", False),
    ("sweep --json", ("sweep", "{d}/m.onnx", "-i", "{d}/xm.npy", "--json"),
     ("--pes", "1,2", "--fifo-depth", "2", "-q"), True, "sym.onnx", True),
    ("sweep --csv", ("sweep", "{d}/m.onnx", "-i", "{d}/xm.npy", "--csv"),
     ("--pes", "1,2", "--fifo-depth", "2", "-q"), True, "symxm.npy", True),
)  # fmt: skip

SWEEP = ("sweep", "{d}/m.onnx", "-i", "{d}/xm.npy", "--pes", "1,2", "--fifo-depth", "2")
COMPILE = ("compile", "{d}/m.onnx", "-o", "{d}/out.eie")
RUN = ("run", "{d}/m.onnx", "-i", "{d}/xm.npy")

#: Machine files (name -> TOML text) and the first words of their messages' ``what``.
MACHINES = {
    "pes_huge": "pes = 99999999999999999999",
    "pes_list": "pes = [1, 2]",
    "preset_list": 'preset = ["eie-45nm"]',
    "preset_table": "[preset]\nname = 1",
    "clock_tiny": "clock_mhz = 1e-300",
    "clock_inf": "clock_mhz = inf",
    "clock_nan": "clock_mhz = nan",
    "clock_zero": "clock_mhz = 0.0",
    "pes_100000": "pes = 100000",
    "pes_float_huge": "pes = 1e400",
    "pes_bool": "pes = true",
    "pes_string": 'pes = "64"',
    "sram_huge": "spmat_sram = 1099511627776",
    "latency_huge": "alu_stages = 5000",
    "acc_bits": "acc_bits = 65",
    "ptr_bits": "ptr_bits = 36",
    "rows_zero": "writeback_rows = 0",
    "nested": "[pes]\nvalue = 4",
    "not_toml": "pes = = 4",
}


class IoFailure(Exception):
    """A case that must succeed returned a wrong result (counted as a traceback)."""


# --- fixtures -----------------------------------------------------------------------------------


def build_io_fixtures(folder: Path) -> None:
    """The files the cases below read, in ``folder`` (after ``corpus.build_fixtures``'s)."""
    for name, target in (("symp.eie", "p.eie"), ("symx.npy", "x.npy"), ("symxm.npy", "xm.npy")):
        (folder / name).symlink_to(target)
    for name in ("fifo.onnx", "fifo.npy", "fifo.eie", "fifo.npz", "fifo.json", "fifo.toml",
                 "fifo_out"):  # fmt: skip
        os.mkfifo(folder / name)
    plots = folder / "plots_link"  # sweep --plot: a plot file that is a symlink to the model
    plots.mkdir()
    (plots / "speedup.png").symlink_to("../m.onnx")
    inputs = folder / "plots_input"
    inputs.mkdir()
    (inputs / "load_efficiency.png").symlink_to("../xm.npy")
    fifo_plots = folder / "plots_fifo"
    fifo_plots.mkdir()
    os.mkfifo(fifo_plots / "speedup.png")
    dir_plots = folder / "plots_dir"
    (dir_plots / "speedup.png").mkdir(parents=True)
    (folder / "plots_file").write_text("not a folder\n")
    for name, text in MACHINES.items():
        (folder / f"{name}.toml").write_text(text + "\n")
    np.save(folder / "xbig.npy", np.tile(np.load(folder / "x.npy"), (40, 1)))


# --- cases --------------------------------------------------------------------------------------


def io_cases() -> list[Case]:
    """Every input/output case, in a fixed order."""
    out: list[Case] = []
    add = out.append
    d = "{d}"

    # -- one output-path rule for every file written --
    for label, before, after, text, link, slow in OUTPUTS:
        variants: list[tuple[str, str, bool]] = [
            ("'-'", "-", text),
            ("a new folder with a trailing /", f"{d}/newdir/", False),
            ("an existing folder with a trailing /", f"{d}/adir/", False),
            ("'.'", ".", False),
            ("a 300-character name", f"{d}/{LONG}.out", False),
            ("a 300-character folder", f"{d}/{LONG}/x.out", False),
            ("/dev/full", "/dev/full", False),
            ("a FIFO", f"{d}/fifo_out", False),
            ("a symlink to an input", f"{d}/{link}", False),
        ]
        for name, path, passes in variants:
            case_slow = slow and passes
            add(Case(f"{label} {name}", "output", (*before, path, *after), may_pass=passes,
                     code=0 if passes else 1, slow=case_slow))  # fmt: skip
    plot = (*SWEEP, "--plot")
    for name, path in (
        ("'-'", "-"),
        ("holding a symlink to the model", f"{d}/plots_link"),
        ("holding a symlink to the input", f"{d}/plots_input"),
        ("holding a FIFO", f"{d}/plots_fifo"),
        ("holding a folder of a plot's name", f"{d}/plots_dir"),
        ("that is a file", f"{d}/plots_file"),
        ("with a 300-character name", f"{d}/{LONG}"),
        ("under a file", f"{d}/plots_file/sub"),
    ):
        add(Case(f"sweep --plot a folder {name}", "output", (*plot, path)))
    add(Case("sweep: --json - and --csv -", "output", (*SWEEP, "--json", "-", "--csv", "-")))
    add(Case("compile: -o - and --report-json -", "output",
             ("compile", f"{d}/m.onnx", "-o", "-", "--report-json", "-")))  # fmt: skip

    # -- inputs that are not regular files: refused, never read (a FIFO would block) --
    for name, argv in (
        ("compile: a FIFO model", ("compile", f"{d}/fifo.onnx", "-o", f"{d}/o.eie")),
        ("compile: /dev/zero as the model", ("compile", "/dev/zero", "-o", f"{d}/o.eie")),
        ("compile: /dev/null as the model", ("compile", "/dev/null", "-o", f"{d}/o.eie")),
        ("compile: a FIFO --calibration", (*COMPILE, "--calibration", f"{d}/fifo.npy")),
        ("compile: a FIFO --train", (*COMPILE, "--train", f"{d}/fifo.npz")),
        ("compile: a FIFO --validation", (*COMPILE, "--train", f"{d}/train.npz",
                                          "--validation", f"{d}/fifo.npz")),
        ("compile: a FIFO machine file", (*COMPILE, "--machine", f"{d}/fifo.toml")),
        ("emulate: a FIFO program", ("emulate", f"{d}/fifo.eie", "-i", f"{d}/x.npy")),
        ("emulate: a FIFO input", ("emulate", f"{d}/p.eie", "-i", f"{d}/fifo.npy")),
        ("emulate: a FIFO --energy", ("emulate", f"{d}/p.eie", "-i", f"{d}/x.npy", "--energy",
                                      f"{d}/fifo.json")),
        ("emulate: /dev/zero as the input", ("emulate", f"{d}/p.eie", "-i", "/dev/zero")),
        ("verify: a FIFO model", ("verify", f"{d}/fifo.onnx", f"{d}/p.eie", "-i", f"{d}/x.npy")),
        ("verify: a FIFO program", ("verify", f"{d}/c.onnx", f"{d}/fifo.eie", "-i",
                                    f"{d}/x.npy")),
        ("verify: a FIFO --original", ("verify", f"{d}/c.onnx", f"{d}/p.eie", "-i",
                                       f"{d}/x.npy", "--original", f"{d}/fifo.onnx")),
        ("run: a FIFO model", ("run", f"{d}/fifo.onnx", "-i", f"{d}/xm.npy")),
        ("run: a FIFO input", ("run", f"{d}/m.onnx", "-i", f"{d}/fifo.npy")),
        ("run: a FIFO --labels", (*RUN, "--labels", f"{d}/fifo.npy")),
        ("sweep: a FIFO model", ("sweep", f"{d}/fifo.onnx", "-i", f"{d}/xm.npy")),
        ("check: a FIFO program", ("check", f"{d}/fifo.eie")),
        ("check: /dev/zero", ("check", "/dev/zero")),
        ("fmt: a FIFO program", ("fmt", f"{d}/fifo.eie")),
        ("emulate: a 300-character input name", ("emulate", f"{d}/p.eie", "-i",
                                                 f"{d}/{LONG}.npy")),
        ("compile: a 300-character model name", ("compile", f"{d}/{LONG}.onnx", "-o",
                                                 f"{d}/o.eie")),
        ("check: a 300-character folder", ("check", f"{d}/{LONG}/p.eie")),
    ):  # fmt: skip
        add(Case(name, "blocking input", argv))
    add(Case("check: a FIFO program does not block (a process)", "blocking input",
             call=_no_hang(("check", "{d}/fifo.eie")), may_pass=True))  # fmt: skip

    # -- writes that fail, closed pipes (a process each) --
    add(
        Case(
            "emulate --json into a closed pipe",
            "stdout",
            call=_closed_pipe(("emulate", "{d}/p.eie", "-i", "{d}/xbig.npy", "--json")),
        )
    )
    add(Case("fmt into a closed pipe", "stdout", call=_closed_pipe(("fmt", "{d}/p.eie"))))
    add(
        Case(
            "emulate --trace into a closed pipe",
            "stdout",
            call=_closed_pipe(("emulate", "{d}/p.eie", "-i", "{d}/xbig.npy", "--trace")),
        )
    )
    add(
        Case(
            "emulate > /dev/full",
            "stdout",
            call=_full_stdout(("emulate", "{d}/p.eie", "-i", "{d}/x.npy")),
        )
    )
    add(
        Case(
            "emulate --json > /dev/full",
            "stdout",
            call=_full_stdout(("emulate", "{d}/p.eie", "-i", "{d}/x.npy", "--json")),
        )
    )
    add(Case("fmt > /dev/full", "stdout", call=_full_stdout(("fmt", "{d}/p.eie"))))
    add(
        Case("machines --fields > /dev/full", "stdout", call=_full_stdout(("machines", "--fields")))
    )
    add(
        Case(
            "emulate -o under ulimit -f",
            "stdout",
            call=_file_limit(("emulate", "{d}/p.eie", "-i", "{d}/xbig.npy", "-o"), "y.npy"),
        )
    )
    add(
        Case(
            "fmt -o under ulimit -f",
            "stdout",
            call=_file_limit(("fmt", "{d}/p.eie", "-o"), "f.eie"),
        )
    )
    add(
        Case(
            "emulate --stats-out under ulimit -f",
            "stdout",
            call=_file_limit(
                ("emulate", "{d}/p.eie", "-i", "{d}/xbig.npy", "--stats-out"), "s.json"
            ),
        )
    )
    add(Case("compile -o under ulimit -f", "stdout", slow=True,
             call=_file_limit(("compile", "{d}/m.onnx", "-q", "-o"), "c.eie")))  # fmt: skip

    # -- options that have no effect in context: one rule, a usage error --
    for name, argv in (
        ("compile: --epochs without --train", (*COMPILE, "--epochs", "5")),
        ("compile: --seed without --train", (*COMPILE, "--seed", "3")),
        ("compile: --distill without --train", (*COMPILE, "--distill", "0.5")),
        ("compile: --validation without --train", (*COMPILE, "--validation",
                                                   f"{d}/train.npz")),
        ("compile: --max-accuracy-drop without --sparsity auto", (*COMPILE, "--train",
                                                                  f"{d}/train.npz",
                                                                  "--max-accuracy-drop", "1")),
        ("compile: --max-accuracy-drop alone", (*COMPILE, "--max-accuracy-drop", "1")),
        ("compile: --input-range with --calibration", (*COMPILE, "--input-range", "4",
                                                       "--calibration", f"{d}/xm.npy")),
        ("compile: --machine ''", (*COMPILE, "--machine", "")),
        ("compile: --machine ' '", (*COMPILE, "--machine", " ")),
        ("run: --epochs without --train", (*RUN, "--epochs", "5")),
        ("run: --seed without --train", (*RUN, "--seed", "1")),
        ("run: --sparsity auto without --train", (*RUN, "--sparsity", "auto")),
        ("run: --input-range with --calibration", (*RUN, "--input-range", "4", "--calibration",
                                                   f"{d}/xm.npy")),
        ("sweep: --address with the local engine", (*SWEEP, "--address", "127.0.0.1:1")),
        ("sweep: --workers with a Ray cluster", (*SWEEP, "--engine", "ray", "--address",
                                                 "127.0.0.1:1", "--workers", "2")),
        ("sweep: --address ''", (*SWEEP, "--engine", "ray", "--address", "")),
        ("sweep: --epochs without --train", (*SWEEP, "--epochs", "5")),
        ("sweep: --max-accuracy-drop without --sparsity auto", (*SWEEP, "--max-accuracy-drop",
                                                                "2")),
        ("sweep: --validation without --train", (*SWEEP, "--validation", f"{d}/train.npz")),
    ):  # fmt: skip
        add(Case(name, "context", argv, code=2))

    # -- machines: one range per field, for .toml files, options and program headers --
    for name in MACHINES:
        add(Case(f"compile: machine file {name}", "machine",
                 (*COMPILE, "--machine", f"{d}/{name}.toml")))  # fmt: skip
    add(
        Case("run: machine file pes_100000", "machine", (*RUN, "--machine", f"{d}/pes_100000.toml"))
    )
    add(
        Case(
            "sweep: machine file clock_tiny",
            "machine",
            (*SWEEP, "--machine", f"{d}/clock_tiny.toml"),
        )
    )
    for flag, value in (
        ("--clock-mhz", "1e-300"),
        ("--pes", "100000"),
        ("--acc-bits", "65"),
        ("--ptr-bits", "40"),
        ("--alu-stages", "5000"),
        ("--spmat-sram", "2147483648"),
        ("--writeback-rows", "0"),
        ("--lut-latency", "2000"),
    ):
        add(Case(f"compile: {flag} {value}", "machine", (*COMPILE, flag, value), code=2))
    add(
        Case(
            "emulate: --clock-mhz 1e-300",
            "machine",
            ("emulate", f"{d}/p.eie", "-i", f"{d}/x.npy", "--clock-mhz", "1e-300"),
            code=2,
        )
    )
    add(Case("sweep: --pes 100000", "machine", (*SWEEP[:4], "--pes", "100000"), code=2))

    # -- the caches verify what they map; the Python API --
    add(Case("program cache: entries swapped on disk", "cache", call=_swapped_entries,
             may_pass=True))  # fmt: skip
    add(Case("program cache: a truncated entry", "cache", call=_damaged_entry(0.5),
             may_pass=True))  # fmt: skip
    add(Case("program cache: an entry of zeros", "cache", call=_damaged_entry(0.0),
             may_pass=True))  # fmt: skip
    add(Case("training cache: a damaged build", "cache", call=_damaged_build, may_pass=True,
             slow=True))  # fmt: skip
    add(Case("eiec.emulate(program, [list])", "api", call=_emulate_list, may_pass=True))
    for name, value in (
        ("ragged lists", [[1.0, 2.0], [3.0]]),
        ("strings", ["a"] * 8),
        ("a dict of a string", {"input": "abc"}),
        ("a dict of objects", {"input": [object()]}),
    ):
        add(Case(f"eiec.emulate: inputs of {name}", "api", call=_emulate_bad(value)))
    add(Case("eiec.emulate: a number as the program", "api", call=_emulate_number,
             may_pass=True))  # fmt: skip
    add(Case("eiec.byoc.save to model.eie", "api", call=_byoc_save_file, slow=True))

    # -- signals, an unreachable cluster, what a newcomer sees --
    add(Case("sweep: SIGTERM stops the workers", "signal", call=_sigterm_sweep, slow=True,
             may_pass=True))  # fmt: skip
    add(
        Case(
            "sweep: a Ray address with no cluster",
            "signal",
            (*SWEEP, "--engine", "ray", "--address", "127.0.0.1:1"),
            slow=True,
        )
    )
    add(Case("emulate --trace marks each sample of a batch", "newcomer", call=_trace_markers,
             may_pass=True))  # fmt: skip
    add(Case("compile --json prints the report", "newcomer", call=_compile_json, slow=True,
             may_pass=True))  # fmt: skip
    return out


_BINARY = "'-' (standard output) is for text outputs and this one is binary (give a file name; "
_FIFO = "is not a regular file but a pipe (FIFO), which eiec does not read (save the data to a "
_USAGE = "has no effect"

#: Full messages of named cases (``{d}`` is the fixture folder).
NAMED_IO = {
    "emulate -o '-'": f"eiec emulate: error: --output: {_BINARY}./- is a file named '-')",
    "emulate -o a new folder with a trailing /": "eiec emulate: error: {d}/newdir/: ends in '/', "
    "so it names a folder, not a file (give a file name, e.g. {d}/newdir/out)",
    "fmt -o a 300-character name": "eiec fmt: error: {d}/" + LONG + ".out: cannot write: File "
    "name too long (shorten the name: a file system allows 255 bytes for one name)",
    "fmt -o /dev/full": "eiec fmt: error: /dev/full: is not a regular file (a device or pipe "
    "would be replaced, not written) (give the path of a regular file)",
    "sweep --plot a folder holding a symlink to the model": "eiec sweep: error: "
    "{d}/plots_link/speedup.png: is the same file as the input {d}/m.onnx (MODEL); eiec never "
    "overwrites an input (write the output to another file)",
    "sweep: --json - and --csv -": "eiec sweep: error: --csv: '-' (standard output) is given for "
    "--json too (send at most one output to standard output)",
    "compile: -o - and --report-json -": "eiec compile: error: --report-json: '-' (standard "
    "output) is given for --output too (send at most one output to standard output)",
    "compile: a FIFO model": f"eiec compile: error: {{d}}/fifo.onnx: {_FIFO}file and give its "
    "path)",
    "emulate: a FIFO input": f"eiec emulate: error: {{d}}/fifo.npy: {_FIFO}file and give its path)",
    "compile: a FIFO machine file": "eiec compile: error: {d}/fifo.toml: cannot read the machine "
    "file: not a regular file but a pipe (FIFO) (give a .toml file of machine fields)",
    "compile: --epochs without --train": f"eiec compile: error: --epochs {_USAGE} without "
    "--train (add --train DATA.npz, or leave out --epochs)",
    "compile: --max-accuracy-drop without --sparsity auto": "eiec compile: error: "
    f"--max-accuracy-drop {_USAGE} without --sparsity auto (add --sparsity auto --train "
    "DATA.npz, or leave out --max-accuracy-drop)",
    "compile: --input-range with --calibration": f"eiec compile: error: --input-range {_USAGE} "
    "with --calibration (the calibration samples set the formats; give one of the two, or "
    "leave out --input-range)",
    "sweep: --address with the local engine": f"eiec sweep: error: --address {_USAGE} with "
    "--engine local (add --engine ray, or leave out --address)",
    "compile: --machine ''": "eiec compile: error: argument --machine: expected a preset name "
    "or a .toml file, got ''",
    "compile: machine file pes_huge": "eiec compile: error: {d}/pes_huge.toml: machine: pes must "
    "be in 1..4096, got 99999999999999999999 (see eiec machines --fields)",
    "compile: machine file preset_list": "eiec compile: error: {d}/preset_list.toml: unknown "
    "preset ['eie-45nm'] (use one of eie-45nm, eie-sim, eie-28nm)",
    "compile: machine file clock_tiny": "eiec compile: error: {d}/clock_tiny.toml: machine: "
    "clock_mhz must be in 0.001..100000, got 1e-300 (see eiec machines --fields)",
    "compile: machine file pes_100000": "eiec compile: error: {d}/pes_100000.toml: machine: pes "
    "must be in 1..4096, got 100000 (see eiec machines --fields)",
    "compile: machine file pes_list": "eiec compile: error: {d}/pes_list.toml: machine field pes "
    "= [1, 2] is not an integer (see eiec machines --fields)",
    "compile: --clock-mhz 1e-300": "eiec compile: error: argument --clock-mhz: expected a number "
    "in [0.001, 100000], got '1e-300'",
    "sweep: a Ray address with no cluster": "eiec sweep: error: --address: cannot reach a Ray "
    "cluster at 127.0.0.1:1: Connection refused (start one there with `ray start --head`, "
    "check the address, or leave out --engine ray to sweep on this machine)",
}


# --- calls --------------------------------------------------------------------------------------


def _eiec(argv: tuple[str, ...], folder: Path, **kwargs: object) -> subprocess.Popen:
    args = [a.replace("{d}", str(folder)) for a in argv]
    return subprocess.Popen([sys.executable, "-m", "eiec", *args], **kwargs)  # type: ignore[call-overload]


def _no_hang(argv: tuple[str, ...]) -> Callable[[Path], None]:
    """``eiec ARGV`` in a process ends within 60 s with exit 1 and one line."""

    def call(folder: Path) -> None:
        process = _eiec(argv, folder, stderr=subprocess.PIPE, text=True)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise IoFailure(f"eiec {argv[0]} blocked on a FIFO") from None
        if process.returncode != 1 or len(err.splitlines()) != 1:
            raise IoFailure(f"exit {process.returncode}: {err[-300:]!r}")

    return call


def _closed_pipe(argv: tuple[str, ...]) -> Callable[[Path], None]:
    """``eiec ARGV | (reader that goes away)``: exit 141 and nothing on stderr, as Unix tools."""

    def call(folder: Path) -> None:
        reader, writer = os.pipe()
        os.close(reader)  # gone before the first write: every write is EPIPE
        try:
            process = _eiec(argv, folder, stdout=writer, stderr=subprocess.PIPE, text=True)
        finally:
            os.close(writer)
        _, err = process.communicate(timeout=120)
        if process.returncode != 141 or err:
            raise IoFailure(f"exit {process.returncode}: {err[-300:]!r}")
        raise _Refused  # a refusal: the classifier's exit 1

    return call


def _full_stdout(argv: tuple[str, ...]) -> Callable[[Path], None]:
    """``eiec ARGV > /dev/full``: exit 1, one line naming standard output."""

    def call(folder: Path) -> None:
        with open("/dev/full", "w") as full:
            process = _eiec(argv, folder, stdout=full, stderr=subprocess.PIPE, text=True)
            _, err = process.communicate(timeout=120)
        expected = "error: standard output: cannot write: No space left on device (free some "
        if process.returncode != 1 or len(err.splitlines()) != 1 or expected not in err:
            raise IoFailure(f"exit {process.returncode}: {err[-300:]!r}")
        raise _Refused

    return call


def _file_limit(argv: tuple[str, ...], name: str) -> Callable[[Path], None]:
    """``eiec ARGV OUT`` under ``ulimit -f`` of 1 KiB: exit 1 naming OUT (EFBIG), no file (nor
    temporary file) left."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    def call(folder: Path) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / name
            process = _eiec(
                (*argv, str(out)), folder, stderr=subprocess.PIPE, text=True, preexec_fn=limit
            )
            _, err = process.communicate(timeout=300)
            left = os.listdir(scratch)
        expected = f"{out}: cannot write: File too large (the file is larger than the limit on "
        if process.returncode != 1 or len(err.splitlines()) != 1 or expected not in err or left:
            raise IoFailure(f"exit {process.returncode}: {err[-300:]!r}, left {left}")
        raise _Refused

    return call


class _Refused(EiecError):
    """Raised by a case whose command refused as it must (counted as exit 1, clean)."""

    def __init__(self) -> None:
        super().__init__("refused as it must")


@contextlib.contextmanager
def _own_cache() -> Iterator[Path]:
    """An empty eiec cache of its own while the body runs."""
    previous = {key: os.environ.get(key) for key in ("XDG_CACHE_HOME", "EIEC_NO_CACHE")}
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["XDG_CACHE_HOME"] = scratch
        os.environ.pop("EIEC_NO_CACHE", None)
        try:
            yield Path(scratch) / "eiec"
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _two_programs(folder: Path, scratch: Path) -> tuple[Path, Path]:
    """Two programs of the same shape with other weights (``p.eie`` and a copy with one
    codebook value changed)."""
    first = scratch / "a.eie"
    first.write_bytes((folder / "p.eie").read_bytes())
    text = first.read_text()
    start = text.index(".codebook")
    end = text.index("\n", start)
    line = re.sub(r"(-?\d+)\]$", lambda m: f"{-int(m.group(1))}]", text[start:end])
    second = scratch / "b.eie"
    second.write_text(text[:start] + line + text[end:])
    return first, second


def _swapped_entries(folder: Path) -> None:
    from eiec.emulator import load_image

    x = np.load(folder / "x.npy")
    with _own_cache() as cache, tempfile.TemporaryDirectory() as scratch:
        first, second = _two_programs(folder, Path(scratch))
        import eiec

        expected = [eiec.emulate(path, x).outputs for path in (first, second)]
        entries = sorted((cache / "programs").iterdir())
        if len(entries) != 2:
            raise IoFailure(f"expected two cache entries, found {len(entries)}")
        swap = entries[0].with_suffix(".swap")
        entries[0].rename(swap)
        entries[1].rename(entries[0])
        swap.rename(entries[1])
        for path, want in zip((first, second), expected, strict=True):
            load_image(path)
            got = eiec.emulate(path, x).outputs
            for name in want:
                if not np.array_equal(got[name], want[name]):
                    raise IoFailure(f"{path.name}: the other program's outputs")


def _damaged_entry(keep: float) -> Callable[[Path], None]:
    def call(folder: Path) -> None:
        import eiec

        x = np.load(folder / "x.npy")
        with _own_cache() as cache:
            want = eiec.emulate(folder / "p.eie", x).outputs
            (entry,) = (cache / "programs").iterdir()
            data = entry.read_bytes()
            entry.write_bytes(data[: int(len(data) * keep)] if keep else bytes(len(data)))
            got = eiec.emulate(folder / "p.eie", x).outputs
            if any(not np.array_equal(got[k], want[k]) for k in want):
                raise IoFailure("a damaged cache entry changed the outputs")

    return call


def _damaged_build(folder: Path) -> None:
    import tvm

    from eiec.isa.cache import load_library, store_library
    from tests.training.test_build_cache import Double

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "training" / "k.so"
        store_library(tvm.compile(Double, target="llvm"), path, "k")
        if load_library(path, "k") is None:
            raise IoFailure("a sound build was not loaded")
        data = path.read_bytes()
        damaged = path.with_suffix(".new")  # a new file: the loaded one stays mapped
        damaged.write_bytes(data[: len(data) // 3])
        damaged.replace(path)
        if load_library(path, "k") is not None:
            raise IoFailure("a truncated build was loaded")


def _emulate_list(folder: Path) -> None:
    import eiec

    x = np.load(folder / "x.npy")
    from_list = eiec.emulate(folder / "p.eie", x.tolist()).outputs
    from_array = eiec.emulate(folder / "p.eie", x).outputs
    if any(not np.array_equal(from_list[k], from_array[k]) for k in from_array):
        raise IoFailure("a list gave other outputs than the array")


def _emulate_bad(value: object) -> Callable[[Path], None]:
    def call(folder: Path) -> None:
        import eiec

        eiec.emulate(folder / "p.eie", value)  # type: ignore[arg-type]

    return call


def _emulate_number(folder: Path) -> None:
    import eiec

    try:
        eiec.emulate(5, np.load(folder / "x.npy"))  # type: ignore[arg-type]
    except TypeError as error:
        if "program must be a Program or the path of an .eie file, not int" not in str(error):
            raise IoFailure(str(error)) from None
        raise _Refused from None


def _byoc_save_file(folder: Path) -> None:
    import onnx

    import eiec.byoc
    from tests.byoc.models import to_relax

    mod = eiec.byoc.partition_for_eie(to_relax(onnx.load(folder / "cnn.onnx")), pes=4)
    with tempfile.TemporaryDirectory() as scratch:
        eiec.byoc.save(mod, Path(scratch) / "model.eie")


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and int(entry) not in found:
                found.add(int(entry))
                todo.append(int(entry))
    return found


def _sigterm_sweep(folder: Path) -> None:
    """SIGTERM to ``eiec sweep`` once its pool is up: exit 143, ``terminated``, and no worker
    (nor the resource tracker) left within 30 s."""
    model = Path(__file__).resolve().parents[2] / "examples" / "digits" / "digits_mlp.onnx"
    x = folder / "sweep_x.npy"
    np.save(x, np.load(model.parent / "test_x.npy")[:200])
    try:
        argv = ("sweep", str(model), "-i", str(x), "--pes", "1,2,4,8,16,32,64", "--workers", "2")
        process = _eiec((*argv, "-q"), folder, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
            workers = _descendants(process.pid)
        if process.poll() is not None:
            raise IoFailure("the sweep ended before its pool started")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
        deadline = time.monotonic() + 30
        alive = workers
        while alive and time.monotonic() < deadline:
            time.sleep(0.5)
            alive = {pid for pid in alive if Path(f"/proc/{pid}").exists()}
        for pid in alive:  # leave nothing behind, then report
            os.kill(pid, signal.SIGKILL)
        if process.returncode != 143 or err != "eiec sweep: terminated\n" or alive:
            raise IoFailure(f"exit {process.returncode}, {err[-300:]!r}, left {sorted(alive)}")
    finally:
        x.unlink()


def _trace_markers(folder: Path) -> None:
    from eiec.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["emulate", str(folder / "p.eie"), "-i", str(folder / "x.npy"), "--trace"])
    lines = out.getvalue().splitlines()
    samples = len(np.load(folder / "x.npy"))
    marks = [line for line in lines if line.startswith("; sample ")]
    if code != 0 or marks != [f"; sample {n}" for n in range(samples)]:
        raise IoFailure(f"exit {code}, markers {marks}")


def _compile_json(folder: Path) -> None:
    import json

    from eiec.cli import main

    out = io.StringIO()
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(out):
        code = main(["compile", str(folder / "m.onnx"), "-o", f"{scratch}/p.eie", "--json"])
    report = json.loads(out.getvalue())
    if code != 0 or set(report) < {"layers", "total"}:
        raise IoFailure(f"exit {code}, keys {sorted(report)}")
