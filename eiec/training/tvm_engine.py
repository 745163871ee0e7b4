"""The training engine on TVM's own ``tvm.relax.training``: SetupTrainer, Trainer, Adam.

The backbone (:mod:`eiec.training.backbone`) gets its loss appended and its gradient taken by
``SetupTrainer``; the trainer module is legalised, its matmuls scheduled by
:mod:`eiec.training.schedule_rules`, built for the host CPU and run by ``Trainer``.

Pitfalls of TVM 0.27 this module works around: ``Adam`` keeps its dtype as a type object that
numpy rejects (:class:`_Adam` stores the dtype string), and a target string with ``-mcpu`` is
rejected (the target is built from a dict).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.training import SetupTrainer, Trainer
from tvm.relax.training.loss import CrossEntropyLoss, Loss, MSELoss
from tvm.relax.training.optimizer import Adam

from eiec.errors import CompileError, EiecError
from eiec.isa.cache import cache_dir, digest, files_digest, load_library, store_library
from eiec.training import schedule_rules
from eiec.training.backbone import Backbone
from eiec.training.engine import TrainingSession
from eiec.training.schedule_rules import schedule_matmuls


class _Adam(Adam):
    """``Adam`` with its dtype as a string (0.27 stores a PrimType numpy cannot use)."""

    def _set_params_and_dtype(self, params: list[relax.Var]) -> None:
        super()._set_params_and_dtype(params)
        self.dtype = str(getattr(self.dtype, "dtype", self.dtype))


class _SoftCrossEntropyLoss(Loss):
    """Cross-entropy against target distributions: ``-sum(q * log_softmax(z)) / B`` over a
    batch of B rows (TVM's ``CategoricalCrossEntropyLoss`` takes integer one-hot targets
    only)."""

    def __init__(self) -> None:
        super().__init__("soft_cross_entropy_loss", 1, "sum")

    def __call__(self, predictions: relax.Type, targets: relax.Type) -> relax.Function:
        bb = relax.BlockBuilder()
        z = relax.Var("predictions", predictions)
        q = relax.Var("targets", targets)
        rows = float(int(predictions.shape[0]))
        with bb.function(self._loss_name, [z, q]):
            with bb.dataflow():
                log_p = bb.emit(relax.op.nn.log_softmax(z))
                total = bb.emit(relax.op.sum(relax.op.multiply(q, log_p)))
                loss = bb.emit_output(relax.op.divide(total, relax.const(-rows, "float32")))
            bb.emit_func_output(loss)
        return bb.get()[self._loss_name]


def host_target() -> tvm.target.Target:
    """The host CPU as an LLVM target (from a dict: 0.27 rejects ``-mcpu`` in strings)."""
    config: dict[str, object] = {"kind": "llvm"}
    cpu = str(tvm.target.codegen.llvm_get_system_cpu())
    if cpu and cpu != "generic" and tvm.target.codegen.llvm_is_valid_cpu(cpu, ""):
        config["mcpu"] = cpu
    return tvm.target.Target(config)


def _pipeline(target: tvm.target.Target) -> tvm.transform.Pass:
    """TVM's CPU pipeline with :func:`schedule_matmuls` after fusion."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu_generic  # lazy: TVM

    @tvm.transform.module_pass(opt_level=0, name="EiecTrainingPipeline")
    def pipeline(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        with target:
            passes = [
                *cpu_generic.library_dispatch_passes(target),
                *cpu_generic.legalize_passes(target),
                tvm.transform.module_pass(
                    lambda m, _c: schedule_matmuls(m), opt_level=0, name="ScheduleMatmuls"
                ),
                *cpu_generic.dataflow_lower_passes(target),
                *cpu_generic.finalize_passes(target),
            ]
            return tvm.transform.Sequential(passes)(mod)

    return pipeline


#: Bump when the pipeline changes what a build produces (part of the cache key, with the
#: sources of the schedule rules and of this module).
BUILD_VERSION = 1
_COMPILED: dict[str, Any] = {}
#: The sources whose code decides what a training build is (its cache key covers them).
_BUILD_SOURCES = (Path(__file__), Path(schedule_rules.__file__))


def build_key(train_mod: tvm.IRModule, target: Any) -> str:
    """The cache key of ``train_mod``'s build for ``target`` (:func:`_compiled`)."""
    # The text omits constants' values; the structural hash covers them.
    text = f"{train_mod.script()}\0{tvm_ffi.structural_hash(train_mod)}"
    sources = files_digest(_BUILD_SOURCES)
    return digest(text, str(target), tvm.__version__, str(BUILD_VERSION), sources)


def _compiled(train_mod: tvm.IRModule) -> Any:
    """``train_mod`` built for the host: once per process, and kept across processes in
    ``$XDG_CACHE_HOME/eiec/training`` as a shared library keyed by a hash of the module's text
    and structural hash (constants included), the target, TVM's version, :data:`BUILD_VERSION`
    and the sources that schedule the build (``_BUILD_SOURCES``). The backbone holds no
    weights, masks or indices, so one build serves every run of an architecture, loss and
    learning rate. An unreadable, unwritable or damaged cache only costs the build."""
    target = host_target()
    key = build_key(train_mod, target)
    if key in _COMPILED:
        return _COMPILED[key]
    path = cache_dir() / "training" / f"{key[:32]}.so"
    with _without_tvm_notes():
        executable = load_library(path, key)
        if executable is None:
            executable = tvm.compile(train_mod, target=target, relax_pipeline=_pipeline(target))
            store_library(executable, path, key)
    _COMPILED[key] = executable
    return executable


#: Lines TVM's native code logs while a training build is made, saved or loaded that say
#: nothing to a user: the LLVM codegen ignores the ``pragma_scope`` TVM's own legalisation of
#: ``take``'s gradient (the centroid fine-tuning's scatter-add) puts in, and says so once per
#: kernel; the VM executable's (de)serialiser can log its memory scopes.
_NOTES = re.compile(rb"Warning: Unknown pragma pragma_scope|Scope (Saving|Loaded):")


@contextmanager
def _without_tvm_notes() -> Iterator[None]:
    """While the body runs, file descriptor 2 (where TVM's C++ logs) goes to a temporary file;
    afterwards every line but :data:`_NOTES` is passed on to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            kept = [line for line in log.read().splitlines(True) if not _NOTES.search(line)]
            if kept:
                sys.stderr.write(b"".join(kept).decode(errors="replace"))


class TvmSession(TrainingSession):
    """A compiled trainer for one backbone, loss and learning rate."""

    def __init__(self, backbone: Backbone, loss: str, learning_rate: float) -> None:
        self.backbone = backbone
        out = backbone.output_shape
        pred_ty = relax.TensorType(list(out), "float32")
        if loss == "cross_entropy":
            target_ty = relax.TensorType([out[0]], "int64")
            loss_fn = CrossEntropyLoss(reduction="mean")
        elif loss == "soft_cross_entropy":
            target_ty = relax.TensorType(list(out), "float32")
            loss_fn = _SoftCrossEntropyLoss()
        else:
            target_ty = relax.TensorType(list(out), "float32")
            loss_fn = MSELoss(reduction="mean")
        setup = SetupTrainer(loss_fn, _Adam(learning_rate), [pred_ty, target_ty], legalize=False)
        try:
            train_mod = setup(backbone.module)
            # Trainer calls backbone (predict), the adjoint and the optimiser only.
            used = [Trainer.BACKBONE_FUNC, Trainer.ADJOINT_FUNC, Trainer.OPTIMIZER_FUNC]
            train_mod = relax.transform.DeadCodeElimination(used)(train_mod)
            executable = _compiled(train_mod)
        except EiecError:
            raise
        except (RuntimeError, AssertionError, ValueError, TypeError) as error:
            # TVM's gradient pass and build (an eiec gradient's CompileError arrives wrapped)
            text = str(error).strip().splitlines()
            raise CompileError(
                f"TVM cannot build the training graph of this model: "
                f"{text[-1] if text else type(error).__name__}",
                fix="compile without --train, or report the model",
            ) from error
        self._device = tvm.cpu()
        self._vm = relax.VirtualMachine(executable, self._device)
        self._train_mod = train_mod
        self._trainer = Trainer(train_mod, self._vm, self._device, zero_init_param_state=False)
        self._masks: list[tvm.runtime.Tensor] = []

    def reset(self, params: list[np.ndarray]) -> None:
        self._trainer = Trainer(self._train_mod, self._vm, self._device, False)
        self.set_params(params)

    def set_params(self, params: list[np.ndarray]) -> None:
        self._trainer.load_params([np.ascontiguousarray(p, np.float32) for p in params])

    def set_fixed(self, values: list[np.ndarray]) -> None:
        self._masks = [tvm.runtime.tensor(np.ascontiguousarray(v), self._device) for v in values]

    def params(self) -> list[np.ndarray]:
        exported = self._trainer.export_params()
        return [exported[name].numpy() for name in self.backbone.params]

    def step(self, inputs: list[np.ndarray], target: np.ndarray) -> float:
        loss = self._trainer.update([*inputs, *self._masks], [target])
        return float(loss.numpy())

    def gradients(self, inputs: list[np.ndarray], target: np.ndarray) -> list[np.ndarray]:
        """The loss gradient of every parameter on one batch (no step taken)."""
        device = self._device
        params = self._trainer.export_params()
        args = [
            *(tvm.runtime.tensor(np.ascontiguousarray(i), device) for i in inputs),
            *self._masks,
            *(params[name] for name in self.backbone.params),
            tvm.runtime.tensor(np.ascontiguousarray(target), device),
        ]
        _loss, grads = self._vm[Trainer.ADJOINT_FUNC](*args)
        return [g.numpy() for g in grads]

    def predict(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self._trainer.predict(*inputs, *self._masks).numpy()


class TvmEngine:
    """``tvm.relax.training`` as an :class:`eiec.training.engine.TrainingEngine`."""

    name = "tvm"

    def session(self, backbone: Backbone, loss: str, learning_rate: float) -> TvmSession:
        """A compiled trainer."""
        return TvmSession(backbone, loss, learning_rate)
