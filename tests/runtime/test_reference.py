"""The TVM CPU reference against onnx.reference.ReferenceEvaluator, an independent oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from eiec.errors import InputError, ModelLoadError, RuntimeCheckError
from eiec.runtime import reference


def test_digits_mlp_matches_onnx_reference(digits_dir: Path, digits_x: np.ndarray) -> None:
    path = digits_dir / "digits_mlp.onnx"
    got = reference.run_reference(path, digits_x)
    (want,) = ReferenceEvaluator(str(path)).run(None, {"input": digits_x})
    assert list(got) == ["logits"]
    np.testing.assert_allclose(got["logits"], want, rtol=1e-5, atol=1e-4)


def test_skl_style_classifier_runs_whole_in_tvm(digits_dir: Path, digits_x: np.ndarray) -> None:
    path = digits_dir / "digits_skl_style.onnx"
    got = reference.run_reference(path, digits_x)
    label, probabilities = ReferenceEvaluator(str(path)).run(None, {"X": digits_x})
    assert list(got) == ["label", "probabilities"]
    assert got["label"].dtype == np.int64
    np.testing.assert_array_equal(got["label"], label)
    np.testing.assert_allclose(got["probabilities"], probabilities, rtol=1e-5, atol=1e-6)


def _afe_model(data: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("ArgMax", ["x"], ["idx"], axis=1),
            helper.make_node("ArrayFeatureExtractor", ["data", "idx"], ["y"], domain="ai.onnx.ml"),
        ],
        "afe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])],
        [numpy_helper.from_array(data, "data")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 8
    return model


@pytest.mark.parametrize("data_shape", [(5,), (2, 5)])
def test_array_feature_extractor_rewrite_matches_onnx(data_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal(data_shape).astype(np.float32)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    model = _afe_model(data)
    rewritten = reference.tvm_compatible(model)
    assert "ArrayFeatureExtractor" not in [n.op_type for n in rewritten.graph.node]
    (want,) = ReferenceEvaluator(model).run(None, {"x": x})
    (rewritten_value,) = ReferenceEvaluator(rewritten).run(None, {"x": x})
    got = reference.run_reference(model, x)["y"]
    np.testing.assert_array_equal(rewritten_value, want)
    np.testing.assert_array_equal(got, want)


def test_intermediates_are_the_layer_activations(digits_dir: Path, digits_x: np.ndarray) -> None:
    path = digits_dir / "digits_mlp.onnx"
    model = onnx.load(str(path))
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    x = digits_x[:5]
    got = reference.run_intermediates(path, x, ["relu1", "fc2"])
    relu1 = np.maximum(x @ weights["fc1.weight"].T + weights["fc1.bias"], 0)
    fc2 = relu1 @ weights["fc2.weight"].T + weights["fc2.bias"]
    np.testing.assert_allclose(got["relu1"], relu1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["fc2"], fc2, rtol=1e-5, atol=1e-5)


def test_builds_are_cached_per_model_bytes(digits_dir: Path) -> None:
    model = onnx.load(str(digits_dir / "digits_mlp.onnx"))
    first = reference.build(model)
    assert reference.build(digits_dir / "digits_mlp.onnx") is first
    assert reference.build(model, extra_outputs=("relu1",)) is not first


def test_missing_model_file_is_a_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        reference.build(tmp_path / "none.onnx")
    assert (
        str(info.value)
        == f"{tmp_path / 'none.onnx'}: model file not found (give the path of an .onnx file)"
    )


def test_input_errors_name_the_problem(digits_dir: Path, digits_x: np.ndarray) -> None:
    ref = reference.build(digits_dir / "digits_mlp.onnx")
    with pytest.raises(InputError) as info:
        ref.run({"x": digits_x})
    assert str(info.value) == (
        "inputs do not match the model: missing ['input'], unknown ['x'] "
        "(the model's inputs are ['input'])"
    )
    with pytest.raises(InputError) as info:
        ref.run(digits_x.astype(np.int32))
    assert str(info.value) == (
        "input 'input' has dtype int32; the model takes float32 "
        "(convert it with .astype(np.float32))"
    )


def test_unknown_intermediate_is_refused(digits_dir: Path, digits_x: np.ndarray) -> None:
    with pytest.raises(RuntimeCheckError) as info:
        reference.run_intermediates(digits_dir / "digits_mlp.onnx", digits_x[:1], ["nope"])
    assert str(info.value) == (
        "no tensor named 'nope' in the model (name tensors that a node of the graph produces)"
    )


def test_run_rows_splits_along_a_gemm_transa_inputs_last_axis() -> None:
    """x [F, 1] read by Gemm(transA=1): a batch is stacked along x's last axis, and the
    outputs [1, M] of the samples along axis 0."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W"], ["y"], transA=1)],
        "transa",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((4, 5)).astype(np.float32)
    got = reference.run_rows(model, {"x": x})["y"]
    np.testing.assert_allclose(got, x.T @ weight, rtol=1e-5, atol=1e-6)
