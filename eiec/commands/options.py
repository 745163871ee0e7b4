"""Options the subcommands share: the compile options (``eiec compile``, ``eiec run``), input
arrays (``--input [NAME=]X.npy``), the emulator's arithmetic and ``--json``.

No TVM here (``eiec emulate`` imports this module and must start fast).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eiec.commands.argtypes import (
    PortFile,
    float_range,
    input_file,
    int_range,
    nonempty,
    port_input,
)
from eiec.commands.machine_options import add_machine_options, machine_from_args
from eiec.errors import CompileError, InputError
from eiec.fileio import NPY, InputKind

if TYPE_CHECKING:
    from eiec.compiler import CompileOptions
    from eiec.frontend.load import LoadedModel
    from eiec.runtime.verify import VerifyReport


# --- compile options --------------------------------------------------------------------------


BITS = int_range(1, 4)
#: ``--input-range R``: the largest magnitude 16-bit fixed point holds (frac 0) is 32767.
INPUT_RANGE = float_range(0, 32767, low_open=True)
#: Training (``--train``): epochs of retraining, the seed, the accuracy ``auto`` may lose.
EPOCHS = int_range(0, 10000)
SEED = int_range(0, 2**32 - 1)
MAX_DROP = float_range(0, 100)
DISTILL = float_range(0, 1)
NPZ = InputKind("no such file", "give a .npz archive written by numpy.savez (x, optional y)")


def sparsity_arg(text: str) -> tuple[float | dict[str, float], float]:
    """An argparse type: :func:`parse_sparsity` or ``auto``, its errors as usage errors."""
    if text.strip() == "auto":
        return "auto", 0.9  # type: ignore[return-value]
    try:
        return parse_sparsity(text)
    except CompileError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--sparsity ")) from None


#: ``--input-range`` when not given (``CompileOptions.input_range``'s default).
DEFAULT_INPUT_RANGE = 8.0


def add_compile_options(parser: argparse.ArgumentParser, sweep: bool = False) -> None:
    """The fields of ``CompileOptions`` as options (same names and defaults everywhere), its
    machine's from ``Machine``'s fields (``eiec.commands.machine_options``); ``sweep``: without
    ``--pes`` and ``--fifo-depth`` (``eiec sweep`` takes lists of them). The training options
    have no default here: ``eiec.commands.context`` refuses them without ``--train`` and then
    fills in their defaults."""
    add_machine_options(
        parser.add_argument_group("machine options"),
        skip=("pes", "fifo_depth") if sweep else (),
    )
    group = parser.add_argument_group("compile options")
    group.add_argument(
        "--sparsity",
        type=sparsity_arg,
        default="0.9",
        metavar="S | LAYER=S,...",
        help="fraction of weights to prune, in [0, 1]: one value for all layers, or per-layer "
        "values LAYER=S (layer, ONNX node or weight name; '*=S' sets the others; default 0.9), "
        "or 'auto' with --train (each layer's from its sensitivity)",
    )
    group.add_argument(
        "--bits", type=BITS, default=4, metavar="B", help="weight index bits, 1..4 (default 4)"
    )
    group.add_argument(
        "--calibration",
        type=input_file(NPY),
        metavar="X.npy",
        help="sample inputs (stacked along the batch axis) that set the activation formats",
    )
    group.add_argument(
        "--input-range",
        type=INPUT_RANGE,
        metavar="R",
        help=f"without --calibration: inputs are assumed within +-R, 0 < R <= 32767 (default "
        f"{DEFAULT_INPUT_RANGE:g}; eiec run without either calibrates on its own inputs)",
    )
    group.add_argument(
        "--train",
        type=input_file(NPZ),
        metavar="DATA.npz",
        help="train while compressing (Deep Compression): x = samples stacked along the batch "
        "axis, y = integer labels (optional: without, the model's own outputs are the targets)",
    )
    group.add_argument(
        "--validation",
        type=input_file(NPZ),
        metavar="VAL.npz",
        help="with --train: measure on VAL.npz (as DATA.npz) and train on all of DATA.npz, "
        "instead of holding out 20%% of it; give it when DATA.npz is what the model was "
        "trained on, so that held-out figures and --sparsity auto see unseen data",
    )
    group.add_argument(
        "--epochs",
        type=EPOCHS,
        metavar="N",
        help="with --train: retraining epochs after pruning, 0..10000 (10; centroid "
        "fine-tuning runs half as many)",
    )
    group.add_argument("--seed", type=SEED, metavar="S", help="with --train: the random seed (0)")
    group.add_argument(
        "--distill",
        type=DISTILL,
        metavar="A",
        help="with --train and labels: knowledge distillation from the dense model, the weight "
        "of its soft outputs (temperature 2) in each sample's target beside the label, 0..1 "
        "(default 0.5 for a model with an LSTM or GRU, 0 for the others: the labels alone)",
    )
    group.add_argument(
        "--max-accuracy-drop",
        type=MAX_DROP,
        metavar="P",
        help="with --sparsity auto: percentage points a layer may lose, 0..100 (0.5)",
    )
    group.add_argument(
        "--weights",
        choices=("auto", "sram", "dram"),
        default="auto",
        help="where the weights live: auto (default) keeps them in the PEs' SRAMs and streams "
        "the layers that do not fit from DRAM, chunk by chunk (a note says which); sram "
        "refuses a layer that does not fit; dram streams every layer",
    )
    group.add_argument(
        "--balance",
        action="store_true",
        help="load-balance-aware pruning (ESE): every PE's rows of a layer pruned to the "
        "layer's sparsity on their own (with --train: at every step of the gradual pruning)",
    )
    group.add_argument(
        "--prune",
        type=prune_criterion,
        default="magnitude",
        metavar="CRITERION",
        help="how FC weights are pruned: magnitude (default), wanda (|W| x ||X|| over the "
        "calibration activations of each layer, per output row), N:M (e.g. 2:4: N of every M "
        "consecutive inputs kept, density N/M) or wanda,N:M; add ,refit for a least-squares "
        "refit of each layer's kept weights and bias on its calibration activations, aware of "
        "the codebook (through BYOC: calibrated layer after layer on the compressed model; e.g. "
        "wanda,refit)",
    )


def prune_criterion(text: str) -> str:
    """An argparse type: magnitude, wanda, N:M or wanda,N:M (``0 < N <= M``), each with an
    optional ``,refit``."""
    for part in text.split(","):
        n, sep, m = part.partition(":")
        pattern = sep and n.isdigit() and m.isdigit() and 0 < int(n) <= int(m)
        if part not in ("magnitude", "wanda", "refit") and not pattern:
            raise argparse.ArgumentTypeError(
                f"expected magnitude, wanda, N:M (e.g. 2:4) or wanda,N:M, optionally with "
                f",refit, got {text!r}"
            )
    return text


def precheck_model(
    args: argparse.Namespace,
    capacity: bool = False,
    inputs: dict[str, np.ndarray] | np.ndarray | None = None,
) -> LoadedModel:
    """Before TVM is imported: load and check ``args.model`` (``eiec.frontend.checks``), that it
    has a layer for EIE, that ``inputs`` and ``--calibration`` fit its inputs and, with
    ``capacity``, that its layers can fit the machine the compile options describe. Returns the
    checked model, which ``compile_model`` takes without loading it again."""
    from eiec.frontend.checks import check_capacity, check_inputs, check_runs_on_eie  # lazy: onnx
    from eiec.frontend.load import load_checked  # lazy: onnx

    loaded = load_checked(args.model)
    proto = loaded.proto
    check_runs_on_eie(proto, args.model)
    if inputs is not None:
        where = ", ".join(spec.path for spec in args.input)
        check_inputs(proto, inputs, where)
    if args.calibration:
        check_inputs(proto, load_npy(args.calibration), args.calibration)
    # auto: the pointer SRAM here, the rest as auto chooses (eiec.training); a layer that does
    # not fit is streamed from DRAM unless --weights sram.
    if capacity and getattr(args, "weights", "sram") == "sram":
        sparsity, default = args.sparsity
        check_capacity(proto, machine_from_args(args), sparsity, default, args.model)
    return loaded


def options_from_args(args: argparse.Namespace, progress: bool = False) -> CompileOptions:
    """The ``CompileOptions`` of the options :func:`add_compile_options` added."""
    from eiec.compiler import CompileOptions  # lazy: TVM

    sparsity, default = args.sparsity
    return CompileOptions(
        machine=machine_from_args(args),
        sparsity=sparsity,
        default_sparsity=default,
        bits=args.bits,
        calibration=load_npy(args.calibration) if args.calibration else None,
        input_range=DEFAULT_INPUT_RANGE if args.input_range is None else args.input_range,
        balance=args.balance,
        prune=args.prune,
        progress=progress,
        train=str(args.train) if args.train else None,
        validation=str(args.validation) if args.validation else None,
        epochs=args.epochs,
        seed=args.seed,
        distill=args.distill,
        max_accuracy_drop=args.max_accuracy_drop,
        weights=args.weights,
    )


def parse_sparsity(text: str) -> tuple[float | dict[str, float], float]:
    """``0.9`` -> (0.9, 0.9); ``fc1=0.8,*=0.5`` -> ({'fc1': 0.8}, 0.5); default 0.9.

    A layer (or ``*``) given twice is an error."""
    text = text.strip()
    if "=" not in text:
        return _fraction(text, "--sparsity"), 0.9
    overrides: dict[str, float] = {}
    default: float | None = None
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CompileError(
                f"--sparsity item '{item}' is not LAYER=S",
                fix="write --sparsity 0.9 or --sparsity fc1=0.9,fc2=0.8",
            )
        if name in overrides or (name == "*" and default is not None):
            raise CompileError(
                f"--sparsity {item}: layer '{name}' is given twice", fix="give each layer once"
            )
        if name == "*":
            default = _fraction(value, f"--sparsity {item}")
        else:
            overrides[name] = _fraction(value, f"--sparsity {item}")
    return overrides, 0.9 if default is None else default


def _fraction(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise CompileError(f"{option}: '{text.strip()}' is not a number in [0, 1]")
    return value


# --- inputs, arithmetic, JSON -----------------------------------------------------------------


def add_input_option(parser: argparse.ArgumentParser) -> None:
    """``--input [NAME=]X.npy`` (repeatable, required): the model's inputs, batch first."""
    parser.add_argument(
        "--input",
        "-i",
        action="append",
        required=True,
        type=port_input(NPY),
        metavar="[NAME=]X.npy",
        help="input tensor (.npy), a batch along the input's batch axis (the first, or axis 1 "
        "of an LSTM's sequence-first [T, B, F]); NAME= for several inputs",
    )


