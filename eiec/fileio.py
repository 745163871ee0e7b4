"""Files a command reads and writes: checked before any work, written atomically.

:func:`check_paths` is the one place where a command's paths are resolved and checked before
it does any work: every input exists and is a readable file; every output's folder exists and
is writable, no output is a directory or a device, and no output is the same file as an input
(same path, a symlink to it or a hard link of it) or as another output. The files an output
folder will hold are outputs too (a symlink there to an input is refused). ``-`` is standard
output for a text output and refused for a binary one or a folder; a path ending in ``/`` names
a folder and is refused for a file. Inputs must be regular files: a pipe or device is refused
rather than read (reading a FIFO would block). The CLI calls it on the paths its argument types
(``eiec.commands.argtypes``) mark; Python callers may call it too.

:func:`write_atomic` writes through a temporary file in the target's folder and a rename, so a
file is either fully written or not touched (Ctrl-C included); the new file gets the mode a
plain ``open(path, "w")`` would give it: the existing file's mode when overwriting, otherwise
``0o666`` less the umask. A write that fails (disk full, file too large for ``ulimit -f``, a
name too long) is a :class:`~eiec.errors.PathError` naming the file and the reason, and leaves
nothing behind. :func:`stdout_reserved` sends what a command prints to stderr while an output
goes to standard output.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
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
    into. A ``text`` output may be ``-``, standard output."""

    label: str
    path: str
    inside: tuple[str, ...] = ()
    text: bool = False


#: The output path that means standard output (text outputs only).
STDOUT = "-"


def check_paths(inputs: Sequence[InputFile], outputs: Sequence[OutputFile]) -> None:
    """Raise PathError for the first input that cannot be read or output that cannot be
    written, or an output that is the same file as an input or an earlier output."""
    for item in inputs:
        _check_input(item)
    seen: list[tuple[str, str, Path]] = [
        (item.label, item.path, Path(os.path.realpath(item.path))) for item in inputs
    ]
    input_count = len(seen)
    to_stdout: OutputFile | None = None
    for item in outputs:
        if item.path == STDOUT:
            _check_stdout(item, to_stdout)
            to_stdout = item
            continue
        for path, target in _check_output(item):
            for number, (label, other_path, other) in enumerate(seen):
                if _same_file(target, other):
                    role = "input" if number < input_count else "output"
                    raise PathError(
                        f"is the same file as the {role} {other_path} ({label})"
                        + ("; eiec never overwrites an input" if role == "input" else ""),
                        where=path,
                        fix="write the output to another file",
                    )
            seen.append((item.label, path, target))


def _check_stdout(item: OutputFile, earlier: OutputFile | None) -> None:
    """``-`` for ``item``: standard output, for one text output alone."""
    if item.inside:
        raise PathError(
            "'-' (standard output) cannot hold a folder of files",
            where=item.label,
            fix="give the path of a folder",
        )
    if not item.text:
        raise PathError(
            "'-' (standard output) is for text outputs and this one is binary",
            where=item.label,
            fix="give a file name; ./- is a file named '-'",
        )
    if earlier is not None:
        raise PathError(
            f"'-' (standard output) is given for {earlier.label} too",
            where=item.label,
            fix="send at most one output to standard output",
        )


