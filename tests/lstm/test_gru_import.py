"""ONNX GRU -> Relax: the import equals onnx.reference (both linear_before_reset settings, every
direction, with and without initial_h, stacked); unsupported attributes fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from gru_models import gru_model, gru_spec
from lstm_models import LstmSpec, random_input, reference, run_relax

from eiec.errors import UnsupportedModelError
from eiec.frontend.tvm_import import import_onnx
from eiec.relax_layers.lstm import (
    ATTR_LINEAR_BEFORE_RESET,
    ATTR_OP,
    find_recurrent_layers,
    match_recurrent_call,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "gru"
TOLERANCE = 1e-5


def assert_matches_reference(model) -> None:
    feeds = random_input(model)
    expected = reference(model, feeds)
    actual = run_relax(import_onnx(model), feeds)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("linear_before_reset", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("initial_h", [False, True])
def test_single_layer_matches_reference(
    linear_before_reset: int, direction: str, initial_h: bool
) -> None:
    spec = gru_spec(7, direction, linear_before_reset, initial_h=initial_h)
    assert_matches_reference(gru_model([spec], seq=3, batch=2, inputs=5))


def test_linear_before_reset_changes_the_result() -> None:
    # The two settings compute different functions of the same weights: the test above
    # distinguishes them (onnx.reference implements both).
    feeds = None
    results = []
    for lbr in (0, 1):
        model = gru_model([gru_spec(6, linear_before_reset=lbr)], seq=3, scale=1.0)
        feeds = feeds or random_input(model)
        results.append(reference(model, feeds)[0])
    assert np.abs(results[0] - results[1]).max() > 1e-2


def test_two_stacked_layers_and_no_bias() -> None:
    layers = [gru_spec(6, "bidirectional", 1), gru_spec(5, "forward", 0, bias=False)]
    assert_matches_reference(gru_model(layers, seq=4, batch=2))


def test_gru_beside_lstm() -> None:
    layers = [gru_spec(5, "forward", 1), LstmSpec(4, "reverse")]
    model = gru_model(layers, seq=3, outputs=("Y", "Y_h"))
    assert_matches_reference(model)
    names = [(layer.op, layer.name) for layer in find_recurrent_layers(import_onnx(model))]
    assert names == [("gru", "gru0"), ("lstm", "lstm1")]


def test_constant_full_length_sequence_lens_is_accepted() -> None:
    spec = gru_spec(4, "bidirectional")
    spec.sequence_lens = [3, 3]
    assert_matches_reference(gru_model([spec], seq=3, batch=2))


def test_relax_form_of_a_gru_node() -> None:
    model = gru_model([gru_spec(5, "bidirectional", 1, bias=False)], seq=2, inputs=3)
    mod = import_onnx(model)
    func = mod["gru_gru0"]
    assert str(func.attrs[ATTR_OP]) == "gru"
    assert int(func.attrs[ATTR_LINEAR_BEFORE_RESET]) == 1
    assert [p.name for p in func.params] == ["X", "W", "R", "B", "initial_h"]
    bindings = [b for block in mod["main"].body.blocks for b in block.bindings]
    (call,) = [c for c in (match_recurrent_call(mod, b.value) for b in bindings) if c]
    assert call.op == "gru" and call.onnx_op == "GRU" and call.linear_before_reset
    assert call.initial_c is None
    # An absent B and initial_h are zero constants of the ONNX shapes.
    assert call.b.shape == (2, 30) and not call.b.any()
    assert call.initial_h.shape == (2, 1, 5) and not call.initial_h.any()
    assert call.where == "ONNX node 'gru0' (GRU)"


def test_eie_bias_keeps_rb_h_apart_with_linear_before_reset() -> None:
    for lbr, rows in ((0, 9), (1, 12)):
        model = gru_model([gru_spec(3, linear_before_reset=lbr)], seq=2, inputs=2)
        (layer,) = find_recurrent_layers(import_onnx(model))
        wb, rb = layer.b[0, :9], layer.b[0, 9:]
        expected = wb + rb if not lbr else np.concatenate([wb[:6] + rb[:6], wb[6:], rb[6:]])
        np.testing.assert_allclose(layer.bias()[0], expected, rtol=1e-7)
        assert layer.bias().shape == (1, rows)
        # Written back as a B computing the same function.
        b = layer.onnx_bias(layer.bias())
        wb, rb = b[0, :9], b[0, 9:]
        if lbr:
            np.testing.assert_array_equal(rb, np.concatenate([np.zeros(6), layer.b[0, 15:]]))
        else:
            assert not rb.any()
        np.testing.assert_array_equal(wb, layer.bias()[0, :9])


UNSUPPORTED = [
    (
        gru_spec(4, activations=["Sigmoid", "Relu"]),
        "ONNX node 'gru0' (GRU): attribute activations=['Sigmoid', 'Relu'] is not supported "
        "(eiec imports GRUs with the default activations Sigmoid, Tanh)",
    ),
    (
        gru_spec(4, clip=2.0),
        "ONNX node 'gru0' (GRU): attribute clip=2 is not supported (eiec imports GRUs without "
        "clipping; export the model without clip)",
    ),
    (
        gru_spec(4, layout=1),
        "ONNX node 'gru0' (GRU): attribute layout=1 is not supported (export the GRU with "
        "layout=0 (sequence first: X is [seq, batch, input]))",
    ),
    (
        gru_spec(4, activation_alpha=[0.5]),
        "ONNX node 'gru0' (GRU): attribute activation_alpha is not supported (export the GRU "
        "with the default activations and without this attribute)",
    ),
]


@pytest.mark.parametrize(("spec", "message"), UNSUPPORTED)
def test_unsupported_attribute_is_named(spec: LstmSpec, message: str) -> None:
    with pytest.raises(UnsupportedModelError) as error:
        import_onnx(gru_model([spec], seq=3))
    assert str(error.value) == message


def test_default_activations_spelled_out_are_accepted() -> None:
    spec = gru_spec(4, "bidirectional", activations=["Sigmoid", "Tanh"] * 2)
    assert_matches_reference(gru_model([spec], seq=2))


def test_varying_sequence_lens_is_refused() -> None:
    spec = gru_spec(4, "bidirectional")
    spec.sequence_lens = [3, 2]
    with pytest.raises(UnsupportedModelError) as error:
        import_onnx(gru_model([spec], seq=3, batch=2))
    assert str(error.value) == (
        "ONNX node 'gru0' (GRU): input sequence_lens=[3, 2] varies (sequence length 3) "
        "(eiec runs every sequence for the full length; pad the sequences to one length)"
    )


@pytest.mark.parametrize("name", ["gru", "gru_linear", "gru_bidir_legacy"])
def test_pytorch_exports_match_reference(name: str) -> None:
    # Both torch exporters: torch.export (initialisers) and TorchScript (states built at run time).
    model = onnx.load(str(EXAMPLES / f"{name}.onnx"))
    assert all(
        onnx.helper.get_attribute_value(a) == 1
        for node in model.graph.node
        if node.op_type == "GRU"
        for a in node.attribute
        if a.name == "linear_before_reset"
    )
    assert_matches_reference(model)
