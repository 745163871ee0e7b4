"""The gradual pruning schedule: Zhu & Gupta's automated gradual pruner (AGP).

The polynomial schedule TF-MOT (``PolynomialDecay``), NNCF and Distiller use: over ``n``
pruning steps the sparsity of a layer goes from its initial ``s_i`` to its target ``s_f`` as

    s_k = s_f + (s_i - s_f) * (1 - k / n) ** 3,   k = 1 .. n

fast at first, while many weights are redundant, slowing as the target nears. eiec takes a
pruning step four times per epoch over the first half of the retraining epochs (at least one
step), then keeps the final masks for the remaining epochs; each step prunes the smallest
magnitudes of the masked weights, so a pruned weight stays pruned.
"""

from __future__ import annotations

STEPS_PER_EPOCH = 4


def agp_sparsity(initial: float, final: float, step: int, steps: int) -> float:
    """The sparsity after pruning step ``step`` (1..``steps``) of ``steps``."""
    if steps <= 0 or step >= steps:
        return final
    return final + (initial - final) * (1.0 - step / steps) ** 3


def pruning_steps(epochs: int, steps_per_epoch: int) -> list[int]:
    """The training steps (0-based, within the whole run) at which a pruning step happens:
    ``STEPS_PER_EPOCH`` evenly spaced per epoch over the first ``ceil(epochs / 2)`` epochs."""
    prune_epochs = max(1, (epochs + 1) // 2)
    per = min(STEPS_PER_EPOCH, max(1, steps_per_epoch))
    count = prune_epochs * per
    total = prune_epochs * steps_per_epoch
    return [k * total // count for k in range(count)]
