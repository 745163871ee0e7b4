"""Pruning for models that are not retrained (issue 22 item 3): Wanda and N:M."""

from __future__ import annotations

import numpy as np
import pytest

from eiec.errors import CompileError
from eiec.passes.prune_weights import (
    PruneWeights,
    column_norms,
    parse_criterion,
    prune_n_of_m,
    prune_scored_rows,
    refit_rows,
)
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
    refitted = refit_rows(dense, pruned, x, ridge=1e-6)
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
