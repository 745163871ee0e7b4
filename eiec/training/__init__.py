"""Deep Compression's trained stages: pruning with retraining, trained quantisation, and the
per-layer sensitivity analysis that picks each layer's sparsity.

- :mod:`~eiec.training.data`: ``DATA.npz`` (``x``, optional labels ``y``), split and batches.
- :mod:`~eiec.training.schedule`: the gradual (AGP) pruning schedule.
- :mod:`~eiec.training.backbone`: the imported Relax ``main`` as a training backbone (masked
  weights, or ``take(codebook, indices)``).
- :mod:`~eiec.training.engine`: the engine interface; :mod:`~eiec.training.tvm_engine`: TVM's
  ``tvm.relax.training``; :mod:`~eiec.training.schedule_rules`: a CPU matmul schedule for it.
- :mod:`~eiec.training.compress`: prune + retrain, share + fine-tune.
- :mod:`~eiec.training.sensitivity`: ``--sparsity auto``.
"""