def read_inputs(specs: list[PortFile]) -> dict[str, np.ndarray] | np.ndarray:
    """``[NAME=]FILE`` arguments -> one array, or {name: array} when named."""
    bare = [spec for spec in specs if spec.name is None]
    if bare and len(specs) > 1:
        raise InputError(
            f"--input {bare[0]} does not name its input and {len(specs)} inputs are given",
            where="--input",
            fix=f"write --input NAME={bare[0]}",
        )
    if bare:
        return load_npy(bare[0].path)
    named = {}
    for spec in specs:
        if spec.name in named:
            raise InputError(
                f"input {spec.name!r} is given twice", where=f"--input {spec}", fix="give it once"
            )
        named[spec.name] = load_npy(spec.path)
    return named


def load_npy(path: str) -> np.ndarray:
    """Read one array from a .npy file (no pickles), with clear errors."""
    file = Path(path)
    fix = "give a .npy file written by numpy.save"
    try:
        with file.open("rb") as handle:
            magic = handle.read(6)
    except FileNotFoundError:
        raise InputError("no such file", where=path, fix=fix) from None
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", where=path, fix=fix) from None
    if magic.startswith(b"PK"):
        raise InputError(
            "is a .npz archive, not a .npy file",
            where=path,
            fix="save each input with numpy.save into its own .npy file",
        )
    if magic != b"\x93NUMPY":
        raise InputError("not a .npy file (no NUMPY header)", where=path, fix=fix)
    try:
        return np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"corrupt .npy file ({error})", where=path, fix=fix) from None


