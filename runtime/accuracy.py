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


def check_labels(labels: np.ndarray, outputs: Mapping[str, np.ndarray], where: str) -> None:
    """InputError when ``labels`` hold classes the model's scores cannot predict (outside
    0..C-1 for a float output of C scores per sample): the accuracy would be meaningless.
    A model with an integer label output (skl2onnx) names its own classes: not checked."""
    if any(v.dtype.kind in "iu" and v.ndim == 1 for v in outputs.values()):
        return
    name, scores = next(((k, v) for k, v in outputs.items() if v.dtype.kind == "f"), (None, None))
    if scores is None:
        return
    classes = int(np.prod(scores.shape[1:], dtype=np.int64))
    bad = np.unique(labels[(labels < 0) | (labels >= classes)])
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise InputError(
            f"{int(np.isin(labels, bad).sum())} of {labels.size} labels ({shown}) are not "
            f"classes of the model: its output '{name}' scores {classes} classes "
            f"(0..{classes - 1})",
            where=where,
            fix=f"give class indices in 0..{classes - 1}, in the order of the model's outputs",
        )


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