def _check_input(item: InputFile) -> None:
    try:
        info = os.stat(item.path)
    except FileNotFoundError:
        raise PathError(item.kind.missing, where=item.path, fix=item.kind.fix) from None
    except OSError as error:
        raise path_error(error, item.path, "cannot read") from None
    if stat.S_ISDIR(info.st_mode):
        raise PathError("is a directory, not a file", where=item.path, fix=item.kind.fix)
    if not stat.S_ISREG(info.st_mode):
        raise PathError(
            f"is not a regular file but a {_kind_of(info.st_mode)}, which eiec does not read",
            where=item.path,
            fix="save the data to a file and give its path",
        )
    try:  # O_NONBLOCK: a file that became a FIFO since the stat must not block the open
        os.close(os.open(item.path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as error:
        raise path_error(error, item.path, "cannot read") from None


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at ``path``; OSError when it cannot be read or is not a
    regular file (a pipe would block, a device never end)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            import errno  # lazy: only on failure

            raise OSError(errno.EINVAL, f"not a regular file but a {_kind_of(mode)}")
        return file.read()


def _kind_of(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _check_output(item: OutputFile) -> list[tuple[str, Path]]:
    """The files ``item`` will really write (symlinks followed), each with the path the user
    would see, checked to be writable."""
    try:
        if item.inside:
            return _check_output_folder(item)
        return [(item.path, _check_output_file(item))]
    except OSError as error:  # e.g. a name too long to stat
        raise path_error(error, item.path, "cannot write") from None


def _check_output_file(item: OutputFile) -> Path:
    if item.path.endswith(("/", os.sep)):
        raise PathError(
            "ends in '/', so it names a folder, not a file",
            where=item.path,
            fix=f"give a file name, e.g. {item.path}out",
        )
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


def _check_output_folder(item: OutputFile) -> list[tuple[str, Path]]:
    """The folder ``item`` names, checked to be one (or to be makeable) and writable, and
    each of its files checked as an output when the folder exists."""
    target = Path(os.path.realpath(item.path))
    if target.exists() and not target.is_dir():
        raise PathError(
            "is not a folder",
            where=item.path,
            fix="give the path of a folder; a missing one is made",
        )
    if target.is_dir():
        files = [str(Path(item.path) / name) for name in item.inside]
        return [(path, _check_output_file(OutputFile(item.label, path))) for path in files]
    parent = next(p for p in target.parents if p.exists())
    if not parent.is_dir():
        raise PathError(
            f"{parent} is not a folder",
            where=item.path,
            fix="give a path whose existing part is folders",
        )
    _probe(parent, target.name, item.path, f"cannot make the folder in {parent}")
    return [(item.path, target)]


def _probe(folder: Path, name: str, where: str, what: str) -> None:
    """Create and remove a temporary file in ``folder``; PathError ``what: why`` when the
    folder cannot be written."""
    try:
        fd, probe = temporary_file(folder, name)
    except OSError as error:
        raise path_error(error, where, what, "choose a folder you can write to") from None
    os.close(fd)
    os.unlink(probe)


#: How to fix a failed read or write, by errno name.
_FIXES = {
    "ENOSPC": "free some space or write elsewhere",
    "EDQUOT": "free some space or write elsewhere",
    "EFBIG": "the file is larger than the limit on file sizes (ulimit -f); raise it or write "
    "elsewhere",
    "ENAMETOOLONG": "shorten the name: a file system allows 255 bytes for one name",
    "EROFS": "write elsewhere",
    "EACCES": "choose a folder you can write to",
    "EPERM": "choose a folder you can write to",
}


def path_error(error: OSError, where: str, what: str, fix: str = "check the path") -> PathError:
    """``error`` (an OSError on ``where``) as the PathError ``where: what: reason (fix)``, the
    fix the reason's own when it has one."""
    import errno  # lazy: only on failure

    name = errno.errorcode.get(error.errno or 0, "")
    return PathError(
        f"{what}: {error.strerror or error}",
        where=where,
        fix=_FIXES.get(name, fix),
    )


def temporary_file(folder: str | os.PathLike[str], name: str) -> tuple[int, str]:
    """A new empty file ``.NAME.<random>.tmp`` in ``folder`` (NAME cut so that the whole stays
    within the 255 bytes a file system allows for a name), private to the user, opened for
    writing: its descriptor and path (``tempfile.mkstemp``'s contract; importing tempfile costs
    3 ms of every command's start-up). OSError when the folder cannot be written."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    short = os.fsencode(name)[:200].decode(errors="ignore")
    for _ in range(100):
        path = os.path.join(folder, f".{short}.{os.urandom(6).hex()}.tmp")
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
    ``data`` may be a function that writes the (binary) file. ``-`` is standard output.

    A symlink is followed (its target is rewritten); the file gets ordinary permissions, or
    the user's alone when ``private``. Nothing is left behind on an error or Ctrl-C; a failed
    write (disk full, ``ulimit -f``, ...) is a PathError naming ``path``.
    """
    if str(path) == STDOUT:
        _write_stdout(data)
        return
    target = Path(os.path.realpath(path))
    mode = "w" if isinstance(data, str) else "wb"
    try:
        fd, tmp = temporary_file(target.parent, target.name)
    except OSError as error:
        raise path_error(
            error, str(path), "cannot write", "choose a folder you can write to"
        ) from None
    try:
        if not private:  # temporary_file makes it the user's alone
            os.fchmod(fd, _new_file_mode(target))
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None) as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
        os.replace(tmp, target)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise path_error(error, str(path), "cannot write") from None
        raise


#: Where ``-`` writes while :func:`stdout_reserved` holds: the standard output it found.
_RESERVED: list[IO[str]] = []


@contextmanager
def stdout_reserved(reserve: bool = True) -> Iterator[None]:
    """While the body runs, what it prints goes to stderr and an output written to ``-`` to
    the standard output there was: a command whose output is ``-`` keeps stdout for it alone.
    Does nothing unless ``reserve``."""
    if not reserve:
        yield
        return
    _RESERVED.append(sys.stdout)
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        _RESERVED.pop()


def _write_stdout(data: str | bytes | Callable[[IO[bytes]], None]) -> None:
    """``data`` onto standard output (or the one :func:`stdout_reserved` keeps)."""
    stream = _RESERVED[-1] if _RESERVED else sys.stdout
    if isinstance(data, str):
        stream.write(data)
    else:
        stream.flush()
        binary = stream.buffer
        if callable(data):
            data(binary)
        else:
            binary.write(data)
    stream.flush()


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """``numpy.save`` to ``path`` atomically."""
    import numpy as np  # lazy: numpy; the CLI starts (and handles Ctrl-C) before it loads

    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomic(path, buffer.getvalue())
