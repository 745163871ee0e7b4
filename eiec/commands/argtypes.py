"""Argument types every subcommand uses: ranges checked at parse time, paths marked for checks.

Numbers: ``type=int_range(1, 4096)`` or ``type=float_range(0, 1e5, low_open=True)`` reject a
value out of range while parsing (exit 2) with the range in the message. Lists:
``int_list(1, 4096)`` for ``1,2,4`` (no duplicates).

Paths: ``type=input_file(MODEL)``, ``type=output_file`` (``text_output_file`` for a text file,
which may be ``-``, standard output), ``type=port_input(NPY)`` for
``[NAME=]X.npy`` and ``type=port_output`` for ``[NAME=]Y.npy`` mark the values;
:func:`paths_of` collects them from a parsed namespace and the CLI hands them to
``eiec.fileio.check_paths`` before the command runs (inputs readable, outputs writable, no output
on an input). A new subcommand gets all of this by using these types.

No TVM here.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from eiec.fileio import FILE, InputFile, InputKind, OutputFile


def _range_text(low: float, high: float, low_open: bool = False) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}]"


def _int_range_text(low: int, high: int) -> str:
    return f"[{low}, {high}]"


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected an integer in {_int_range_text(low, high)}, got {text!r}"
            )
        return value

    parse.__name__ = "integer"
    return parse


def float_range(low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[low, high]`` (``(low, high]`` if ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        above = value > low if low_open else value >= low
        if not (math.isfinite(value) and above and value <= high):
            raise argparse.ArgumentTypeError(
                f"expected a number in {_range_text(low, high, low_open)}, got {text!r}"
            )
        return value

    parse.__name__ = "number"
    return parse


def int_list(low: int, high: int) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated integers in ``[low, high]``, each at most once."""
    one = int_range(low, high)

    def parse(text: str) -> list[int]:
        values = [one(item.strip()) for item in text.split(",")]
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise argparse.ArgumentTypeError(f"{duplicates[0]} is given twice in {text!r}")
        return values

    parse.__name__ = "integer list"
    return parse


#: Suffixes of ``number_list`` values: binary kilo, mega, giga.
_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def field_values(text: str) -> tuple[str, list[int | float]]:
    """An argparse type: ``FIELD=V,V,...`` (``spmat_sram=64K,128K``): a name and distinct
    positive numbers, ``K``/``M``/``G`` multiplying by 1024, 1024^2, 1024^3."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name or not values.strip():
        raise argparse.ArgumentTypeError(f"expected FIELD=V,V,..., got {text!r}")
    parsed: list[int | float] = []
    for item in values.split(","):
        item = item.strip()
        scale = _SUFFIXES.get(item[-1:].upper(), 1)
        digits = item[:-1] if scale != 1 else item
        try:
            value = float(digits) * scale
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{item!r} in {text!r} is not a positive number")
        parsed.append(int(value) if value.is_integer() else value)
    if len(set(parsed)) != len(parsed):
        raise argparse.ArgumentTypeError(f"a value is given twice in {text!r}")
    return name, parsed


def nonempty(what: str) -> Callable[[str], str]:
    """An argparse type: a string that is not empty or blank (``what`` it should be)."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return text

    parse.__name__ = "text"
    return parse


# --- paths ------------------------------------------------------------------------------------


class InputPath(str):
    """A path the command reads (a ``str``); ``kind`` words the message when it is missing."""

    kind: InputKind = FILE


class OutputPath(str):
    """A path the command writes (a ``str``); a ``text`` one may be ``-`` (standard output)."""

    text: bool = False


class OutputFolder(str):
    """A folder the command writes ``files`` into (a ``str``), made when missing."""

    files: tuple[str, ...] = ()


def output_folder(*files: str) -> Callable[[str], OutputFolder]:
    """An argparse type: a folder to write ``files`` into, checked before the run."""

    def parse(text: str) -> OutputFolder:
        folder = OutputFolder(text)
        folder.files = files
        return folder

    parse.__name__ = "output folder"
    return parse


def input_file(kind: InputKind = FILE) -> Callable[[str], InputPath]:
    """An argparse type: a path to read, checked (with ``kind``'s message) before the run."""

    def parse(text: str) -> InputPath:
        path = InputPath(text)
        path.kind = kind
        return path

    parse.__name__ = "input file"
    return parse


def output_file(text: str) -> OutputPath:
    """An argparse type: a path to write a binary file to, checked before the run."""
    return OutputPath(text)


def text_output_file(text: str) -> OutputPath:
    """An argparse type: a path to write a text file to, checked before the run; ``-`` is
    standard output (what the command prints then goes to stderr)."""
    path = OutputPath(text)
    path.text = True
    return path


@dataclass(frozen=True)
class PortFile:
    """``[NAME=]FILE``: a file for the port (or model input/output) ``name``, or the only one."""

    name: str | None
    path: str

    def __str__(self) -> str:
        return self.path if self.name is None else f"{self.name}={self.path}"


def _port_file(text: str, make: Callable[[str], str]) -> PortFile:
    name, sep, path = text.partition("=")
    if not sep:
        return PortFile(None, make(text))
    if not name.strip() or not path:
        raise argparse.ArgumentTypeError(f"expected [NAME=]FILE, got {text!r}")
    return PortFile(name.strip(), make(path))


def port_input(kind: InputKind = FILE) -> Callable[[str], PortFile]:
    """An argparse type: ``[NAME=]FILE`` to read (the one ``--input`` parser)."""
    make = input_file(kind)

    def parse(text: str) -> PortFile:
        return _port_file(text, make)

    parse.__name__ = "[NAME=]FILE"
    return parse


def port_output(text: str) -> PortFile:
    """An argparse type: ``[NAME=]FILE`` to write."""
    return _port_file(text, output_file)


def paths_of(args: argparse.Namespace) -> tuple[list[InputFile], list[OutputFile]]:
    """Every path the parsed arguments mark as input or output, labelled by option."""
    inputs: list[InputFile] = []
    outputs: list[OutputFile] = []

    def visit(label: str, value: object) -> None:
        if isinstance(value, list | tuple):
            for item in value:
                visit(label, item)
        elif isinstance(value, PortFile):
            visit(label, value.path)
        elif isinstance(value, InputPath):
            inputs.append(InputFile(label, str(value), value.kind))
        elif isinstance(value, OutputPath):
            outputs.append(OutputFile(label, str(value), text=value.text))
        elif isinstance(value, OutputFolder):
            outputs.append(OutputFile(label, str(value), inside=value.files))

    for dest, value in vars(args).items():
        visit(_label(dest), value)
    return inputs, outputs


def _label(dest: str) -> str:
    """``export_onnx`` -> ``--export-onnx``; positionals (``model``) keep their name."""
    if dest in {"model", "program", "original_model"}:
        return dest.upper()
    return "--" + dest.replace("_", "-")
