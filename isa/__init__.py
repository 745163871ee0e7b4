"""The textual EIE ISA: parse, print and verify ``.eie`` programs (see isa/SPEC.md)."""

from __future__ import annotations

import os
from pathlib import Path

from eiec.errors import IsaError
from eiec.fileio import write_atomic
from eiec.isa.parser import parse
from eiec.isa.printer import format_program
from eiec.isa.program import Program
from eiec.isa.verifier import verify

__all__ = ["format_program", "load", "parse", "save", "verify"]


def load(path: str | os.PathLike[str], *, check: bool = True) -> Program:
    """Read and parse the program at ``path``, and verify it unless ``check`` is False."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise IsaError(
            f"not UTF-8 text: byte {error.object[error.start]:#04x} at offset {error.start}",
            where=str(path),
        ) from None
    except OSError as error:
        raise IsaError(
            f"cannot read the program: {error.strerror or error}", where=str(path)
        ) from None
    program = parse(text, source=str(path))
    if check:
        verify(program)
    return program


def save(program: Program, path: str | os.PathLike[str]) -> None:
    """Write ``program``'s canonical text to ``path`` atomically."""
    write_atomic(path, format_program(program))
