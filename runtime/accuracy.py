"""What both ``eiec run`` paths report about a classifier: predictions and top-1 accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from eiec.errors import InputError

#: A model's inputs: input name -> array, or one array for a one-input model.
Inputs = Mapping[str, np.ndarray] | np.ndarray


@dataclass
class Accuracy:
    """Top-1 accuracy against labels: the original model, the compressed model on the CPU
    (None on the BYOC path, which builds no compressed model), and the emulator."""

    original: float
    compressed: float | None
    emulator: float

    def to_json(self) -> dict[str, float]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


def predictions(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Predicted classes: an integer output of rank 1 (a label), else the arg-max of the first
    float output."""
    for value in outputs.values():
        if value.dtype.kind in "iu" and value.ndim == 1:
            return value
    for value in outputs.values():
        if value.dtype.kind == "f":
            return value.reshape(value.shape[0], -1).argmax(axis=1)
    raise InputError("the model has no output a class can be read from")
