"""``--sparsity auto`` chooses only densities that fit the machine (the compile pre-check's
rule), driven by a fake trainer: no TVM build, no training."""

from __future__ import annotations

import numpy as np
import pytest

from eiec.errors import CapacityError
from eiec.isa.program import Machine
from eiec.training import sensitivity
from eiec.training.backbone import LayerWeights
from eiec.training.compress import StageResult

SHAPES = {"fc1": (784, 300), "fc2": (300, 100), "fc3": (100, 10)}  # LeNet-300-100, W as (K, M)


class FakeTrainer:
    """A dense accuracy of 1.0; ``loss[layer]`` points lost at every density (0 for others)."""

    def __init__(self, loss: dict[str, float]) -> None:
        self.layers = [
            LayerWeights(name, "fc", [np.ones(shape, np.float32)], np.ones(shape[1], np.float32))
            for name, shape in SHAPES.items()
        ]
        self.loss = loss
        self.retrained: list[tuple[str, float]] = []

    def retrain(self, targets: dict[str, float], epochs: int, record: bool) -> object:
        ((name, sparsity),) = targets.items()
        self.retrained.append((name, round(1.0 - sparsity, 4)))
        return name

    def evaluate_layers(self, layers: object, stage: str) -> StageResult:
        lost = self.loss.get(layers, 0.0) if isinstance(layers, str) else 0.0
        return StageResult(stage, 0.0, 1.0 - lost / 100, 0.0)


ONE_PE = Machine(pes=1)  # 16-bit pointers: at most 65535 of fc1's 235200 weights, 27.9%


def test_auto_never_tries_or_picks_a_density_that_does_not_fit() -> None:
    trainer = FakeTrainer({})
    table = sensitivity.analyse(trainer, max_drop=0.5, machine=ONE_PE)  # type: ignore[arg-type]
    assert table.chosen == {"fc1": 0.02, "fc2": 0.02, "fc3": 0.02}
    assert table.unfit == {"fc1": [0.5, 0.3]}
    assert ("fc1", 0.5) not in trainer.retrained and ("fc1", 0.3) not in trainer.retrained
    assert table.notes == {"fc1": "1 PE fits <= 20%"}
    assert table.to_json()["layers"]["fc1"]["note"] == "1 PE fits <= 20%"


def test_no_density_within_the_limit_fits_takes_the_densest_that_fits() -> None:
    trainer = FakeTrainer({"fc1": 1.0})  # fc1 loses a point at any density
    table = sensitivity.analyse(trainer, max_drop=0.5, machine=ONE_PE)  # type: ignore[arg-type]
    assert table.chosen == {"fc1": 0.2, "fc2": 0.02, "fc3": 0.02}
    note = "over the limit: the densest that fits 1 PE"
    assert table.notes == {"fc1": note}
    assert table.to_json()["layers"]["fc1"]["note"] == note
    # without a machine the old rule: a layer that cannot lose half its weights keeps them all
    assert sensitivity.analyse(trainer, max_drop=0.5).chosen["fc1"] == 1.0  # type: ignore[arg-type]


def test_nothing_fits_raises_before_any_training() -> None:
    trainer = FakeTrainer({})
    with pytest.raises(CapacityError) as caught:
        sensitivity.analyse(trainer, max_drop=0.5, machine=Machine(pes=1, ptr_bits=8))  # type: ignore[arg-type]
    assert str(caught.value) == (
        "layer fc1: --sparsity auto: some PE stores at least 4704 entries of this layer at "
        "sparsity 0.98, more than 8-bit column pointers address (255), the sparsest it tries "
        "(use more PEs, a higher --sparsity, or a larger --ptr-bits)"
    )
    assert trainer.retrained == []
