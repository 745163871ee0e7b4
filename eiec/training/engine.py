"""The interface a training engine implements (TVM's is :mod:`eiec.training.tvm_engine`).

An engine compiles a :class:`~eiec.training.backbone.Backbone` with a loss (``cross_entropy``
against integer labels, ``soft_cross_entropy`` against class distributions, or ``mse`` against
targets, both of the backbone's output shape) and an
Adam learning rate into a :class:`TrainingSession`, which holds the parameters and steps them.
Another engine (e.g. for models far past a million weights) implements the same two classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import numpy as np

from eiec.training.backbone import Backbone


class TrainingSession(ABC):
    """A compiled backbone + loss + optimiser with its parameters."""

    backbone: Backbone

    @abstractmethod
    def reset(self, params: list[np.ndarray]) -> None:
        """Load the parameters and start the optimiser afresh (its state zeroed)."""

    @abstractmethod
    def set_params(self, params: list[np.ndarray]) -> None:
        """Load the parameters (in ``backbone.params`` order), keeping the optimiser state."""

    @abstractmethod
    def set_fixed(self, values: list[np.ndarray]) -> None:
        """The inputs that are not data (``backbone.fixed``: masks, indices) from now on."""

    @abstractmethod
    def params(self) -> list[np.ndarray]:
        """The current parameters."""

    @abstractmethod
    def step(self, inputs: list[np.ndarray], target: np.ndarray) -> float:
        """One optimiser step on one batch; the batch's loss before the step."""

    @abstractmethod
    def gradients(self, inputs: list[np.ndarray], target: np.ndarray) -> list[np.ndarray]:
        """The loss gradient of every parameter on one batch (no step taken)."""

    @abstractmethod
    def predict(self, inputs: list[np.ndarray]) -> np.ndarray:
        """The backbone's output on one batch."""


class TrainingEngine(Protocol):
    """Makes sessions."""

    name: str

    def session(self, backbone: Backbone, loss: str, learning_rate: float) -> TrainingSession:
        """A session for ``backbone`` with ``loss`` and Adam at ``learning_rate``."""
        ...
