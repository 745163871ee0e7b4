"""Pruning for models that are not retrained (issue 22 item 3): Wanda and N:M."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from eiec.errors import CompileError
from eiec.passes.prune_weights import (
    _REFITS,
    PruneWeights,
    column_norms,
    parse_criterion,
    prune_n_of_m,
    prune_scored_rows,
    quantize_refit,
    refit_rows,
    solve_refit,
)
from eiec.passes.share_weights import ShareWeights, share_values
from eiec.relax_layers.fc import find_fc_layers
from tests.compiler.test_passes import _module


def test_n_of_m_keeps_the_n_largest_of_every_group() -> None:
    weight = np.array([[1.0, -4.0, 3.0, 2.0, 5.0, -6.0, 0.5]])
    pruned = prune_n_of_m(weight, np.abs(weight), 2, 4)
    # groups [1, -4, 3, 2] and [5, -6, 0.5] (short: keeps at most 2)
    assert pruned.tolist() == [[0.0, -4.0, 3.0, 0.0, 5.0, -6.0, 0.0]]
    ties = prune_n_of_m(np.ones((1, 4)), np.ones((1, 4)), 2, 4)
    assert ties.tolist() == [[1.0, 1.0, 0.0, 0.0]]  # ties: the earlier columns stay


def test_scored_rows_prune_each_row_to_the_target() -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(6, 10))
    norms = np.array([10.0, 1, 1, 1, 1, 1, 1, 1, 1, 0.01])
    pruned = prune_scored_rows(weight, np.abs(weight) * norms, 0.5)
    assert (np.count_nonzero(pruned, axis=1) == 5).all()
    assert (pruned[:, 0] != 0).all()  # a high-norm input survives in every row
    assert (pruned[:, 9] == 0).all()  # a near-silent input goes first
    # what is kept is unchanged
    kept = pruned != 0
    assert np.array_equal(pruned[kept], weight[kept])


def test_column_norms() -> None:
    x = np.array([[[3.0, 0.0]], [[4.0, 1.0]]])  # 2 samples of a (1, 2) input
    assert column_norms(x, 2).tolist() == [5.0, 1.0]


def test_parse_criterion() -> None:
    assert parse_criterion("magnitude") == ("magnitude", None)
    assert parse_criterion("wanda") == ("wanda", None)
    assert parse_criterion("2:4") == ("magnitude", (2, 4))
    assert parse_criterion("wanda,4:8") == ("wanda", (4, 8))
    with pytest.raises(CompileError, match="unknown pruning criterion 'sparsegpt'"):
        parse_criterion("sparsegpt")


def _weights(prune: PruneWeights) -> np.ndarray:
    weight = np.random.default_rng(1).normal(size=(12, 8))  # (K, M)
    (layer,) = find_fc_layers(prune(_module(weight, np.zeros(8)))["main"])
    return np.asarray(layer.weight).T  # (M, K)


def test_wanda_and_n_of_m_in_the_pass() -> None:
    rng = np.random.default_rng(2)
    calibration = rng.normal(size=(16, 1, 12)).astype(np.float32)
    calibration[:, :, 0] *= 50.0  # one loud input column: Wanda keeps its weights
    wanda = _weights(PruneWeights(0.5, criterion="wanda", calibration=calibration))
    rows, cols = wanda.shape
    assert (np.count_nonzero(wanda, axis=1) <= cols - round(0.5 * cols)).all()
    assert (wanda[:, 0] != 0).all()
    nm = _weights(PruneWeights(0.0, criterion="2:4"))
    groups = (nm.reshape(rows, -1, 4) != 0).sum(axis=2)
    assert (groups <= 2).all() and np.count_nonzero(nm) > 0
    with pytest.raises(CompileError, match="needs calibration activations"):
        _weights(PruneWeights(0.5, criterion="wanda"))


def test_refit_recovers_the_dense_output_on_the_calibration_inputs() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 16))
    x[:, 8:] = x[:, :8] + 0.1 * rng.normal(size=(200, 8))  # correlated inputs: room to refit
    dense = rng.normal(size=(5, 16))
    pruned = prune_scored_rows(dense, np.abs(dense), 0.5)
    refitted, no_bias = refit_rows(dense, pruned, x, ridge=1e-6)
    assert no_bias is None
    assert np.array_equal(refitted != 0, pruned != 0)  # the same weights kept
    before = np.linalg.norm(x @ pruned.T - x @ dense.T)
    after = np.linalg.norm(x @ refitted.T - x @ dense.T)
    assert after < 0.7 * before
    # the least-squares optimum: no kept weight of row 0 can move to do better
    residual = x @ refitted[0] - x @ dense[0]
    kept = np.flatnonzero(refitted[0])
    assert np.abs(x[:, kept].T @ residual).max() < 1e-3 * np.abs(x.T @ (x @ dense[0])).max()


def test_refit_in_the_pass() -> None:
    calibration = np.random.default_rng(5).normal(size=(32, 1, 12)).astype(np.float32)
    plain = _weights(PruneWeights(0.5, criterion="wanda", calibration=calibration))
    refitted = _weights(PruneWeights(0.5, criterion="wanda,refit", calibration=calibration))
    assert np.array_equal(plain != 0, refitted != 0)
    assert not np.allclose(plain, refitted)


def test_refit_moves_the_bias_and_corrects_toward_the_reference() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(300, 12)) + 1.0  # the dense model's activations
    x = reference + 0.5 + 0.05 * rng.normal(size=reference.shape)  # the pruned model's: shifted
    dense, bias = rng.normal(size=(4, 12)), rng.normal(size=4)
    pruned = prune_scored_rows(dense, np.abs(dense), 0.5)
    wanted = reference @ dense.T + bias

    def error(weights: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(x @ weights.T + b - wanted))

    plain, _ = refit_rows(dense, pruned, x, ridge=1e-6)  # matches dense on x, bias unchanged
    refitted, new_bias = refit_rows(dense, pruned, x, 1e-6, bias=bias, reference=reference)
    assert new_bias is not None and not np.allclose(new_bias, bias)
    assert np.array_equal(refitted != 0, pruned != 0)
    assert error(refitted, new_bias) < 0.7 * error(plain, bias)
    # the optimum: the residual is orthogonal to every kept input of row 0 and to the bias
    residual = x @ refitted[0] + new_bias[0] - wanted[:, 0]
    kept = np.flatnonzero(refitted[0])
    assert np.abs(x[:, kept].T @ residual).max() < 1e-6 * np.abs(x.T @ wanted[:, 0]).max()
    assert abs(residual.sum()) < 1e-6 * np.abs(wanted[:, 0]).sum()


def test_refit_is_remembered_by_the_values_of_its_arguments() -> None:
    """BYOC refits each layer in its sequential calibration and again in its codegen: the
    second call is the first's result, a copy, and only for the very same arguments."""
    rng = np.random.default_rng(1)
    x, dense, bias = rng.normal(size=(50, 8)), rng.normal(size=(3, 8)), rng.normal(size=3)
    pruned = prune_scored_rows(dense, np.abs(dense), 0.5)
    solved = solve_refit(dense, pruned, x, bias=bias, clusters=3)
    first = refit_rows(dense, pruned, x, bias=bias, clusters=3)
    first[0][0, :] = 99.0  # the caller's copy: the remembered result stays
    again = refit_rows(dense, pruned, x, bias=bias, clusters=3)
    for got, want in zip(again, solved, strict=True):
        assert np.array_equal(got, want)
    moved = x.copy()
    moved[0, 0] += 1.0  # one calibration value differs: a new refit
    other = refit_rows(dense, pruned, moved, bias=bias, clusters=3)
    assert np.array_equal(other[0], solve_refit(dense, pruned, moved, bias=bias, clusters=3)[0])
    assert not np.array_equal(other[0], solved[0])


