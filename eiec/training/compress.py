"""Deep Compression's trained stages on a Relax module: prune + retrain, share + fine-tune.

:func:`train_compress` takes the imported module, the training data and each layer's target
sparsity, and returns the module with pruned, weight-shared and fine-tuned constants, which
``PruneWeights`` and ``ShareWeights`` then keep exactly (the zeros are already there; at most
``2**bits - 1`` distinct non-zero values per layer), plus a :class:`TrainingReport`.

1. **Retrain with gradual pruning** (:mod:`eiec.training.schedule`): masked weights, Adam,
   ``epochs`` epochs; the masks follow the AGP schedule over the first half.
2. **Share**: per layer, k-means with linear initialisation over the non-zero weights and bias
   values (:func:`eiec.passes.share_weights.share_values`), entry 0 fixed at zero; in a
   recurrent layer each value weighted by its importance to the loss (``weighted_sharing``:
   Hessian-weighted k-means).
3. **Fine-tune the centroids**: ``weights = take(codebook, indices)``, Adam on the codebook
   (the gradient of a centroid is the sum over its cluster), ``finetune_epochs`` epochs.

The objective is cross-entropy against ``y`` when the data has labels (with ``distill``, the
default for recurrent models, against ``y`` mixed with the original model's softened outputs:
knowledge distillation), else the mean squared error against the original model's outputs on
``x`` (distillation). Every stage is measured on
a held-out split (``held_out`` of the data, seeded): accuracy with labels, the relative RMS
output error against the original model without. Deterministic for a given seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import tvm
from tvm.relax.expr_functor import mutator

from eiec.errors import CompileError
from eiec.passes.prune_weights import per_pe_counts, prune_balanced, prune_magnitude, row_owners
from eiec.passes.share_weights import share_values
from eiec.relax_layers.fc import LayerConstantRewriter, rewrite_layers
from eiec.relax_layers.lstm import find_recurrent_layers, rewrite_recurrent_layers
from eiec.training.backbone import (
    LayerWeights,
    SharedLayer,
    build_backbone,
    fixed_inputs,
    read_layers,
)
from eiec.training.data import TrainingData
from eiec.training.engine import TrainingEngine, TrainingSession
from eiec.training.schedule import agp_sparsity, pruning_steps

#: The least k-means weight of a value, relative to the mean importance (Trainer.share).
IMPORTANCE_FLOOR = 1e-3

#: ``TrainOptions.distill`` of a model with recurrent layers when not given.
RECURRENT_DISTILL = 0.5

#: Stages measured, in order (the compiler adds "emulated").
STAGES = ("dense", "pruned", "retrained", "shared", "fine-tuned")


@dataclass(frozen=True)
class TrainOptions:
    """How to train. ``finetune_epochs`` defaults to half of ``epochs`` (at least 1).

    A model with recurrent layers trains ``sequence_batch`` sequences per step, the others
    ``batch`` samples. The learning rates are Adam's at ``batch`` samples per step, or for a
    recurrent model at one sequence per step, scaled by the square root of the sequences per
    step (the square-root scaling rule for Adam: Malladi et al., NeurIPS 2022). On the LSTM
    classifier of ``benchmarks/bench_lstm_training.py``, 8 sequences per step reach
    one-sequence training's held-out accuracy per epoch in a fifth of its time per epoch.
    """

    epochs: int = 10
    finetune_epochs: int | None = None
    seed: int = 0
    batch: int = 32
    sequence_batch: int = 8
    learning_rate: float = 1e-3
    codebook_learning_rate: float = 1e-4
    held_out: float = 0.2
    #: Hessian-weighted k-means for the recurrent layers (LSTM, GRU: Choi, El-Khamy & Lee,
    #: "Towards the Limit of Network Quantization", ICLR 2017): each value's weight in the
    #: clustering is the diagonal of the loss's Hessian, approximated by the mean squared
    #: gradient over the training split at the retrained weights (the empirical Fisher), so
    #: the centroids sit closest to the weights the loss is most sensitive to. On the speech
    #: LSTM at 10% density (60 epochs, 3 seeds, in a trial whose learning rate also decayed
    #: after pruning) it kept the shared model's accuracy (before fine-tuning) at 96.5% /
    #: 96.1% (plain / --balance) where plain k-means gave 95.8% / 93.3% (one run fell to 89%;
    #: at 30 epochs without the decay plain k-means fell to 90% too); on the digits MLP it
    #: gained nothing (96.0% vs 96.3%), so FC layers keep Deep Compression's k-means.
    #: False: plain k-means for every layer.
    weighted_sharing: bool = True
    #: Knowledge distillation from the dense model (Hinton, Vinyals & Dean, "Distilling the
    #: Knowledge in a Neural Network", 2015) when the data has labels: each training sample's
    #: target is ``(1 - distill) * onehot(y) + distill * softmax(teacher / temperature)``, the
    #: teacher being the model's own output before pruning; 0: the labels alone. None (the
    #: default): ``RECURRENT_DISTILL`` for a model with recurrent layers, 0 for the others. On
    #: the speech classifiers of ``benchmarks/bench_speech.py`` at 10% density (60 epochs,
    #: seeds 0-2) the emulated test accuracy rose from a mean of 95.86% to 97.39% (LSTM) and
    #: 95.77% to 97.30% (LSTM with ``balance``), 96.76% to 97.12% (GRU; 97.30% once it trained
    #: 8 sequences per step), the dense models' 97.30% (the GRU's 96.76% measured by the same
    #: benchmark before this option); on the
    #: LSTM(6, 24) of ``benchmarks/bench_lstm_training.py`` (100 held-out sequences) fine-tuned
    #: 95 / 99 / 83% at 1 / 8 / 32 sequences per step and 99% with ``balance``, against 90 /
    #: 98 / 77% and 93% with the labels alone. On FC models it gained nothing
    #: (LeNet-300-100 of ``bench_lenet.py``: 95.1% -> 94.9% test, 97.6% -> 98.4% held out;
    #: the digits MLP of ``examples/digits/demo.py``: 97.78% -> 97.33%, two of 450 images),
    #: so they keep the labels alone.
    distill: float | None = None
    temperature: float = 2.0
    #: Load-balance-aware pruning (ESE): each of ``pes`` PEs' rows of a layer pruned alike.
    balance: bool = False
    pes: int = 64

    def distill_weight(self, recurrent: bool) -> float:
        """``distill``, resolved for a model with (``recurrent``) or without recurrent layers."""
        if self.distill is not None:
            return self.distill
        return RECURRENT_DISTILL if recurrent else 0.0

    def balance_pes(self) -> int | None:
        """The PEs pruning balances over, or None."""
        return self.pes if self.balance else None

    def finetune(self) -> int:
        """Centroid fine-tuning epochs."""
        if self.finetune_epochs is not None:
            return self.finetune_epochs
        return max(1, self.epochs // 2)


@dataclass(frozen=True)
class StageResult:
    """One stage measured on the held-out split (``accuracy`` None without labels)."""

    stage: str
    loss: float
    accuracy: float | None
    output_error: float


@dataclass(frozen=True)
class EpochResult:
    """One training epoch: mean training loss, then the held-out figures."""

    stage: str
    epoch: int
    train_loss: float
    held_out: StageResult
    seconds: float


@dataclass(frozen=True)
class PeBalance:
    """With ``balance``: one layer's non-zero weights of the busiest of ``pes`` PEs and their
    mean over the PEs, ``before`` balancing (the dense weights magnitude-pruned to the layer's
    target, as without ``balance``) and ``after`` (the trained, balanced layer)."""

    layer: str
    pes: int
    max_before: int
    mean_before: float
    max_after: int
    mean_after: float

    def ratios(self) -> tuple[float, float]:
        """Busiest PE over the mean (1.0: balanced), before and after (0 for an empty layer)."""
        before = self.max_before / self.mean_before if self.mean_before else 0.0
        return before, self.max_after / self.mean_after if self.mean_after else 0.0


@dataclass
class TrainingReport:
    """What training did: per stage held-out figures, per epoch losses, the densities, and
    with ``balance`` each layer's PE balance."""

    objective: str
    engine: str
    samples: int
    held_out_samples: int
    batch: int
    stages: list[StageResult] = field(default_factory=list)
    epochs: list[EpochResult] = field(default_factory=list)
    densities: dict[str, float] = field(default_factory=dict)
    sensitivity: object | None = None
    build_seconds: float = 0.0
    #: The shared model's loss on the training split before and after centroid fine-tuning.
    shared_train_loss: float = 0.0
    fine_tuned_train_loss: float = 0.0
    balance: list[PeBalance] = field(default_factory=list)
    #: The weight of the dense model's soft outputs in the targets (TrainOptions.distill).
    distill: float = 0.0

    def stage(self, name: str) -> StageResult | None:
        """The figures of stage ``name``, if measured."""
        return next((s for s in self.stages if s.stage == name), None)

    def seconds_per_epoch(self) -> float:
        """Mean wall time of a training epoch."""
        return float(np.mean([e.seconds for e in self.epochs])) if self.epochs else 0.0

    def to_json(self) -> dict[str, object]:
        """JSON-ready data."""
        sensitivity = getattr(self.sensitivity, "to_json", None)
        return {
            "objective": self.objective,
            "engine": self.engine,
            "samples": self.samples,
            "held_out_samples": self.held_out_samples,
            "batch": self.batch,
            "stages": [asdict(s) for s in self.stages],
            "epochs": [{**asdict(e), "held_out": asdict(e.held_out)} for e in self.epochs],
            "densities": dict(self.densities),
            "seconds_per_epoch": self.seconds_per_epoch(),
            "build_seconds": self.build_seconds,
            "shared_train_loss": self.shared_train_loss,
            "fine_tuned_train_loss": self.fine_tuned_train_loss,
            "balance": [asdict(b) for b in self.balance],
            "distill": self.distill,
            "sensitivity": sensitivity() if sensitivity else None,
        }


