"""Exporters' forms of a model eiec takes as they come, and the checks that keep a result
meaningful (the model classes of tests/reliability/corpus_models.py, unit by unit)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from eiec.errors import CompileError, InputError, RuntimeCheckError, UnsupportedModelError
from eiec.frontend.canonicalize import batch_of_one, canonicalize, static_batch
from eiec.frontend.fingerprint import ORIGIN_KEY, weights_fingerprint
from eiec.frontend.layers import check_unambiguous, find_onnx_layers, layer_aliases
from eiec.frontend.load import dense_constants, load_model, weights_from_inputs
from eiec.isa import format_program, parse
from eiec.runtime.accuracy import check_labels
from tests.compiler.models import mlp

from .corpus_models import SHIPPED


def _vi(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def test_weights_listed_as_inputs_are_constants() -> None:
    model = load_model(SHIPPED / "torch_opset8.onnx")
    assert [i.name for i in model.graph.input] == ["x"]
    assert model.ir_version >= 4
    assert [layer.weight for layer in find_onnx_layers(model)] == ["fc0.weight", "fc1.weight"]


def test_a_sparse_constant_is_densified() -> None:
    dense = np.zeros((8, 4), np.float32)
    dense[1, 2], dense[7, 3] = 0.5, -2.0
    index = np.flatnonzero(dense)
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(dense.ravel()[index], "w"),
        numpy_helper.from_array(index.astype(np.int64), "i"),
        [8, 4],
    )
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["w"], sparse_value=sparse),
         helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g", [_vi("x", [1, 8])], [_vi("y", [1, 4])], sparse_initializer=[sparse],
    )  # fmt: skip
    model = dense_constants(helper.make_model(graph))
    assert not model.graph.sparse_initializer
    assert np.array_equal(numpy_helper.to_array(model.graph.initializer[0]), dense)
    value = helper.get_attribute_value(model.graph.node[0].attribute[0])
    assert np.array_equal(numpy_helper.to_array(value), dense)


def test_a_weight_fed_as_an_input_becomes_a_constant() -> None:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [_vi("x", [4, 8]), _vi("w", [8, 4])], [_vi("y", [4, 4])],
    )  # fmt: skip
    model = helper.make_model(graph)
    w, x = np.ones((8, 4), np.float32), np.ones((3, 8), np.float32)
    bound, rest = weights_from_inputs(model, {"x": x, "w": w})
    assert [i.name for i in bound.graph.input] == ["x"] and list(rest) == ["x"]
    assert np.array_equal(numpy_helper.to_array(bound.graph.initializer[0]), w)
    same, rest = weights_from_inputs(model, {"x": x, "w": w[:6]})  # not its shape: left alone
    assert same is model and set(rest) == {"x", "w"}


def test_a_static_batch_runs_at_batch_one_unless_the_graph_depends_on_it() -> None:
    model = load_model(SHIPPED / "torch_batch4.onnx")
    assert static_batch(model) == 4
    one = batch_of_one(model, "m")
    assert static_batch(one) is None
    assert one.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert static_batch(mlp([8, 4], batch=1)) is None
    reshape = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["y"])], "g", [_vi("x", [4, 8])],
        [_vi("y", [4, 2, 4])], [numpy_helper.from_array(np.array([4, 2, 4]), "s")],
    )  # fmt: skip
    with pytest.raises(UnsupportedModelError, match="fix a batch of 4 samples"):
        batch_of_one(helper.make_model(reshape), "m")


def test_tied_weights_are_copied_per_layer() -> None:
    shared = numpy_helper.from_array(np.eye(8, dtype=np.float32), "s")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "s"], ["h"]), helper.make_node("MatMul", ["h", "s"],
         ["y"])], "g", [_vi("x", [1, 8])], [_vi("y", [1, 8])], [shared],
    )  # fmt: skip
    layers = find_onnx_layers(canonicalize(helper.make_model(graph)))
    assert [layer.weight for layer in layers] == ["s", "s_2"]


def test_a_node_name_several_layers_share_is_refused() -> None:
    model = mlp([8, 6, 4], seed=1)
    for node in model.graph.node:
        if node.op_type == "Gemm":
            node.name = "/fc/Gemm"
    layers = find_onnx_layers(model)
    assert "/fc/Gemm" not in layer_aliases(layers)
    assert layer_aliases(layers)["fc1.weight"] == "fc_2"
    check_unambiguous(["fc_2", "fc0.weight"], layers, "--sparsity")
    with pytest.raises(CompileError, match=r"'/fc/Gemm' names 2 layers \(fc, fc_2\)"):
        check_unambiguous(["/fc/Gemm"], layers, "--sparsity")


def test_labels_must_be_classes_of_the_model() -> None:
    scores = {"y": np.zeros((3, 4), np.float32)}
    check_labels(np.array([0, 3, 1]), scores, "labels")
    with pytest.raises(InputError, match=r"1 of 3 labels \(4\) are not classes"):
        check_labels(np.array([0, 4, 1]), scores, "labels")
    check_labels(np.array([7, 9, 1]), {"label": np.array([7, 9, 1])}, "labels")  # named classes


def test_verify_refuses_the_graph_with_other_weights(tmp_path) -> None:
    from eiec.compiler import CompileOptions, compile_model
    from eiec.runtime.reference import program_reference

    source, other = mlp([8, 6, 4], seed=1), mlp([8, 6, 4], seed=2)
    result = compile_model(source, CompileOptions(sparsity=0.5))
    program = parse(format_program(result.program))  # the weights' fingerprints round-trip
    assert program.origin == result.program.origin
    assert program.origin.weights == weights_fingerprint(source)
    assert program_reference(source, program)[1]
    exported = result.compressed_model
    assert [p.key for p in exported.metadata_props] == [ORIGIN_KEY]
    assert program_reference(exported, program) == (exported, False)
    with pytest.raises(RuntimeCheckError, match="other weights than the source model"):
        program_reference(other, program)
    edited = onnx.ModelProto()
    edited.CopyFrom(exported)
    weight = numpy_helper.to_array(edited.graph.initializer[0]).copy()
    weight[0, 0] += 0.25
    edited.graph.initializer[0].CopyFrom(numpy_helper.from_array(weight, "fc0.weight"))
    with pytest.raises(RuntimeCheckError, match="other weights than the compressed model"):
        program_reference(edited, program)
    # Compiling the export again is lossless, and its origin is replaced, not added.
    again = compile_model(exported, CompileOptions(sparsity=0.0)).compressed_model
    assert [p.key for p in again.metadata_props] == [ORIGIN_KEY]
    assert weights_fingerprint(again) == weights_fingerprint(exported)


def test_saturations_are_told_apart() -> None:
    """Inputs clamped at the host, words clamped inside the program, and the #1 constant's
    clamp that broadcast-activation has by definition (not reported)."""
    from types import SimpleNamespace

    from eiec.emulator.ports import clamped_inputs, saturated_words
    from tests.runtime.handmade import handmade_mlp

    program = handmade_mlp(pes=4, samples=1).program
    port = program.inputs[0]
    runs = [
        SimpleNamespace(saturation_events=[{"input": port.name, "count": 3},
                                           {"pc": 1, "instruction": "broadcast-activation",
                                            "count": 1}]),
        SimpleNamespace(saturation_events=[{"pc": 7, "instruction": "writeback", "count": 2},
                                           {"pc": 4, "instruction": "ew-add", "count": 1}]),
    ]  # fmt: skip
    (sentence,) = clamped_inputs(program, runs)
    assert sentence.startswith(f"input '{port.name}': 3 of {2 * np.prod(port.shape)} values")
    assert saturated_words(runs).startswith(
        "3 values computed by the program saturated (the first at instruction 4, ew-add)"
    )
    assert saturated_words(runs[:1]) is None and clamped_inputs(program, runs[1:]) == []
