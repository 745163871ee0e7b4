"""Cutting a model into the EIE head and the CPU tail; the models that need BYOC instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from eiec.errors import UnsupportedModelError
from eiec.runtime import reference
from eiec.runtime.split import eie_split, split_tail

LSTM = Path(__file__).resolve().parents[2] / "examples" / "lstm"


def test_skl_style_classifier_splits_after_the_last_fc(
    digits_dir: Path, digits_x: np.ndarray
) -> None:
    model = onnx.load(str(digits_dir / "digits_skl_style.onnx"))
    split = split_tail(model)
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
    split = split_tail(model)
    assert split.tail is None and split.boundary is None and split.tail_ops == ()
    assert split.head.graph.node == model.graph.node


def test_lstm_with_three_outputs_runs_whole_on_eie() -> None:
    model = onnx.load(str(LSTM / "lstm.onnx"))
    split = split_tail(model)
    assert split.tail is None
    assert [o.name for o in split.head.graph.output] == ["y", "h", "c"]


def test_run_time_constants_are_folded_before_splitting() -> None:
    # The TorchScript export builds the zero initial states with Shape/Gather/Concat/Expand.
    model = onnx.load(str(LSTM / "lstm_bidir_legacy.onnx"))
    assert {"Shape", "Expand"} <= {node.op_type for node in model.graph.node}
    split = split_tail(model)
    assert split.tail is None
    assert [node.op_type for node in split.head.graph.node] == ["LSTM", "Transpose", "Reshape"]


def _mixed(first: str) -> onnx.ModelProto:
    """x -> MatMul -> a; Softplus(a or x) -> MatMul -> b; y = b + a."""
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["a"], name="fc1"),
            helper.make_node("Softplus", [first], ["s"], name="sig"),
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
    "eiec.byoc.partition_for_eie (eiec run does), which leaves those ops to TVM on the CPU)"
)


def test_fc_layer_after_an_unsupported_op_points_to_byoc() -> None:
    assert eie_split(_mixed("a")) is None
    with pytest.raises(UnsupportedModelError) as info:
        split_tail(_mixed("a"))
    assert str(info.value) == (
        "graph 'mixed': MatMul layer 'fc2' follows an op EIE does not run (Softplus 'sig')" + BYOC
    )


def test_unsupported_op_on_the_input_points_to_byoc() -> None:
    assert eie_split(_mixed("x")) is None
    with pytest.raises(UnsupportedModelError) as info:
        split_tail(_mixed("x"))
    assert str(info.value) == (
        "graph 'mixed': the CPU ops (Add, MatMul, Softplus, first 'sig') read ['a', 'x'], not "
        "one tensor computed by the FC layers" + BYOC
    )


def test_a_supported_op_failing_its_check_runs_on_the_cpu() -> None:
    # Add is an EIE op only as a layer's bias: the residual Add(b, a) is a CPU tail.
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["a"], name="fc1"),
            helper.make_node("Add", ["a", "a"], ["y"], name="twice"),
        ],
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [w],
    )
    split = split_tail(helper.make_model(graph))
    assert split.boundary == "a" and split.tail_ops == ("Add",)