#: progress(stage, epoch, epochs, result-or-None): called before each epoch (result None)
#: and after it.
ProgressFn = Callable[[str, int, int, EpochResult | None], None]


def default_engine() -> TrainingEngine:
    """TVM's ``tvm.relax.training``."""
    from eiec.training.tvm_engine import TvmEngine  # lazy: TVM

    return TvmEngine()


@mutator
class _TrainedRewriter(LayerConstantRewriter):
    """Substitutes the trained weights."""


class Trainer:
    """The data split (or ``validation``, measured instead of a held-out part of ``data``),
    the objective and the compiled sessions over one module."""

    def __init__(
        self,
        mod: tvm.IRModule,
        data: TrainingData,
        batch_axis: int | None,
        options: TrainOptions,
        engine: TrainingEngine | None = None,
        progress: ProgressFn | None = None,
        validation: TrainingData | None = None,
    ) -> None:
        self.mod = mod
        self.options = options
        self.engine = engine or default_engine()
        self.progress = progress
        self.batch_axis = batch_axis
        self.layers = read_layers(mod)
        self.distill = options.distill_weight(any(layer.gates > 1 for layer in self.layers))
        self.objective = "cross_entropy" if data.y is not None else "distillation"
        self.rng = np.random.default_rng(options.seed)
        start = time.perf_counter()
        self.masked = self._build(None)
        self.dense_params = _params_of(self.layers)
        if data.y is None:
            self.masked.set_params(self.dense_params)
            self._set_fixed(self.masked, self.layers)
            data = replace(data, teacher=self._predict(self.masked, data.x))
            if validation is not None:
                validation = replace(validation, teacher=self._predict(self.masked, validation.x))
        if validation is None:
            self.train_data, self.held_out = data.split(options.held_out, options.seed)
        else:  # measured on data of its own: every sample of ``data`` trains
            self.train_data, self.held_out = data, validation
        self.soft_targets: np.ndarray | None = None
        if data.y is not None and self.distill > 0:
            self.masked.set_params(self.dense_params)
            self._set_fixed(self.masked, self.layers)
            self.soft_targets = soft_targets(
                self.train_data.y,
                self._predict(self.masked, self.train_data.x),
                self.distill,
                options.temperature,
            )
        batch = self.masked.backbone.batch
        if options.epochs and len(self.train_data) < batch:
            held = "" if validation is not None else f", {len(self.held_out)} held out"
            raise CompileError(
                f"{len(self.train_data)} training sample(s){held}: fewer than one batch of "
                f"{batch}, so no training step would run and pruning could not reach its target",
                where="--train",
                fix=f"give at least {batch} training samples"
                + ("" if validation is not None else " beside the 20% held out")
                + ", or --epochs 0 (prune and share without retraining)",
            )
        self.report = TrainingReport(
            self.objective,
            self.engine.name,
            len(self.train_data),
            len(self.held_out),
            self.masked.backbone.batch,
        )
        self.report.distill = self.distill if self.soft_targets is not None else 0.0
        self.report.build_seconds += time.perf_counter() - start

    # --- sessions ---------------------------------------------------------------------------

    def _build(self, shared: dict[str, SharedLayer] | None) -> TrainingSession:
        recurrent = any(layer.gates > 1 for layer in self.layers)
        batch = self.options.sequence_batch if recurrent else self.options.batch
        try:
            return self._session(shared, batch, recurrent)
        except CompileError:
            if batch == 1:
                raise
            # TVM could not build the re-batched graph: train one sample per step, as a model
            # that retrace cannot re-batch does.
            return self._session(shared, 1, recurrent)

    def _session(
        self, shared: dict[str, SharedLayer] | None, batch: int, recurrent: bool
    ) -> TrainingSession:
        backbone = build_backbone(
            self.mod,
            self.layers,
            self.batch_axis,
            batch,
            shared,
            flatten_outputs=self.objective == "distillation",
        )
        if self.objective == "cross_entropy" and len(backbone.output_shape) != 2:
            raise CompileError(
                f"training with labels needs an output of shape (batch, classes); this model's "
                f"is {list(backbone.output_shape)}",
                fix="leave y out to train against the model's own outputs (distillation)",
            )
        rate = self.options.codebook_learning_rate if shared else self.options.learning_rate
        if recurrent:
            rate *= math.sqrt(backbone.batch)
        return self.engine.session(backbone, self._loss(), rate)

    def _loss(self) -> str:
        """The engine's loss for this objective and ``distill``."""
        if self.objective != "cross_entropy":
            return "mse"
        return "soft_cross_entropy" if self.distill > 0 else "cross_entropy"

    def _set_fixed(
        self,
        session: TrainingSession,
        layers: list[LayerWeights],
        shared: dict[str, SharedLayer] | None = None,
    ) -> None:
        """``session``'s masks (of ``layers``; ones for a layer without) or indices."""
        session.set_fixed(fixed_inputs(session.backbone, layers, shared))

    # --- data -------------------------------------------------------------------------------

    def _inputs(self, x: np.ndarray) -> list[np.ndarray]:
        """A batch of samples (B, *sample) as the backbone's input."""
        if self.batch_axis is None:
            return [x[0]]
        return [np.ascontiguousarray(np.moveaxis(x, 0, self.batch_axis))]

    def _predict(self, session: TrainingSession, x: np.ndarray) -> np.ndarray:
        """Per-sample outputs (N, F) of ``session`` on samples ``x`` (the last batch padded)."""
        batch = session.backbone.batch
        rows = []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            count = len(chunk)
            if count < batch:
                pad = np.zeros((batch - count, *x.shape[1:]), x.dtype)
                chunk = np.concatenate([chunk, pad])
            out = session.predict(self._inputs(chunk))
            rows.append(out.reshape(batch, -1)[:count])
        return np.concatenate(rows)

    def _targets(self, index: np.ndarray) -> np.ndarray:
        """The loss targets of the training samples at ``index`` (:meth:`_loss`)."""
        part = self.train_data
        if self.soft_targets is not None:
            return self.soft_targets[index]
        if part.y is not None:
            return part.y[index]
        return part.teacher[index].reshape(self.masked.backbone.output_shape)

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(
        self, session: TrainingSession, stage: str, part: TrainingData | None = None
    ) -> StageResult:
        """Figures of ``session``'s current parameters and masks on ``part`` (held out)."""
        part = part or self.held_out
        return self.score(stage, self._predict(session, part.x), part)

    def score(
        self, stage: str, outputs: np.ndarray, part: TrainingData | None = None
    ) -> StageResult:
        """Figures of per-sample ``outputs`` (N, F) of ``part``'s samples (held out)."""
        part = part or self.held_out
        pred = outputs.reshape(len(part), -1).astype(np.float64)
        if part.y is not None:
            shifted = pred - pred.max(axis=1, keepdims=True)
            logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            loss = float(-logp[np.arange(len(part.y)), part.y].mean())
            accuracy = float((pred.argmax(axis=1) == part.y).mean())
            return StageResult(stage, loss, accuracy, 1.0 - accuracy)
        teacher = part.teacher.astype(np.float64)
        loss = float(np.mean((pred - teacher) ** 2))
        rms = float(np.sqrt(np.mean(teacher**2))) or 1.0
        return StageResult(stage, loss, None, float(np.sqrt(loss)) / rms)

    def evaluate_layers(self, layers: list[LayerWeights], stage: str) -> StageResult:
        """Held-out figures of ``layers``' weights with their masks."""
        self.masked.set_params(_params_of(layers))
        self._set_fixed(self.masked, layers)
        return self.evaluate(self.masked, stage)

    # --- training ---------------------------------------------------------------------------

    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (full batches)."""
        return len(self.train_data) // self.masked.backbone.batch

    def _epoch(
        self,
        session: TrainingSession,
        stage: str,
        epoch: int,
        epochs: int,
        before_step: Callable[[int], None] | None = None,
        record: bool = True,
    ) -> EpochResult:
        if self.progress and record:
            self.progress(stage, epoch, epochs, None)
        backbone = session.backbone
        start = time.perf_counter()
        losses = []
        part = self.train_data
        for step, index in enumerate(part.batches(backbone.batch, self.rng)):
            if before_step is not None:
                before_step(epoch * self.steps_per_epoch() + step)
            losses.append(session.step(self._inputs(part.x[index]), self._targets(index)))
        seconds = time.perf_counter() - start
        result = EpochResult(
            stage, epoch, float(np.mean(losses)), self.evaluate(session, stage), seconds
        )
        if record:
            self.report.epochs.append(result)
            if self.progress:
                self.progress(stage, epoch + 1, epochs, result)
        return result

    def retrain(
        self, targets: dict[str, float], epochs: int, record: bool = True
    ) -> list[LayerWeights]:
        """Gradual pruning of each layer to its sparsity in ``targets`` (the others stay as
        they are) with retraining from the dense weights; the layers with their trained
        weights (masks applied) and final masks."""
        session = self.masked
        session.reset(self.dense_params)
        layers = [_copy(layer) for layer in self.layers]
        initial = {layer.name: 1.0 - _density(layer) for layer in layers}
        schedule = set(pruning_steps(epochs, self.steps_per_epoch()))
        count = len(schedule)
        done = [0]

        def before_step(step: int) -> None:
            if step not in schedule:
                return
            done[0] += 1
            self._sync(session, layers)
            for layer in layers:
                if layer.name in targets:
                    sparsity = agp_sparsity(
                        initial[layer.name], targets[layer.name], done[0], count
                    )
                    layer.masks = prune_masks(layer, sparsity, self.options.balance_pes())
            self._set_fixed(session, layers)

        self._set_fixed(session, layers)
        for epoch in range(epochs):
            self._epoch(session, "retrain", epoch, epochs, before_step, record)
        self._sync(session, layers)
        return layers

    def _sync(self, session: TrainingSession, layers: list[LayerWeights]) -> None:
        """Copy ``session``'s parameters into ``layers`` (masks applied)."""
        params = iter(session.params())
        for layer in layers:
            layer.weights = [next(params) for _ in layer.weights]
            layer.weights = layer.effective()
            if layer.bias is not None:
                layer.bias = next(params)

    def share(self, layers: list[LayerWeights], bits: int) -> dict[str, SharedLayer]:
        """k-means weight sharing of every layer (see :func:`share_layer`), a recurrent
        layer's weighted by :meth:`importance` with ``weighted_sharing``."""
        weighted = {layer.name for layer in layers if layer.kind != "fc"}
        if not self.options.weighted_sharing or not weighted:
            return {layer.name: share_layer(layer, bits) for layer in layers}
        importance = self.importance(layers)
        return {
            layer.name: share_layer(
                layer, bits, importance[layer.name] if layer.name in weighted else None
            )
            for layer in layers
        }

    def importance(self, layers: list[LayerWeights]) -> dict[str, list[np.ndarray]]:
        """Per layer, the mean squared loss gradient of each weight tensor and of the bias (in
        :func:`share_layer`'s order) over the training split's full batches at ``layers``'
        weights and masks: the empirical Fisher, the Hessian's diagonal as Choi et al.
        approximate it."""
        session = self.masked
        session.set_params(_params_of(layers))
        self._set_fixed(session, layers)
        part = self.train_data
        batch = session.backbone.batch
        order = np.random.default_rng(self.options.seed)
        total: list[np.ndarray] | None = None
        count = 0
        for index in part.batches(batch, order):
            grads = session.gradients(self._inputs(part.x[index]), self._targets(index))
            squares = [g.astype(np.float64) ** 2 for g in grads]
            if total is not None:
                squares = [t + q for t, q in zip(total, squares, strict=True)]
            total = squares
            count += 1
        assert total is not None, "the Trainer checked there is a full batch"
        values = iter(t / count for t in total)
        result = {}
        for layer in layers:
            tensors = [next(values) for _ in layer.weights]
            bias = next(values) if layer.bias is not None else None
            result[layer.name] = [*tensors, *([] if bias is None else [bias])]
        return result

    def fine_tune(
        self, layers: list[LayerWeights], shared: dict[str, SharedLayer], epochs: int
    ) -> tuple[dict[str, SharedLayer], StageResult]:
        """Centroid fine-tuning; the shared layers with their trained centroids and the
        held-out figures before it."""
        start = time.perf_counter()
        session = self._build(shared)
        self.report.build_seconds += time.perf_counter() - start
        session.reset([shared[layer.name].centroids for layer in layers])
        self._set_fixed(session, layers, shared)
        before = self.evaluate(session, "shared")
        self.report.shared_train_loss = self.evaluate(session, "", self.train_data).loss
        for epoch in range(epochs):
            self._epoch(session, "fine-tune", epoch, epochs)
        self.report.fine_tuned_train_loss = self.evaluate(session, "", self.train_data).loss
        trained = iter(session.params())
        result = {
            layer.name: replace(shared[layer.name], centroids=next(trained)) for layer in layers
        }
        self.shared_session = session
        return result, before