def add_arith_option(parser: argparse.ArgumentParser) -> None:
    """``--arith fixed16|float32``: the emulator's arithmetic."""
    parser.add_argument(
        "--arith",
        choices=("fixed16", "float32"),
        default="fixed16",
        help="emulator arithmetic: the machine's 16-bit fixed point (default) or float32 "
        "for debugging",
    )


#: The processes of the default energy and area table (emulator/energy_45nm.json).
PROCESSES = ("45nm", "28nm")


def add_process_option(parser: argparse.ArgumentParser) -> None:
    """``--process 45nm|28nm``: the energy and area table's process."""
    parser.add_argument(
        "--process",
        choices=PROCESSES,
        help="the process of the energy and area figures: 45nm (the paper's chip, default) or "
        "28nm (Table V's projection; use it with --machine eie-28nm)",
    )


def add_engine_options(
    parser: argparse.ArgumentParser, what: str, workers: str = "processes / local Ray CPUs"
) -> None:
    """``--engine local|ray``, ``--workers N`` (``workers`` says what N counts),
    ``--address RAY``: where ``what`` (the tasks) run (``eiec.runtime.engines``)."""
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help=f"where {what} run: local, a process pool here (default); ray, Ray tasks (--address)",
    )
    parser.add_argument("--workers", type=int_range(1, 1024), metavar="N", help=workers)
    parser.add_argument(
        "--address",
        type=nonempty("a Ray address, HOST:PORT or ray://HOST:PORT"),
        metavar="RAY",
        help="Ray cluster (default: RAY_ADDRESS, else a local Ray)",
    )


def add_json_option(parser: argparse.ArgumentParser, what: str = "the report") -> None:
    """``--json``: print ``what`` as JSON instead of text."""
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    """``--quiet``/``-q``: print nothing on success (errors still go to stderr)."""
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="print nothing on success (errors: stderr)"
    )


def verdict(command: str, report: VerifyReport) -> int:
    """The exit code of a verification ``report``: 0
    when it passed; else 1, with the CLI's one line on stderr naming its first problem (the
    report itself went to stdout)."""
    if report.passed:
        return 0
    first = report.problems[0] if report.problems else "an output is out of its bound"
    more = len(report.problems) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''}; see the report)" if more else ""
    print(f"{command}: error: verification failed: {first}{tail}", file=sys.stderr)
    return 1
