"""Files a command reads and writes: checked before any work, written atomically.

:func:`check_paths` is the one place where a command's paths are resolved and checked before
it does any work: every input exists and is a readable file; every output's folder exists and
is writable, no output is a directory or a device, and no output is the same file as an input
(same path, a symlink to it or a hard link of it) or as another output. The CLI calls it on the
paths its argument types (``eiec.commands.argtypes``) mark; Python callers may call it too.

:func:`write_atomic` writes through a temporary file in the target's folder and a rename, so a
file is either fully written or not touched (Ctrl-C included); the new file gets the mode a
plain ``open(path, "w")`` would give it: the existing file's mode when overwriting, otherwise
``0o666`` less the umask.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from eiec.errors import PathError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class InputKind:
    """What an input file is, for the message when it is missing: ``missing`` and ``fix``."""

    missing: str
    fix: str | None


#: An ONNX model (``MODEL.onnx``).
MODEL = InputKind("model file not found", "give the path of an .onnx file")
#: An array file (``X.npy``).
NPY = InputKind("no such file", "give a .npy file written by numpy.save")
#: An EIE program (``PROG.eie``).
PROGRAM = InputKind("cannot read the program: No such file or directory", None)
#: Any other input (a JSON table, ...).
FILE = InputKind("no such file", "check the path")


@dataclass(frozen=True)
class InputFile:
    """An input path of a command: ``label`` (the option, e.g. ``--input``) and its kind."""

    label: str
    path: str
    kind: InputKind = FILE


@dataclass(frozen=True)
class OutputFile:
    """An output path of a command; ``label`` is the option that names it (e.g. ``-o``).
    With ``inside``, the path is a folder (made when missing) the command writes those files
    into."""

    label: str
    path: str
    inside: tuple[str, ...] = ()


def check_paths(inputs: Sequence[InputFile], outputs: Sequence[OutputFile]) -> None:
    """Raise PathError for the first input that cannot be read or output that cannot be
    written, or an output that is the same file as an input or an earlier output."""
    for item in inputs:
        _check_input(item)
    seen: list[tuple[str, str, Path]] = [
        (item.label, item.path, Path(os.path.realpath(item.path))) for item in inputs
    ]
    input_count = len(seen)
    for item in outputs:
        target = _check_output(item)
        for number, (label, path, other) in enumerate(seen):
            if _same_file(target, other):
                role = "input" if number < input_count else "output"
                raise PathError(
                    f"is the same file as the {role} {path} ({label})"
                    + ("; eiec never overwrites an input" if role == "input" else ""),
                    where=item.path,
                    fix="write the output to another file",
                )
        seen.append((item.label, item.path, target))


def _check_input(item: InputFile) -> None:
    path = Path(item.path)
    if not path.exists():
        raise PathError(item.kind.missing, where=item.path, fix=item.kind.fix)
    if path.is_dir():
        raise PathError("is a directory, not a file", where=item.path, fix=item.kind.fix)
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise PathError(f"cannot read: {error.strerror}", where=item.path) from None


def _check_output(item: OutputFile) -> Path:
    """The file ``item`` will really write (symlinks followed), checked to be writable."""
    if item.inside:
        return _check_output_folder(item)
    target = Path(os.path.realpath(item.path))
    if target.is_dir():
        raise PathError(
            "is a directory", where=item.path, fix=f"give a file name, e.g. {item.path}/out"
        )
    if target.exists() and not target.is_file():
        raise PathError(
            "is not a regular file (a device or pipe would be replaced, not written)",
            where=item.path,
            fix="give the path of a regular file",
        )
    folder = target.parent
    if not folder.is_dir():
        raise PathError(f"folder {folder} does not exist", where=item.path, fix="create it first")
    _probe(folder, target.name, item.path, f"cannot write in folder {folder}")
    return target


def _check_output_folder(item: OutputFile) -> Path:
    """The folder ``item`` names, checked to be one (or to be makeable) and writable; each of
    its files checked as an output when the folder exists."""
    target = Path(os.path.realpath(item.path))
    if target.exists() and not target.is_dir():
        raise PathError(
            "is not a folder",
            where=item.path,
            fix="give the path of a folder; a missing one is made",
        )
    if target.is_dir():
        for name in item.inside:
            _check_output(OutputFile(item.label, str(Path(item.path) / name)))
        return target
    parent = next(p for p in target.parents if p.exists())
    if not parent.is_dir():
        raise PathError(
            f"{parent} is not a folder",
            where=item.path,
            fix="give a path whose existing part is folders",
        )
    _probe(parent, target.name, item.path, f"cannot make the folder in {parent}")
    return target


def _probe(folder: Path, name: str, where: str, what: str) -> None:
    """Create and remove a temporary file in ``folder``; PathError ``what: why`` when the
    folder cannot be written."""
    try:
        fd, probe = temporary_file(folder, name)
    except OSError as error:
        raise PathError(
            f"{what}: {error.strerror}", where=where, fix="choose a folder you can write to"
        ) from None
    os.close(fd)
    os.unlink(probe)


def temporary_file(folder: str | os.PathLike[str], name: str) -> tuple[int, str]:
    """A new empty file ``.NAME.<random>.tmp`` in ``folder``, private to the user, opened for
    writing: its descriptor and path (``tempfile.mkstemp``'s contract; importing tempfile costs
    3 ms of every command's start-up). OSError when the folder cannot be written."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = os.path.join(folder, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no unused temporary name in {folder}")


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _new_file_mode(target: Path) -> int:
    """The mode ``open(target, "w")`` would leave: the existing one, else 0o666 - umask."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(
    path: str | os.PathLike[str],
    data: str | bytes | Callable[[IO[bytes]], None],
    *,
    private: bool = False,
) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename;
    ``data`` may be a function that writes the (binary) file.

    A symlink is followed (its target is rewritten); the file gets ordinary permissions, or
    the user's alone when ``private``. Nothing is left behind on an error or Ctrl-C.
    """
    target = Path(os.path.realpath(path))
    mode = "w" if isinstance(data, str) else "wb"
    fd, tmp = temporary_file(target.parent, target.name)
    try:
        if not private:  # temporary_file makes it the user's alone
            os.fchmod(fd, _new_file_mode(target))
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None) as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """``numpy.save`` to ``path`` atomically."""
    import numpy as np  # lazy: numpy; the CLI starts (and handles Ctrl-C) before it loads

    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomic(path, buffer.getvalue())
