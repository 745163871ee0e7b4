"""Cutting a model into the EIE head and the CPU tail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from eiec.errors import UnsupportedModelError
from eiec.runtime import reference
from eiec.runtime.split import split_tail

FC_OPS = {"Gemm", "MatMul", "Add", "Relu", "Reshape", "Flatten", "Identity"}


def test_skl_style_classifier_splits_after_the_last_fc(
    digits_dir: Path, digits_x: np.ndarray
) -> None:
    model = onnx.load(str(digits_dir / "digits_skl_style.onnx"))
    split = split_tail(model, FC_OPS)
    assert split.boundary == "add_result2"
    assert split.tail_ops == ("Softmax", "ArgMax", "ArrayFeatureExtractor", "Reshape")
    assert [n.op_type for n in split.head.graph.node] == ["MatMul", "Add", "Relu"] * 2 + [
        "MatMul",
        "Add",
    ]
    assert split.tail is not None
    assert [i.name for i in split.tail.graph.input] == ["add_result2"]
    assert [o.name for o in split.tail.graph.output] == ["label", "probabilities"]
    logits = reference.run_reference(split.head, digits_x)["add_result2"]
    parts = reference.run_reference(split.tail, {"add_result2": logits})
    whole = reference.run_reference(model, digits_x)
    np.testing.assert_array_equal(parts["label"], whole["label"])
    np.testing.assert_array_equal(parts["probabilities"], whole["probabilities"])


def test_fc_only_model_has_no_tail(digits_dir: Path) -> None:
    model = onnx.load(str(digits_dir / "digits_mlp.onnx"))
    split = split_tail(model, FC_OPS)
    assert split.tail is None and split.head is model and split.boundary == "logits"


def _mixed(first: str) -> onnx.ModelProto:
    """x -> MatMul -> a; Sigmoid(a or x) -> MatMul -> b; y = b + a."""
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["a"], name="fc1"),
            helper.make_node("Sigmoid", [first], ["s"], name="sig"),
            helper.make_node("MatMul", ["s", "w"], ["b"], name="fc2"),
            helper.make_node("Add", ["b", "a"], ["y"]),
        ],
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [w],
    )
    return helper.make_model(graph)


BYOC = (
    " (run models with unsupported ops before or between FC layers through "
    "eiec.byoc.partition_for_eie, which leaves those ops to TVM on the CPU)"
)


def test_fc_layer_after_an_unsupported_op_points_to_byoc() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        split_tail(_mixed("a"), FC_OPS)
    assert str(info.value) == (
        "graph 'mixed': FC layer 'fc2' follows an op EIE does not run (Sigmoid 'sig')" + BYOC
    )


def test_unsupported_op_on_the_input_points_to_byoc() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        split_tail(_mixed("x"), FC_OPS)
    assert str(info.value) == (
        "graph 'mixed': the CPU ops (Add, MatMul, Sigmoid, first 'sig') read ['a', 'x'], not "
        "one tensor computed by the FC layers" + BYOC
    )
