"""The committed demo model is what ``examples/digits/train_digits_mlp.py`` produces."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
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


def _assert_same_model(committed: bytes, fresh: bytes, name: str) -> None:
    """The same graph, and weights equal up to float32 rounding.

    Training runs numpy's BLAS, whose kernels (chosen per CPU) sum in different orders: on
    another processor a weight may come out one unit in the last place apart, so weights are
    compared to 1e-5 and everything else in the file exactly.
    """
    old, new = onnx.load_from_string(committed), onnx.load_from_string(fresh)
    old_weights = {init.name: onnx.numpy_helper.to_array(init) for init in old.graph.initializer}
    new_weights = {init.name: onnx.numpy_helper.to_array(init) for init in new.graph.initializer}
    assert old_weights.keys() == new_weights.keys(), f"{name}: other initialisers"
    for key, value in old_weights.items():
        assert value.dtype == new_weights[key].dtype and value.shape == new_weights[key].shape
        np.testing.assert_allclose(new_weights[key], value, rtol=0, atol=1e-5, err_msg=key)
    del old.graph.initializer[:], new.graph.initializer[:]
    assert old.SerializeToString() == new.SerializeToString(), f"{name}: another graph"


@pytest.mark.slow
def test_script_reproduces_committed_artefacts(digits_dir: Path) -> None:
    script = _script(digits_dir)
    trained = script.train()
    fresh = script.artefacts(trained)
    for name, data in fresh.items():
        committed = (digits_dir / name).read_bytes()
        if name.endswith(".onnx"):
            _assert_same_model(committed, data, name)
        else:
            assert committed == data, f"{name} differs from a fresh export"
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
