"""The committed demo model is what ``examples/digits/train_digits_mlp.py`` produces."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator


def _script(digits_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "train_digits_mlp", digits_dir / "train_digits_mlp.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_script_reproduces_committed_artefacts_bit_for_bit(digits_dir: Path) -> None:
    script = _script(digits_dir)
    trained = script.train()
    fresh = script.artefacts(trained)
    for name, data in fresh.items():
        assert (digits_dir / name).read_bytes() == data, f"{name} differs from a fresh export"
    assert trained.test_accuracy > 0.95


def test_gemm_and_skl_style_models_agree(digits_dir: Path, digits_x: np.ndarray) -> None:
    gemm = ReferenceEvaluator(str(digits_dir / "digits_mlp.onnx"))
    skl = ReferenceEvaluator(str(digits_dir / "digits_skl_style.onnx"))
    (logits,) = gemm.run(None, {"input": digits_x})
    label, probabilities = skl.run(None, {"X": digits_x})
    np.testing.assert_array_equal(label, logits.argmax(axis=1))
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_models_are_pytorch_and_skl2onnx_shaped(digits_dir: Path) -> None:
    gemm = onnx.load(str(digits_dir / "digits_mlp.onnx"))
    assert [n.op_type for n in gemm.graph.node] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    assert all(
        onnx.helper.get_attribute_value(a) == 1
        for n in gemm.graph.node
        for a in n.attribute
        if a.name == "transB"
    )
    skl = onnx.load(str(digits_dir / "digits_skl_style.onnx"))
    ops = [n.op_type for n in skl.graph.node]
    assert ops[-4:] == ["Softmax", "ArgMax", "ArrayFeatureExtractor", "Reshape"]
    assert [o.name for o in skl.graph.output] == ["label", "probabilities"]
