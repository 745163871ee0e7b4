"""``eiec.emulate``: run a program on a batch of inputs (no TVM)."""

from __future__ import annotations

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

    ``inputs``: port name -> array, or one array for a one-input program; a batch is stacked
    along each port's batch axis. See ``eiec.emulator.run_batch``.
    """
    if isinstance(program, Program):
        prog, tables = program, None
    else:
        image = load_image(program)
        prog, tables = image.program, image.tables
    if isinstance(inputs, np.ndarray):
        if len(prog.inputs) != 1:
            raise InputError(
                f"the program has {len(prog.inputs)} inputs; got one array",
                where=prog.source,
                fix="pass a dict of input name -> array",
            )
        inputs = {prog.inputs[0].name: inputs}
    return run_batch(prog, inputs, config, progress=progress, tables=tables)
