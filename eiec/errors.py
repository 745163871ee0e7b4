"""Every exception eiec raises on purpose, in one place.

A user-facing error says what failed, where (file, line, column, ONNX node, layer), why, and
how to fix it. The CLI prints ``str(error)`` on one line and exits 1; anything that is not an
``EiecError`` is a bug in eiec and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class EiecError(Exception):
    """Base class of every error eiec reports to a user."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message())

    def message(self) -> str:
        """The one-line message: ``where: what; fix``."""
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.fix:
            text = f"{text} ({self.fix})"
        return text


@dataclass(frozen=True)
class SourceLocation:
    """A place in a textual program: file name (or ``<string>``), 1-based line and column."""

    file: str
    line: int
    column: int | None = None

    def __str__(self) -> str:
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


# --- the EIE assembly -------------------------------------------------------------------------


class IsaError(EiecError):
    """A textual EIE program is malformed or invalid."""


class ProgramSyntaxError(IsaError):
    """The text does not follow the grammar (see isa/SPEC.md)."""


class VerificationError(IsaError):
    """The program parses but breaks a rule of the machine (see isa/SPEC.md, "Verifier")."""


class MachineError(IsaError):
    """A machine description (preset, ``.toml`` file, option) is unknown or invalid."""


# --- the emulator -----------------------------------------------------------------------------


class EmulatorError(EiecError):
    """The emulator cannot run a program on the given input or configuration."""


class InputError(EmulatorError):
    """An input tensor is missing, unreadable, of the wrong shape/dtype, or not finite."""


# --- the compiler -----------------------------------------------------------------------------


class CompileError(EiecError):
    """The compiler cannot turn the model into an EIE program."""


class ModelLoadError(CompileError):
    """The ONNX file is missing, unreadable or invalid."""


class UnsupportedModelError(CompileError):
    """The model has nodes, attributes or shapes EIE (or eiec) does not run."""


class CapacityError(CompileError):
    """A layer does not fit the per-PE memories of the machine."""


# --- the runtime ------------------------------------------------------------------------------


class RuntimeCheckError(EiecError):
    """A reference build or comparison could not be carried out."""


class BackendError(EiecError):
    """The TVM BYOC integration was used wrongly (e.g. programs not registered)."""


# --- the command line -------------------------------------------------------------------------


class PathError(EiecError):
    """A command's input cannot be read or its output cannot be written as asked (missing,
    a directory, an unwritable folder, or an output that would overwrite an input)."""


class UsageError(EiecError):
    """The command line asks for something that makes no sense in context (an option that has
    no effect without another one); exit 2, as argparse's usage errors."""


# --- warnings ---------------------------------------------------------------------------------


class EiecWarning(UserWarning):
    """A result eiec produced but whose meaning is limited (saturated data, weights rounded
    away, a layer left denser than asked): the CLI prints it as one line ``eiec CMD: warning:
    ...`` on stderr. Built like an :class:`EiecError`: what, where, how to fix."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(EiecError.message(self))  # type: ignore[arg-type]


def warn(what: str, *, where: str | None = None, fix: str | None = None) -> None:
    """Issue an :class:`EiecWarning` (``warnings.warn``: API callers may filter or raise it)."""
    import warnings  # lazy: only when there is something to say

    warnings.warn(EiecWarning(what, where=where, fix=fix), stacklevel=2)