def soft_targets(
    labels: np.ndarray, teacher: np.ndarray, distill: float, temperature: float
) -> np.ndarray:
    """Distillation targets (N, C) float32: ``(1 - distill) * onehot(labels) + distill *
    softmax(teacher / temperature)`` (:attr:`TrainOptions.distill`)."""
    scaled = teacher.astype(np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    soft = np.exp(scaled)
    soft /= soft.sum(axis=1, keepdims=True)
    hard = np.eye(teacher.shape[1])[labels]
    return ((1.0 - distill) * hard + distill * soft).astype(np.float32)


def prune_masks(layer: LayerWeights, sparsity: float, pes: int | None = None) -> list[np.ndarray]:
    """Masks keeping the largest magnitudes of ``layer``'s masked weights (PruneWeights' rule,
    in its order: a pruned weight has magnitude 0 and stays pruned); with ``pes``, of each
    PE's rows on their own (ESE's load-balance-aware pruning)."""
    weights = _prunable(layer)
    if pes is None:
        pruned = prune_magnitude(weights, sparsity)
    else:
        pruned = prune_balanced(weights, sparsity, row_owners(weights, pes, layer.hidden))
    return layer.from_prunable((pruned != 0).astype(np.float32))


def pe_balance(layer: LayerWeights, pes: int) -> tuple[int, float]:
    """The non-zero weights of ``layer``'s busiest PE and their mean over the ``pes`` PEs."""
    weights = _prunable(layer)
    counts = per_pe_counts(weights, row_owners(weights, pes, layer.hidden), pes)
    return int(counts.max()), float(counts.mean())


def share_layer(
    layer: LayerWeights, bits: int, importance: list[np.ndarray] | None = None
) -> SharedLayer:
    """Cluster the non-zero weights and bias values of ``layer`` together (linear init, entry 0
    = zero); each element's codebook index (0 for zeros) and the ``2**bits - 1`` centroids
    (unused entries repeat the last centroid: no weight points at them). ``importance`` (one
    array per weight tensor, then the bias's, as :meth:`Trainer.importance` gives): the
    k-means weights, relative to their mean, floored at ``IMPORTANCE_FLOOR`` so that no value
    is ignored."""
    clusters = (1 << bits) - 1
    weights = layer.effective()
    bias = layer.bias if layer.bias is not None else np.zeros(0, np.float32)
    parts = [*weights, bias]
    values = np.concatenate([p[p != 0] for p in parts]).astype(np.float64)
    sample_weights = None
    if importance is not None:
        scores = [*importance, *([] if layer.bias is not None else [np.zeros(0)])]
        picked = np.concatenate([s[p != 0] for p, s in zip(parts, scores, strict=True)])
        mean = float(picked.mean()) if picked.size else 0.0
        if mean > 0 and np.isfinite(mean):
            sample_weights = picked / mean + IMPORTANCE_FLOOR
    if values.size == 0:
        centroids, labels = np.zeros(0), np.zeros(0, np.int64)
    else:
        centroids, labels, _ = share_values(values, clusters, sample_weights)
    book = np.zeros(clusters, np.float32)
    book[: centroids.size] = centroids
    if 0 < centroids.size < clusters:
        book[centroids.size :] = centroids[-1]
    indices = []
    offset = 0
    for part in parts:
        index = np.zeros(part.shape, np.int32)
        count = int(np.count_nonzero(part))
        index[part != 0] = labels[offset : offset + count] + 1
        offset += count
        indices.append(index)
    return SharedLayer(indices[:-1], indices[-1] if layer.bias is not None else None, book)


def shared_weights(layer: LayerWeights, share: SharedLayer) -> LayerWeights:
    """``layer`` with its weights and bias looked up in ``share``'s codebook."""
    book = np.concatenate([[0.0], share.centroids]).astype(np.float32)
    weights = [book[index] for index in share.indices]
    bias = None if share.bias_indices is None else book[share.bias_indices]
    return LayerWeights(layer.name, layer.kind, weights, bias)


def _params_of(layers: list[LayerWeights]) -> list[np.ndarray]:
    params: list[np.ndarray] = []
    for layer in layers:
        params += layer.weights
        if layer.bias is not None:
            params.append(layer.bias)
    return params


def _copy(layer: LayerWeights) -> LayerWeights:
    return LayerWeights(
        layer.name,
        layer.kind,
        [w.copy() for w in layer.weights],
        None if layer.bias is None else layer.bias.copy(),
        [m.copy() for m in layer.masks],
    )


def _prunable(layer: LayerWeights) -> np.ndarray:
    return LayerWeights(layer.name, layer.kind, layer.effective(), layer.bias).prunable()


def _density(layer: LayerWeights) -> float:
    values = _prunable(layer)
    return float(np.count_nonzero(values)) / values.size


def write_back(mod: tvm.IRModule, layers: list[LayerWeights]) -> tvm.IRModule:
    """``mod`` with ``layers``' weights as its constants."""
    fc = {layer.name: (layer.weights[0], layer.bias) for layer in layers if layer.kind == "fc"}
    trained = {layer.name: layer for layer in layers}
    recurrent = {
        layer.name: (*trained[layer.name].weights, layer.onnx_bias(trained[layer.name].bias))
        for layer in find_recurrent_layers(mod)
        if layer.name in trained
    }
    return rewrite_recurrent_layers(rewrite_layers(mod, fc, _TrainedRewriter), recurrent)


def train_compress(
    mod: tvm.IRModule,
    data: TrainingData,
    batch_axis: int | None,
    targets: dict[str, float],
    bits: int,
    options: TrainOptions | None = None,
    engine: TrainingEngine | None = None,
    progress: ProgressFn | None = None,
    trainer: Trainer | None = None,
) -> tuple[tvm.IRModule, TrainingReport]:
    """Prune + retrain, share + fine-tune every layer of ``mod`` (``targets``: sparsity per
    layer name); the module with the trained constants and the report (see the module
    docstring). ``trainer``: one already built on the same module and data (sensitivity)."""
    options = options or TrainOptions()
    trainer = trainer or Trainer(mod, data, batch_axis, options, engine, progress)
    unknown = sorted(set(targets) - {layer.name for layer in trainer.layers})
    if unknown:
        raise CompileError(
            f"no layer named {', '.join(unknown)} to train",
            fix="the layers are: " + ", ".join(layer.name for layer in trainer.layers),
        )
    report = trainer.report
    dense = trainer.evaluate_layers(trainer.layers, "dense")
    pruned_layers = [_copy(layer) for layer in trainer.layers]
    for layer in pruned_layers:
        if layer.name in targets:
            layer.masks = prune_masks(layer, targets[layer.name], options.balance_pes())
    pruned = trainer.evaluate_layers(pruned_layers, "pruned")
    layers = trainer.retrain(targets, options.epochs) if options.epochs else pruned_layers
    if not options.epochs:
        for layer in layers:
            layer.weights = layer.effective()
    retrained = trainer.evaluate_layers(layers, "retrained")
    shared = trainer.share(layers, bits)
    tuned, shared_result = trainer.fine_tune(layers, shared, options.finetune())
    tuned_result = trainer.evaluate(trainer.shared_session, "fine-tuned")
    report.stages = [dense, pruned, retrained, shared_result, tuned_result]
    final = [shared_weights(layer, tuned[layer.name]) for layer in layers]
    report.densities = {layer.name: _density(layer) for layer in final}
    pes = options.balance_pes()
    if pes is not None:
        for dense_layer, layer in zip(trainer.layers, final, strict=True):
            if layer.name in targets:
                unbalanced = _copy(dense_layer)
                unbalanced.masks = prune_masks(unbalanced, targets[layer.name])
                report.balance.append(
                    PeBalance(
                        layer.name, pes, *pe_balance(unbalanced, pes), *pe_balance(layer, pes)
                    )
                )
    return write_back(mod, final), report
