"""ONNX LSTM -> Relax: the import equals onnx.reference; unsupported attributes fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import tvm
from lstm_models import LstmSpec, lstm_model, random_input, reference, run_relax
from tvm.relax.frontend.onnx import from_onnx, onnx_frontend

from eiec.errors import CompileError, UnsupportedModelError
from eiec.frontend import lstm_converter as lstm_frontend
from eiec.frontend.lstm_converter import recurrent_converters
from eiec.frontend.tvm_import import import_onnx
from eiec.relax_layers.lstm import (
    ATTR_DIRECTION,
    ATTR_HIDDEN_SIZE,
    ATTR_ONNX_NODE,
    ATTR_OP,
    match_recurrent_call,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "lstm"
TOLERANCE = 1e-5


def assert_matches_reference(model: onnx.ModelProto) -> None:
    feeds = random_input(model)
    expected = reference(model, feeds)
    actual = run_relax(import_onnx(model), feeds)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


def lstm_calls(mod: tvm.IRModule) -> list:
    bindings = [b for block in mod["main"].body.blocks for b in block.bindings]
    calls = [match_recurrent_call(mod, b.value) for b in bindings]
    return [call for call in calls if call is not None]


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize(
    ("bias", "initial_h", "initial_c"),
    [(True, False, False), (False, True, True), (True, True, False)],
)
def test_single_layer_matches_reference(
    direction: str, bias: bool, initial_h: bool, initial_c: bool
) -> None:
    spec = LstmSpec(7, direction, bias=bias, initial_h=initial_h, initial_c=initial_c)
    assert_matches_reference(lstm_model([spec], seq=3, batch=1))


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_batch_and_odd_hidden_size(direction: str) -> None:
    # 13 hidden units: not a multiple of 2, 4, 8, 16, 32 or 64 PEs.
    spec = LstmSpec(13, direction, initial_h=True, initial_c=True)
    assert_matches_reference(lstm_model([spec], seq=4, batch=3, inputs=5))


def test_two_layers() -> None:
    layers = [LstmSpec(6, "bidirectional"), LstmSpec(5, "forward", initial_c=True)]
    assert_matches_reference(lstm_model(layers, seq=4, batch=2))


def test_lstm_with_gemm_head_on_last_step() -> None:
    model = lstm_model([LstmSpec(9)], seq=5, outputs=(), head=3)
    assert [o.name for o in model.graph.output] == ["logits"]
    assert_matches_reference(model)


@pytest.mark.parametrize("outputs", [("Y",), ("Y_h",), ("Y_c",), ("Y", "Y_c")])
def test_any_subset_of_outputs(outputs: tuple[str, ...]) -> None:
    assert_matches_reference(lstm_model([LstmSpec(4, "reverse")], seq=3, outputs=outputs))


def test_constant_full_length_sequence_lens_is_accepted() -> None:
    spec = LstmSpec(4, "bidirectional", sequence_lens=[3, 3])
    assert_matches_reference(lstm_model([spec], seq=3, batch=2))


def test_zero_states_built_at_run_time_fold_to_constants() -> None:
    layers = [LstmSpec(5, runtime_zero_states=True), LstmSpec(4, runtime_zero_states=True)]
    model = lstm_model(layers, seq=3, batch=2)
    assert {"Shape", "Gather", "Concat", "Expand"} <= {n.op_type for n in model.graph.node}
    assert_matches_reference(model)
    calls = lstm_calls(import_onnx(model))
    assert len(calls) == 2
    for call in calls:
        assert call.initial_h is not None and not call.initial_h.any()
        assert call.initial_c is not None and call.initial_c.shape == (1, 2, call.hidden_size)


def test_relax_form_of_an_lstm_node() -> None:
    spec = LstmSpec(5, "bidirectional", bias=False, initial_h=True)
    model = lstm_model([spec], seq=2, batch=1, inputs=3)
    mod = import_onnx(model)
    func = mod["lstm_lstm0"]
    assert str(func.attrs[ATTR_OP]) == "lstm"
    assert str(func.attrs[ATTR_ONNX_NODE]) == "lstm0"
    assert int(func.attrs[ATTR_HIDDEN_SIZE]) == 5
    assert str(func.attrs[ATTR_DIRECTION]) == "bidirectional"
    assert [p.name for p in func.params] == ["X", "W", "R", "B", "initial_h", "initial_c"]
    (call,) = lstm_calls(mod)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert call.function == "lstm_lstm0" and call.directions == 2
    np.testing.assert_array_equal(call.w, inits["l0_W"])
    np.testing.assert_array_equal(call.r, inits["l0_R"])
    np.testing.assert_array_equal(call.initial_h, inits["l0_h0"])
    # Absent B and initial_c are passed as zero constants of the ONNX shapes.
    assert call.b.shape == (2, 40) and not call.b.any()
    assert call.initial_c.shape == (2, 1, 5) and not call.initial_c.any()


def test_unnamed_nodes_get_positional_names() -> None:
    model = lstm_model([LstmSpec(3), LstmSpec(3)], seq=2)
    for node in model.graph.node:
        node.name = ""
    names = [call.onnx_node for call in lstm_calls(import_onnx(model))]
    assert names == ["LSTM_0", "LSTM_3"]


def test_shape_dict_fixes_dynamic_input_shapes() -> None:
    model = lstm_model([LstmSpec(3, runtime_zero_states=True)], seq=2, batch=1)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "batch"
    mod = import_onnx(model, shape_dict={"X": [2, 4, 6]})
    (call,) = lstm_calls(mod)
    assert call.initial_h.shape == (1, 4, 3)


# --- PyTorch exports --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lstm", "lstm_linear", "lstm_bidir_legacy"])
def test_pytorch_exports_match_reference(name: str) -> None:
    assert_matches_reference(onnx.load(str(EXAMPLES / f"{name}.onnx")))


def test_pytorch_legacy_export_builds_states_at_run_time() -> None:
    model = onnx.load(str(EXAMPLES / "lstm_bidir_legacy.onnx"))
    assert "Expand" in {n.op_type for n in model.graph.node}
    (call,) = lstm_calls(import_onnx(model))
    assert call.direction == "bidirectional" and call.hidden_size == 20
    assert call.initial_h is not None and not call.initial_h.any()


# --- unsupported attributes -------------------------------------------------------------------

UNSUPPORTED = [
    (
        LstmSpec(4, attrs={"clip": 3.0}),
        "ONNX node 'lstm0' (LSTM): attribute clip=3 is not supported (eiec imports LSTMs "
        "without cell clipping; export the model without clip)",
    ),
    (
        LstmSpec(4, attrs={"input_forget": 1}),
        "ONNX node 'lstm0' (LSTM): attribute input_forget=1 is not supported (eiec imports "
        "LSTMs with separate input and forget gates (input_forget=0))",
    ),
    (
        LstmSpec(4, attrs={"layout": 1}),
        "ONNX node 'lstm0' (LSTM): attribute layout=1 is not supported (export the LSTM with "
        "layout=0 (sequence first: X is [seq, batch, input]))",
    ),
    (
        LstmSpec(4, attrs={"activations": ["Sigmoid", "Relu", "Tanh"]}),
        "ONNX node 'lstm0' (LSTM): attribute activations=['Sigmoid', 'Relu', 'Tanh'] is not "
        "supported (eiec imports LSTMs with the default activations Sigmoid, Tanh, Tanh)",
    ),
    (
        LstmSpec(4, attrs={"activation_alpha": [0.5]}),
        "ONNX node 'lstm0' (LSTM): attribute activation_alpha is not supported (export the "
        "LSTM with the default activations and without this attribute)",
    ),
    (
        LstmSpec(4, peepholes=True),
        "ONNX node 'lstm0' (LSTM): input P (peephole weights) is not supported (export the "
        "LSTM without peephole connections)",
    ),
    (
        LstmSpec(4, "bidirectional", sequence_lens=[3, 2]),
        "ONNX node 'lstm0' (LSTM): input sequence_lens=[3, 2] varies (sequence length 3) "
        "(eiec runs every sequence for the full length; pad the sequences to one length)",
    ),
]


@pytest.mark.parametrize(("spec", "message"), UNSUPPORTED)
def test_unsupported_attribute_is_named(spec: LstmSpec, message: str) -> None:
    batch = 2 if spec.sequence_lens else 1
    model = lstm_model([spec], seq=3, batch=batch)
    with pytest.raises(UnsupportedModelError) as error:
        import_onnx(model)
    assert str(error.value) == message


def test_initial_state_shape_is_checked_by_the_converter() -> None:
    model = lstm_model([LstmSpec(4, initial_h=True)], seq=2, batch=2)
    h0 = next(i for i in model.graph.initializer if i.name == "l0_h0")
    h0.CopyFrom(onnx.numpy_helper.from_array(np.zeros((1, 3, 4), np.float32), "l0_h0"))
    with recurrent_converters(), pytest.raises(UnsupportedModelError) as error:
        from_onnx(model)
    assert str(error.value) == (
        "ONNX node 'lstm0' (LSTM): input initial_h has shape [1, 3, 4], expected [1, 2, 4] "
        "(directions, batch of X, hidden) (give one initial state per sequence of the batch "
        "(at batch 1: one state))"
    )


def test_default_activations_spelled_out_are_accepted() -> None:
    spec = LstmSpec(4, "bidirectional", attrs={"activations": ["Sigmoid", "Tanh", "Tanh"] * 2})
    assert_matches_reference(lstm_model([spec], seq=2))


def test_sequence_lens_from_a_graph_input_is_rejected() -> None:
    model = lstm_model([LstmSpec(4, sequence_lens=[3])], seq=3)
    lens = next(i for i in model.graph.initializer if i.name == "l0_seq_lens")
    model.graph.initializer.remove(lens)
    model.graph.input.append(onnx.helper.make_tensor_value_info("l0_seq_lens", 6, [1]))
    with pytest.raises(UnsupportedModelError) as error:
        import_onnx(model)
    assert str(error.value) == (
        "ONNX node 'lstm0' (LSTM): input sequence_lens is not a constant (eiec runs every "
        "sequence for the full length; drop sequence_lens or make it a constant initialiser "
        "equal to the sequence length)"
    )


def test_converter_itself_rejects_unsupported_attributes() -> None:
    # TVM's from_onnx with the converter registered (no eiec pre-check) gives the same error.
    model = lstm_model([LstmSpec(4, attrs={"clip": 3.0})], seq=3)
    with recurrent_converters(), pytest.raises(UnsupportedModelError) as error:
        from_onnx(model)
    assert str(error.value).startswith("ONNX node 'lstm0' (LSTM): attribute clip=3 is not")


# --- the version-pinned hook ------------------------------------------------------------------


def test_converter_is_registered_only_inside_the_block() -> None:
    original = onnx_frontend._get_convert_map
    assert "LSTM" not in original() and "GRU" not in original()
    with recurrent_converters():
        assert onnx_frontend._get_convert_map()["LSTM"] is lstm_frontend.LSTMConverter
        assert onnx_frontend._get_convert_map()["GRU"] is lstm_frontend.GRUConverter
    assert onnx_frontend._get_convert_map is original
    with pytest.raises(RuntimeError), recurrent_converters():
        raise RuntimeError("conversion failed")
    assert onnx_frontend._get_convert_map is original


def test_other_tvm_version_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tvm, "__version__", "0.28.0")
    with pytest.raises(CompileError) as error, recurrent_converters():
        pass
    assert str(error.value) == (
        "eiec/frontend/lstm_converter.py: the LSTM/GRU importer hooks "
        "onnx_frontend._get_convert_map of TVM 0.27, but TVM 0.28.0 is installed (install "
        "apache-tvm 0.27 (the version pyproject.toml pins) or port the hook)"
    )


def test_missing_hook_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(onnx_frontend, "_get_convert_map")
    with pytest.raises(CompileError) as error, recurrent_converters():
        pass
    assert str(error.value) == (
        f"eiec/frontend/lstm_converter.py: TVM {tvm.__version__}'s Relax ONNX frontend has no "
        "_get_convert_map, which the LSTM/GRU importer hooks (install apache-tvm 0.27 (the version "
        "pyproject.toml pins) or port the hook)"
    )
