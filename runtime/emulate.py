"""``eiec.emulate``: run a program on a batch of inputs (no TVM)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from eiec.emulator import BatchResult, EmulatorConfig, load_image, run_batch
from eiec.errors import InputError
from eiec.isa.program import Program
from eiec.runtime.accuracy import Inputs


def emulate(
    program: Program | str | Path,
    inputs: Inputs,
    config: EmulatorConfig | None = None,
    progress: bool = False,
) -> BatchResult:
    """Run a program (or an ``.eie`` file) on every sample of ``inputs``.

    ``inputs``: port name -> array, or one array for a one-input program (arrays or nested
    lists of numbers); a batch is stacked along each port's batch axis. See
    ``eiec.emulator.run_batch``. InputError for inputs that are not arrays of numbers.
    """
    if isinstance(program, Program):
        prog, tables = program, None
    elif isinstance(program, str | Path):
        image = load_image(program)
        prog, tables = image.program, image.tables
    else:
        raise TypeError(
            f"eiec.emulate: program must be a Program or the path of an .eie file, not "
            f"{type(program).__name__}"
        )
    if not isinstance(inputs, Mapping):
        if len(prog.inputs) != 1:
            raise InputError(
                f"the program has {len(prog.inputs)} inputs; got one array",
                where=prog.source,
                fix="pass a dict of input name -> array",
            )
        inputs = {prog.inputs[0].name: inputs}
    arrays = {name: _array(value, name, prog.source) for name, value in inputs.items()}
    return run_batch(prog, arrays, config, progress=progress, tables=tables)


def _array(value: object, name: object, where: str) -> np.ndarray:
    """``value`` (an array, or nested lists of numbers) as a numpy array (InputError if it is
    not one of numbers)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged lists
        raise InputError(
            f"input {name!r} is not an array of numbers ({error})",
            where=where,
            fix="pass a numpy array (or equal-length nested lists of numbers)",
        ) from None
    if array.dtype.kind not in "fiub":
        raise InputError(
            f"input {name!r} is not an array of numbers (dtype {array.dtype}, from "
            f"{type(value).__name__})",
            where=where,
            fix="pass a numpy array of floats or integers",
        )
    return array
