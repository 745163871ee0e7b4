"""fold_constants: constant subgraphs on initialisers and static shapes become initialisers;
shape inference without the weights gives ONNX's result; the checks read no weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from eiec.frontend import graph
from eiec.frontend.canonicalize import fix_batch
from eiec.frontend.fold import fold_constants
from eiec.frontend.graph import annotate_shapes, infer_shapes
from eiec.frontend.layers import find_onnx_layers
from eiec.frontend.ops import BYOC_HINT, CHECKS
from eiec.frontend.support import check_supported
from tests.compiler.models import mlp
from tests.lstm.lstm_models import LstmSpec, lstm_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "lstm"


def _zero_state_model(batch: int | str) -> onnx.ModelProto:
    """PyTorch's LSTM-export idiom: h0 = ConstantOfShape([1, Shape(x)[0], 3]); y = x + h0."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0))),
        helper.make_node("Gather", ["shape", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"]),
        helper.make_node("Concat", ["one", "b1", "three"], ["hshape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["hshape"],
            ["h0"],
            value=numpy_helper.from_array(np.array([0.0], dtype=np.float32)),
        ),
        helper.make_node("Cast", ["h0"], ["h0f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "h0f"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
        numpy_helper.from_array(np.array([3], dtype=np.int64), "three"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_zero_state_folds_to_an_initialiser() -> None:
    model = _zero_state_model(2)
    folded = fold_constants(model)
    assert [n.op_type for n in folded.graph.node] == ["Add"]
    inits = {i.name: numpy_helper.to_array(i) for i in folded.graph.initializer}
    assert set(inits) == {"h0f"}
    np.testing.assert_array_equal(inits["h0f"], np.zeros((1, 2, 3), dtype=np.float32))
    onnx.checker.check_model(folded)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(ReferenceEvaluator(folded).run(None, {"x": x})[0], expected)


def test_dynamic_shape_is_kept() -> None:
    folded = fold_constants(_zero_state_model("batch"))
    ops = [n.op_type for n in folded.graph.node]
    assert ops[0] == "Shape" and "ConstantOfShape" in ops
    # The Constant node alone folds; nothing downstream of Shape(x) does.
    assert "Constant" not in ops


def test_reshape_shape_subgraph_and_input_model_untouched() -> None:
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "st", "en"], ["s0"]),
        helper.make_node("Concat", ["s0", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "st"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "en"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus1"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = model.SerializeToString()
    folded = fold_constants(model)
    assert model.SerializeToString() == before
    assert [n.op_type for n in folded.graph.node] == ["Reshape"]
    target = {i.name: numpy_helper.to_array(i) for i in folded.graph.initializer}["target"]
    np.testing.assert_array_equal(target, [1, -1])
    out = folded.graph.output[0].type.tensor_type.shape
    assert [d.dim_value for d in out.dim] == [1, 6]


@pytest.mark.parametrize(
    "make",
    [
        lambda: mlp([300, 200, 10]),
        lambda: lstm_model([LstmSpec(40, "bidirectional", initial_h=True)], head=5),
        lambda: onnx.load(str(EXAMPLES / "lstm_linear.onnx")),
        lambda: onnx.load(str(EXAMPLES / "lstm_bidir_legacy.onnx")),
    ],
)
def test_shape_inference_without_weights_equals_onnx(make) -> None:
    model = make()
    assert max(len(init.raw_data) for init in model.graph.initializer) > 4096  # some left out
    for proto in (model, fix_batch(model, "m")[0]):
        for data_prop in (False, True):
            expected = onnx.shape_inference.infer_shapes(proto, data_prop=data_prop)
            got = infer_shapes(proto, data_prop=data_prop)
            assert got.SerializeToString() == expected.SerializeToString()
            shapes = infer_shapes(proto, data_prop=data_prop, weights=False).graph
            assert list(shapes.value_info) == list(expected.graph.value_info)
            assert list(shapes.output) == list(expected.graph.output)
            annotated = onnx.ModelProto()
            annotated.CopyFrom(proto)
            annotate_shapes(annotated, data_prop=data_prop)  # in place, weights untouched
            assert annotated.SerializeToString() == expected.SerializeToString()


def test_the_support_check_and_the_layer_finder_read_no_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = fold_constants(fix_batch(mlp([30, 20, 10]), "m")[0])
    read = []
    honest = graph.numpy_helper.to_array
    monkeypatch.setattr(graph.numpy_helper, "to_array", lambda t: read.append(t.name) or honest(t))
    check_supported(model, "m", CHECKS, BYOC_HINT)
    assert [layer.weight for layer in find_onnx_layers(model)] == [
        init.name for init in model.graph.initializer if len(init.dims) == 2
    ]
    assert read == []
    facts = graph.GraphFacts.of(model)
    name = next(iter(facts.initializers))
    assert facts.initializers[name].shape == tuple(facts.shapes[name]) and read == [name]


def test_a_constant_blown_up_past_the_limit_is_kept() -> None:
    """Expand of a 1-element constant to 2**21 elements stays a node; to 8 elements it folds."""
    for rows, folds in ((2, True), (1 << 21, False)):
        nodes = [
            helper.make_node("Expand", ["one", "dims"], ["big"]),
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
            helper.make_node("Add", ["x", "total"], ["y"]),
        ]
        inits = [
            numpy_helper.from_array(np.ones(1, np.float32), "one"),
            numpy_helper.from_array(np.array([rows, 1], np.int64), "dims"),
        ]
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        ops = [n.op_type for n in fold_constants(model).graph.node]
        assert ops == (["Add"] if folds else ["Expand", "ReduceSum", "Add"])


def test_weights_built_by_split_transpose_gather_squeeze_fold() -> None:
    """A recurrent weight as tf2onnx/keras-style graphs build it: Transpose of a kernel,
    Split into gates, Concat reordered, Gather of a stacked tensor, Squeeze/Unsqueeze."""
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((2, 3, 8)).astype(np.float32)  # 2 stacked (input, 4 gates)
    nodes = [
        helper.make_node("Gather", ["kernel", "second"], ["k"], axis=0),  # (3, 8)
        helper.make_node("Transpose", ["k"], ["kt"], perm=[1, 0]),  # (8, 3)
        helper.make_node("Split", ["kt"], ["g0", "g1", "g2", "g3"], axis=0, num_outputs=4),
        helper.make_node("Concat", ["g0", "g3", "g1", "g2"], ["w"], axis=0),
        helper.make_node("Unsqueeze", ["w", "axes0"], ["w1"]),
        helper.make_node("Squeeze", ["w1", "axes0"], ["w2"]),
        helper.make_node("MatMul", ["x", "w2"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(kernel, "kernel"),
        numpy_helper.from_array(np.array(1, np.int64), "second"),
        numpy_helper.from_array(np.array([0], np.int64), "axes0"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    folded = fold_constants(model)
    assert [n.op_type for n in folded.graph.node] == ["MatMul"]
    (weight,) = [numpy_helper.to_array(i) for i in folded.graph.initializer]
    gates = np.split(kernel[1].T, 4)
    np.testing.assert_array_equal(weight, np.concatenate([gates[k] for k in (0, 3, 1, 2)]))
