"""Dense models and data for the training tests: scikit-learn's digits, an MLP trained dense
(scikit-learn, seeded, one BLAS thread) and exported as PyTorch would (``Gemm``, ``transB=1``)."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _digits_script() -> ModuleType:
    """examples/digits/train_digits_mlp.py (its ``gemm_model`` exports as PyTorch does)."""
    name = "train_digits_mlp"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / "digits" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Digits:
    """The digits split (train 3/4, test 1/4) and a dense MLP trained on the training part."""

    model: onnx.ModelProto
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def dense_accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Top-1 accuracy of the dense float model (ONNX's reference evaluator)."""
        from onnx.reference import ReferenceEvaluator

        logits = ReferenceEvaluator(self.model).run(None, {"input": x})[0]
        return float(np.mean(logits.argmax(axis=1) == y))


def dense_digits(hidden: tuple[int, ...] = (64, 32), seed: int = 0) -> Digits:
    """A dense digits MLP 64-hidden-10 (about 97% on the test part)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 200 iterations are plenty here
        clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=200, random_state=seed)
        clf.fit(train_x, train_y)
    weights = [np.asarray(w, np.float32) for w in clf.coefs_]
    biases = [np.asarray(b, np.float32) for b in clf.intercepts_]
    model = _digits_script().gemm_model(weights, biases)
    return Digits(model, train_x, train_y, test_x, test_y)
