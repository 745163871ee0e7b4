"""What 16-bit fixed point holds: ``fit_word_format`` (ShareWeights) and the checks around it."""

from __future__ import annotations

import re
import warnings

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from eiec.compiler import CompileOptions, compile_model
from eiec.errors import CompileError, EiecWarning, ModelLoadError
from eiec.frontend.checks import check_model
from eiec.isa.fixed import MAX_MAGNITUDE, frac_for_range, lost_to_rounding
from eiec.passes.share_weights import fit_word_format
from eiec.runtime.verify import verify

from .models import mlp


def _with(model: onnx.ModelProto, name: str, values: np.ndarray) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(values.astype(np.float32), name))
    return copy


def test_a_trained_bias_below_the_step_rounds_to_zero_and_verifies() -> None:
    # Issue 22's BERT case: attention-key biases of ~1e-7 beside weights of ~0.1.
    base = mlp([32, 16, 4], seed=3)
    model = _with(base, "fc0.bias", np.full(16, -1.49829e-07))
    x = np.random.default_rng(0).standard_normal((5, 32)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EiecWarning)  # a bias is only rounded: no warning
        result = compile_model(model, CompileOptions(sparsity=0.5, calibration=x))
    exported = {i.name: numpy_helper.to_array(i) for i in result.compressed_model.graph.initializer}
    assert np.array_equal(exported["fc0.bias"], np.zeros(16, np.float32))
    assert verify(model, result.program, x).passed


def test_an_outlier_weight_is_refused_naming_the_layer() -> None:
    base = mlp([8, 6, 4], seed=1)
    weight = numpy_helper.to_array(base.graph.initializer[0]).copy()
    weight[2, 3] = -3e4
    with pytest.raises(CompileError) as info:
        compile_model(_with(base, "fc0.weight", weight), CompileOptions(sparsity=0.0))
    assert str(info.value).startswith(
        "layer fc0: 44 of 48 non-zero weights round to 0 in 16-bit fixed point: one format holds "
        "the layer's weights and bias, its largest value (3e+04, a weight) sets the step to 1"
    )


def test_a_few_weights_below_the_step_are_a_warning() -> None:
    weight = np.full((4, 100), 0.5, np.float32)
    weight[0, :5] = 1e-6  # 1.25% of the weights, below half the step (2**-15) of 0.5
    with pytest.warns(EiecWarning, match=r"layer fc: 5 of 400 non-zero weights round to 0"):
        new, _ = fit_word_format("fc", weight, np.zeros(0, np.float32))
    assert np.count_nonzero(new) == 395 and new.dtype == np.float32


def test_a_weight_beyond_sixteen_bits_is_refused() -> None:
    with pytest.raises(CompileError, match=r"layer fc: a weight or bias of 3e\+09 is beyond"):
        fit_word_format("fc", np.array([[3e9, 1.0]]), np.zeros(0))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.just(0.0),
            st.floats(-1e3, 1e3, allow_nan=False),
            st.floats(-1e-6, 1e-6, allow_nan=False),
        ),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.floats(-1.0, 1.0, allow_nan=False), max_size=4),
)
def test_fit_word_format_stores_what_the_format_holds(weights: list, bias: list) -> None:
    """Either a CompileError (most weights lost) or: every kept value is non-zero in the
    layer's format, every value zeroed rounds to 0 there, and at most half the weights go."""
    w, b = np.array(weights, np.float32), np.array(bias, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EiecWarning)
        try:
            new_w, new_b = fit_word_format("fc", w, b)
        except CompileError:
            values = np.concatenate([w, b]).astype(np.float64)
            lost = lost_to_rounding(w, frac_for_range(np.abs(values).max()))
            assert 2 * lost.sum() > np.count_nonzero(w)
            return
    values = np.concatenate([w, b]).astype(np.float64)
    frac = frac_for_range(float(np.abs(values).max(initial=0.0)))
    for old, new in ((w, new_w), (b, new_b)):
        changed = old != new
        assert np.all(new[changed] == 0)
        assert np.all(lost_to_rounding(old[changed], frac))
        assert not lost_to_rounding(new, frac).any()
    assert 2 * np.count_nonzero(w != new_w) <= np.count_nonzero(w)


def test_only_tensors_eie_stores_must_fit_sixteen_bits() -> None:
    """A -3.4e38 or -inf constant of a CPU-side op is fine; the same value as a layer's bias
    is refused, and NaN is refused anywhere."""
    base = mlp([8, 4], seed=2)
    mask = numpy_helper.from_array(np.array([[0, 0, 0, -3.4e38]], np.float32), "mask")
    masked = onnx.ModelProto()
    masked.CopyFrom(base)
    masked.graph.initializer.append(mask)
    output = masked.graph.output[0].name
    masked.graph.node[-1].output[0] = "pre"
    masked.graph.node.append(onnx.helper.make_node("Sub", ["pre", "mask"], [output]))
    check_model(masked, "m")
    for value, text in ((-np.inf, "NaN or Inf"), (np.nan, "NaN")):
        mask.CopyFrom(numpy_helper.from_array(np.array([[0, 0, 0, value]], np.float32), "mask"))
        masked.graph.initializer[-1].CopyFrom(mask)
        if np.isnan(value):
            with pytest.raises(ModelLoadError, match=text):
                check_model(masked, "m")
        else:
            check_model(masked, "m")
    bias = np.zeros(4, np.float32)
    bias[3] = -3.4e38
    with pytest.raises(ModelLoadError, match=re.escape(f"above {MAX_MAGNITUDE:.4g}")):
        check_model(_with(base, "fc0.bias", bias), "m")
