"""The textual EIE ISA: parse, print and verify ``.eie`` programs (see isa/SPEC.md)."""

from __future__ import annotations

import os
from typing import Any

from eiec.errors import IsaError
from eiec.fileio import read_regular, write_atomic
from eiec.isa.printer import format_program
from eiec.isa.program import Program
from eiec.isa.verifier import verify

__all__ = [
    "decode",
    "format_program",
    "load",
    "load_bytes",
    "parse",
    "read_bytes",
    "save",
    "verify",
]


def __getattr__(name: str) -> Any:
    """``parse`` on first use: the parser imports lark, which a cached load never needs."""
    if name == "parse":
        from eiec.isa.parser import parse  # lazy: lark, for start-up

        return parse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(path: str | os.PathLike[str], *, check: bool = True) -> Program:
    """Read and parse the program at ``path``, and verify it unless ``check`` is False."""
    return load_bytes(read_bytes(path), str(path), check=check)


def load_bytes(data: bytes, source: str, *, check: bool = True) -> Program:
    """The program a file's bytes spell (``source`` names it), verified unless ``check`` is
    False."""
    from eiec.isa.parser import parse  # lazy: lark, for start-up

    program = parse(decode(data, source), source=source)
    if check:
        verify(program)
    return program


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the program file at ``path`` (IsaError when it cannot be read)."""
    try:
        return read_regular(path)  # a FIFO or device is refused, not read (it could block)
    except OSError as error:
        raise IsaError(
            f"cannot read the program: {error.strerror or error}", where=str(path)
        ) from None


def decode(data: bytes, where: str) -> str:
    """A program file's bytes as text (IsaError, at ``where``, when they are not UTF-8)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise IsaError(
            f"not UTF-8 text: byte {error.object[error.start]:#04x} at offset {error.start}",
            where=where,
        ) from None


def save(program: Program, path: str | os.PathLike[str]) -> None:
    """Write ``program``'s canonical text to ``path`` atomically."""
    write_atomic(path, format_program(program))
