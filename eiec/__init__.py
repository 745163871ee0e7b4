"""eiec: a compiler and cycle-counting emulator for EIE (Han et al., ISCA 2016).

The Python API, loaded lazily (``import eiec`` does not import TVM):

- ``eiec.compile_model(model, options=eiec.CompileOptions(...)) -> CompileResult``: ONNX ->
  pruned, weight-shared EIE program, compression report and compressed ONNX model.
- ``eiec.emulate(program, inputs, config=None) -> BatchResult``: run a program (or ``.eie``
  file) on a batch; outputs and cycle/energy statistics.
- ``eiec.verify(model, program, inputs, original=None) -> VerifyReport``: the emulator against
  TVM's CPU build of the compressed model, within the fixed-point error bound.
- ``eiec.run(model, inputs, labels=None, options=None) -> RunReport``: all of the above in one
  call, with a CPU tail for Softmax/ArgMax classifier heads.
- ``eiec.sweep(model, inputs, pes=..., fifo_depths=..., engine="local"|"ray") -> SweepResult``:
  the design space (cycles, speed-up, load efficiency, energy per PE count and FIFO depth).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> module that defines it (imported on first use).
_API = {
    "CompileOptions": "eiec.compiler",
    "compile_model": "eiec.compiler",
    "EmulatorConfig": "eiec.emulator",
    "emulate": "eiec.runtime.emulate",
    "verify": "eiec.runtime.verify",
    "run": "eiec.runtime.run",
    "sweep": "eiec.runtime.sweep",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'eiec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