def test_refit_gives_the_same_bits_whatever_the_blas_thread_count() -> None:
    """OpenBLAS rounds a product of this size differently on one thread than on two; the
    refit pins one, so the program does not depend on the machine's core count."""
    rng = np.random.default_rng(0)
    x, dense, bias = rng.normal(size=(2048, 512)), rng.normal(size=(128, 512)), rng.normal(size=128)
    pruned = prune_scored_rows(dense, np.abs(dense), 0.5)
    results = []
    for threads in (1, 2):
        _REFITS.clear()
        with threadpool_limits(limits=threads, user_api="blas"):
            results.append(refit_rows(dense, pruned, x, bias=bias, clusters=16))
    for one, two in zip(*results, strict=True):
        assert np.array_equal(one, two)


@pytest.mark.parametrize("seed", range(4))
def test_quantize_refit_is_never_worse_than_sharing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # correlated inputs (rank 4 plus noise), as a layer's activations are
    x = rng.normal(size=(400, 4)) @ rng.normal(size=(4, 20)) + 0.1 * rng.normal(size=(400, 20))
    dense = rng.normal(size=(16, 20))
    kept = rng.random(dense.shape) < 0.5
    optimum = np.where(kept, dense, 0.0)
    gram, target = x.T @ x, x.T @ (x @ optimum.T)
    quantized = quantize_refit(optimum, kept, gram, target, 3)
    assert np.array_equal(quantized != 0, kept)
    assert np.unique(quantized[kept]).size <= 3
    centers, labels, _ = share_values(optimum[kept], 3)  # weight sharing alone
    shared = np.zeros_like(optimum)
    shared[kept] = centers[labels]
    wanted = x @ optimum.T
    ratio = np.linalg.norm(x @ quantized.T - wanted) / np.linalg.norm(x @ shared.T - wanted)
    assert ratio <= 1.0
    if seed == 0:
        assert ratio < 0.7  # here the sweep's compensation gains much
    # already on the codebook: unchanged
    assert np.array_equal(quantize_refit(quantized, kept, gram, target, 3), quantized)


def test_refit_in_the_pass_shares_exactly_and_refits_the_bias() -> None:
    rng = np.random.default_rng(8)
    calibration = rng.normal(size=(64, 1, 12)).astype(np.float32)
    weight, bias = rng.normal(size=(12, 8)), rng.normal(size=8)
    prune = PruneWeights(0.5, criterion="wanda,refit", calibration=calibration, bits=2)
    pruned = prune(_module(weight, bias))
    (layer,) = find_fc_layers(pruned["main"])
    values = np.concatenate((layer.weight[layer.weight != 0], layer.bias.ravel()))
    assert np.unique(values).size <= 3  # on a 2-bit codebook (entry 0 is zero) already
    assert not np.allclose(layer.bias.ravel(), bias)
    (shared,) = find_fc_layers(ShareWeights(2)(pruned)["main"])
    assert np.array_equal(shared.weight, layer.weight)  # sharing keeps the refit's values
