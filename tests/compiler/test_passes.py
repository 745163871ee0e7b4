"""PruneWeights and ShareWeights on Relax modules (FC and LSTM layers): Before/Expected, rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.ir.instrument import PassTimingInstrument

from eiec.codegen.generate import LowerToEIE
from eiec.compiler import CompileOptions, compile_model
from eiec.errors import CompileError
from eiec.frontend.read import read_onnx
from eiec.passes.pass_decorator import run_pass
from eiec.passes.prune_weights import PruneWeights, prune_magnitude
from eiec.passes.share_weights import ShareWeights
from eiec.relax_layers.fc import find_fc_layers
from eiec.relax_layers.lstm import find_recurrent_layers
from tests.lstm.lstm_models import LstmSpec, lstm_model

GOLDEN_MODEL = Path(__file__).resolve().parents[1] / "golden" / "compile" / "gemm_relu_gemm.onnx"


def _module(weight: np.ndarray, bias: np.ndarray | None, name: str = "fc1") -> tvm.IRModule:
    """main(x) = relu(matmul(x, W) [+ b]) with W (K, M) and the matmul bound as ``name``."""
    k = weight.shape[0]
    x = relax.Var("x", relax.TensorType([1, k], "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            h = bb.emit(relax.op.matmul(x, relax.const(weight.astype(np.float32))), name)
            if bias is not None:
                h = bb.emit(relax.op.add(h, relax.const(bias.astype(np.float32))))
            out = bb.emit_output(relax.op.nn.relu(h))
        bb.emit_func_output(out)
    return bb.get()


def test_prune_before_expected() -> None:
    weight = np.array([[0.5, -0.1], [0.2, -0.9], [0.0, 0.3]])  # (K=3, M=2)
    bias = np.array([0.01, -0.02])
    after = PruneWeights(sparsity=0.5)(_module(weight, bias))
    # [out, in] order: [[.5, .2, 0], [-.1, -.9, .3]]; 3 of 6 zero: 0 (existing), -.1, .2.
    expected = _module(np.array([[0.5, 0.0], [0.0, -0.9], [0.0, 0.3]]), bias)
    tvm.ir.assert_structural_equal(after, expected)


def test_prune_keeps_zeros_prunes_nothing_when_sparser_or_zero_target() -> None:
    weight = np.array([[0.0, 0.0], [0.0, 0.7], [0.2, 0.0]])
    module = _module(weight, None)
    for target in (0.0, 0.5, 0.6):
        tvm.ir.assert_structural_equal(PruneWeights(sparsity=target)(module), module)
    pruned = PruneWeights(sparsity=0.9)(module)
    (layer,) = find_fc_layers(pruned["main"])
    np.testing.assert_array_equal(layer.weight, np.float32([[0, 0], [0, 0.7], [0, 0]]))


def test_prune_ties_break_by_position_in_out_in_order() -> None:
    flat = np.array([[1.0, -1.0, 1.0], [1.0, 2.0, -1.0]])
    np.testing.assert_array_equal(prune_magnitude(flat, 0.5), [[0, 0, 0], [1, 2, -1]])


def test_prune_per_layer_overrides_and_unknown_names() -> None:
    weight = np.arange(1.0, 9.0).reshape(4, 2)
    module = _module(weight, None)
    pruned = PruneWeights(sparsity=0.0, overrides={"/fc1/Gemm": 0.75}, aliases={"/fc1/Gemm": "fc1"})
    after = pruned(module)
    (layer,) = find_fc_layers(after["main"])
    assert np.count_nonzero(layer.weight) == 2
    (stats,) = pruned.stats(module, after)
    assert stats.target == 0.75 and stats.pruned == 6
    with pytest.raises(CompileError) as info:
        PruneWeights(overrides={"fc9": 0.5, "x": 0.1}, aliases={"fc1.weight": "fc1"})(module)
    assert str(info.value) == (
        "unknown layer names in --sparsity: 'fc9', 'x' "
        "(the model's layers are: fc1 (or 'fc1.weight'))"
    )


def test_share_keeps_few_distinct_values_exactly_with_bias() -> None:
    weight = np.array([[0.25, 0.0], [-0.5, 0.25], [0.0, 0.75]])
    bias = np.array([0.75, 0.0])
    module = _module(weight, bias)
    share = ShareWeights(bits=2)
    shared = share(module)
    tvm.ir.assert_structural_equal(shared, module)
    stats = share.stats(module, shared)[0]
    assert stats.exact and stats.rmse == 0.0
    np.testing.assert_array_equal(stats.centroids, [-0.5, 0.25, 0.75])


def test_share_kmeans_codebook_size_error_and_determinism() -> None:
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((40, 30))
    weight[rng.random(weight.shape) < 0.5] = 0.0
    bias = rng.standard_normal(30)
    module = _module(weight, bias)
    share = ShareWeights(bits=3)
    first = share(module)
    (layer,) = find_fc_layers(first["main"])
    values = np.unique(np.concatenate([layer.weight[layer.weight != 0], layer.bias]))
    assert values.size == 7
    (stats,) = share.stats(module, first)
    np.testing.assert_array_equal(stats.centroids, values)  # ascending, as documented
    assert np.array_equal(layer.weight != 0, weight != 0)  # zeros stay zero, nothing new
    assert 0.0 < stats.relative_rmse < 0.3
    tvm.ir.assert_structural_equal(ShareWeights(bits=3)(module), first)
    # Sharing a shared layer again changes nothing (lossless recompilation).
    tvm.ir.assert_structural_equal(ShareWeights(bits=3)(first), first)


def test_share_rejects_more_than_four_bits() -> None:
    with pytest.raises(CompileError) as info:
        ShareWeights(bits=5)(_module(np.ones((2, 2)), None))
    assert str(info.value) == (
        "--bits 5 is not supported: EIE stores 4-bit weight indices (a codebook of at most 16 "
        "entries, entry 0 reserved for zero) (use --bits between 1 and 4)"
    )


def _lstm_and_head() -> tvm.IRModule:
    """A bidirectional LSTM (node ``lstm0``, H = 3, I = 2) and a Gemm head (layer ``head_W``)."""
    model = lstm_model([LstmSpec(3, "bidirectional")], seq=2, inputs=2, head=2, outputs=("Y",))
    return read_onnx(model).module


def test_prune_lstm_w_and_r_together_with_fc_overrides() -> None:
    module = _lstm_and_head()
    (before,) = find_recurrent_layers(module)
    prune = PruneWeights(sparsity=0.5, overrides={"head_W": 0.0})
    after = prune(module)
    (layer,) = find_recurrent_layers(after)
    weights = np.concatenate([layer.w, layer.r], axis=2)  # (2, 12, 5): D * 4H * (I + H) = 120
    assert np.count_nonzero(weights) == 60
    np.testing.assert_array_equal(weights, prune_magnitude(before.weights(), 0.5))
    # The bias is not pruned; it is written back as B = [Wb + Rb; 0].
    np.testing.assert_array_equal(layer.bias(), before.bias())
    assert not layer.b[:, 12:].any()
    (head,) = find_fc_layers(after["main"])
    assert np.count_nonzero(head.weight) == head.weight.size
    assert [(s.layer, s.target, s.pruned) for s in prune.stats(module, after)] == [
        ("head_W", 0.0, 0),
        ("lstm0", 0.5, 60),
    ]
    with pytest.raises(CompileError) as info:
        PruneWeights(overrides={"lstm9": 0.5})(module)
    assert str(info.value) == (
        "unknown layer name in --sparsity: 'lstm9' (the model's layers are: head_W, lstm0)"
    )


def test_share_lstm_one_codebook_per_layer_stats_per_direction() -> None:
    module = PruneWeights(sparsity=0.3)(_lstm_and_head())
    share = ShareWeights(bits=2)
    shared = share(module)
    (layer,) = find_recurrent_layers(shared)
    bias = layer.bias()
    values = np.unique(np.concatenate([layer.weights().ravel(), bias.ravel()]))
    assert np.count_nonzero(values) <= 3
    assert not layer.b[:, 12:].any()  # Wb + Rb written back as [shared sum; 0]
    stats = share.stats(module, shared)
    assert [s.layer for s in stats] == ["head_W", "lstm0.forward", "lstm0.backward"]
    forward, backward = stats[1:]
    np.testing.assert_array_equal(forward.centroids, backward.centroids)
    np.testing.assert_array_equal(np.sort(forward.centroids), values[values != 0])
    assert forward.rmse == backward.rmse > 0


def test_lowering_an_unshared_layer_names_the_layer_and_the_pass() -> None:
    module = _module(np.arange(1.0, 19.0).reshape(6, 3), None)
    with pytest.raises(CompileError) as info:
        LowerToEIE()(module)
    assert str(info.value) == (
        "layer fc1: 18 distinct non-zero weights; EIE's codebook holds 15 besides "
        "zero (run ShareWeights before LowerToEIE (eiec compile does))"
    )
    LowerToEIE()(ShareWeights(bits=4)(module))


def test_an_error_inside_the_compression_sequential_keeps_its_type() -> None:
    with pytest.raises(CompileError) as info:
        compile_model(GOLDEN_MODEL, CompileOptions.of(pes=4, sparsity={"fc9": 0.5}))
    assert str(info.value) == (
        "unknown layer name in --sparsity: 'fc9' (the model's layers are: fc1 (or '/fc1/Gemm' / "
        "'w1'), fc2 (or '/fc2/Gemm' / 'w2'))"
    )


def test_a_failing_pass_under_tvm_pass_timing_leaves_later_compiles_timed() -> None:
    """An eiec pass that fails inside an instrumented Sequential returns to TVM normally (the
    error is raised by run_pass), so TVM's pass timing stays usable: the next compile is timed
    pass by pass."""
    passes = tvm.transform.Sequential([PruneWeights(overrides={"fc9": 0.5}), ShareWeights()])
    with (
        pytest.raises(CompileError),
        tvm.transform.PassContext(instruments=[PassTimingInstrument()]),
    ):
        run_pass(passes, _module(np.ones((2, 2)), None))
    timings = compile_model(GOLDEN_MODEL, CompileOptions.of(pes=4)).timings
    assert list(timings) == ["import", "prune", "share", "lower", "export", "report"]
