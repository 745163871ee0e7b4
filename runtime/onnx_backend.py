"""An ONNX backend (``onnx.backend.base.Backend``) that runs models on the EIE emulator.

``EieBackend.prepare(model)`` returns a representation whose ``run(inputs)`` compiles the model
for EIE and emulates it, so ONNX's backend test machinery can be pointed at eiec.

Choices:
- **No pruning** (``sparsity=0``), 4-bit weight sharing as EIE stores weights: a layer whose
  weights have at most 15 distinct non-zero values keeps them exactly (the compiler's
  guarantee); more distinct values are shared, which changes the function (by the k-means
  quantisation error the compile report shows).
- **float32 arithmetic** in the emulator by default (``arith="float32"``): the same program
  with real arithmetic, so the results are comparable with ONNX's reference outputs at ONNX's
  tolerances (rtol 1e-3); ``arith="fixed16"`` runs the machine's 16-bit fixed point instead.
- **Weights given at run time**: ONNX node tests feed every operand as a graph input. The first
  graph input is the activation; every other input is bound as a constant (an initialiser)
  when ``run`` is called, and the model is compiled for those values (cached per content).
- A batch along the first axis runs as a sequence of batch-1 programs.
- Models of IR version 3 (every initialiser also a graph input) are read with IR version 4
  semantics: initialisers are constants.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.base import Backend, BackendRep

from eiec.emulator import EmulatorConfig, run_batch
from eiec.errors import InputError


class EieBackendRep(BackendRep):
    """A prepared model: compiled on the first ``run`` for the constants it is given."""

    def __init__(self, model: onnx.ModelProto, **options: Any) -> None:
        self.model = model
        self.arith = options.pop("arith", "float32")
        self.pes = int(options.pop("pes", 4))
        self.options = options
        self._compiled: dict[str, Any] = {}

    def _bind(self, constants: Mapping[str, np.ndarray]) -> onnx.ModelProto:
        """The model with ``constants`` turned from graph inputs into initialisers."""
        bound = onnx.ModelProto()
        bound.CopyFrom(self.model)
        # IR < 4 lists every initialiser among the graph inputs; from IR 4 on, an initialiser
        # that is also an input may be overridden at run time. Weights are constants here.
        bound.ir_version = max(bound.ir_version, 4)
        initialisers = {init.name for init in bound.graph.initializer}
        kept = [
            vi
            for vi in bound.graph.input
            if vi.name not in constants and vi.name not in initialisers
        ]
        del bound.graph.input[:]
        bound.graph.input.extend(kept)
        for name, value in constants.items():
            bound.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return bound

    def _program(self, model: onnx.ModelProto) -> Any:
        from eiec.compiler import CompileOptions, compile_model  # lazy: TVM

        key = hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
        if key not in self._compiled:
            options = CompileOptions.of(pes=self.pes, sparsity=0.0, **self.options)
            self._compiled[key] = compile_model(model, options).program
        return self._compiled[key]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Compile for the constant inputs, emulate the activation input; outputs in order."""

        initialisers = {init.name for init in self.model.graph.initializer}
        names = [vi.name for vi in self.model.graph.input if vi.name not in initialisers]
        if isinstance(inputs, Mapping):
            values = [np.asarray(inputs[name]) for name in names]
        else:
            values = [np.asarray(v) for v in (inputs if isinstance(inputs, Sequence) else [inputs])]
        if len(values) != len(names):
            raise InputError(
                f"the model has {len(names)} inputs ({', '.join(names)}); got {len(values)}",
                where="EieBackendRep.run",
            )
        model = self._bind(dict(zip(names[1:], values[1:], strict=True)))
        program = self._program(model)
        (port,) = program.inputs
        result = run_batch(program, {port.name: values[0]}, EmulatorConfig(arith=self.arith))
        return tuple(result.outputs[p.name] for p in program.outputs)


class EieBackend(Backend):
    """ONNX backend running FC (and LSTM / GRU) models through ``eiec`` compile + emulate."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        """Whether the model has inputs at all (EIE needs an activation to broadcast)."""
        initialisers = {init.name for init in model.graph.initializer}
        return any(vi.name not in initialisers for vi in model.graph.input)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> EieBackendRep:
        """A representation of ``model``; keyword options: ``arith``, ``pes`` and any
        ``CompileOptions`` field except ``sparsity``."""
        super().prepare(model, device, **kwargs)
        return EieBackendRep(model, **kwargs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """The emulator runs on the host: only ``CPU``."""
        return device == "CPU"


prepare = EieBackend.prepare
run_model = EieBackend.run_model
supports_device = EieBackend.supports_device
