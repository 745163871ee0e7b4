"""ShareWeights' 1-D k-means against scikit-learn's KMeans (Lloyd, linear init, one run)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from eiec.passes import share_weights
from eiec.passes.share_weights import lloyd_1d


def _sklearn(
    values: np.ndarray, clusters: int, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    init = np.linspace(values.min(), values.max(), clusters).reshape(-1, 1)
    kmeans = KMeans(n_clusters=clusters, init=init, n_init=1, algorithm="lloyd", random_state=0)
    kmeans.fit(values.reshape(-1, 1), sample_weight=weights)
    centers = kmeans.cluster_centers_.reshape(-1)
    order = np.argsort(centers)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return centers[order], rank[kmeans.labels_]


_RNG = np.random.default_rng(14)
CASES = {
    "normal": _RNG.standard_normal(4000) / 30,
    "laplace": _RNG.laplace(size=4000),
    "pruned": (lambda w: w[np.abs(w) > 1.6])(_RNG.standard_normal(12_000)),
    "bimodal": np.concatenate([_RNG.normal(-1, 0.05, 2000), _RNG.normal(1, 0.05, 2000)]),
}
OUTLIERS = np.concatenate([_RNG.standard_normal(600), [40.0, -35.0, 60.0]])


@pytest.mark.parametrize(
    ("name", "clusters"), [("normal", 15), ("laplace", 15), ("pruned", 7), ("bimodal", 3)]
)
def test_lloyd_1d_is_sklearn_kmeans(name: str, clusters: int) -> None:
    values = CASES[name]
    centers, labels = lloyd_1d(values, clusters)
    expected_centers, expected_labels = _sklearn(values, clusters)
    np.testing.assert_allclose(centers, expected_centers, rtol=0, atol=1e-12 * values.std())
    np.testing.assert_array_equal(labels, expected_labels)
    assert np.all(np.diff(centers) > 0)


def test_empty_clusters_take_the_farthest_points(monkeypatch: pytest.MonkeyPatch) -> None:
    # Linear init over [-35, 60] leaves most of the 15 clusters without a point at first.
    empties = []
    relocate = share_weights._relocated_means

    def counting(x, w, prefix, mass, centers, lo, hi):  # type: ignore[no-untyped-def]
        empties.append(int(np.count_nonzero(hi == lo)))
        return relocate(x, w, prefix, mass, centers, lo, hi)

    monkeypatch.setattr(share_weights, "_relocated_means", counting)
    centers, labels = lloyd_1d(OUTLIERS, 15)
    assert empties[0] >= 5
    expected_centers, expected_labels = _sklearn(OUTLIERS, 15)
    np.testing.assert_allclose(centers, expected_centers, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(labels, expected_labels)


@pytest.mark.parametrize(("name", "clusters"), [("laplace", 15), ("pruned", 7)])
def test_weighted_lloyd_1d_is_sklearn_kmeans_with_sample_weights(name: str, clusters: int) -> None:
    # Importance weights spanning three orders of magnitude (as squared gradients do).
    values = CASES[name]
    weights = np.exp(np.random.default_rng(3).normal(scale=2.0, size=values.size))
    centers, labels = lloyd_1d(values, clusters, weights=weights)
    expected_centers, expected_labels = _sklearn(values, clusters, weights)
    np.testing.assert_allclose(centers, expected_centers, rtol=0, atol=1e-9 * values.std())
    np.testing.assert_array_equal(labels, expected_labels)
    plain, _ = lloyd_1d(values, clusters)
    assert not np.allclose(centers, plain)  # the weights moved the centroids
