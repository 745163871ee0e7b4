"""ShareWeights: per-layer weight sharing with a k-means codebook (Deep Compression, stage 2).

Every FC layer and every LSTM or GRU layer gets its own codebook.

Each layer gets a codebook of ``2**bits`` entries: entry 0 is reserved for zero (pruned weights
and EIE's padding entries), the other ``2**bits - 1`` are the centroids of a one-dimensional
k-means (Lloyd's, as scikit-learn's ``KMeans`` with ``n_init=1`` runs it, centroids initialised
linearly between the minimum and the maximum: Deep Compression's best initialisation) over the
layer's non-zero weights. Every non-zero weight becomes its centroid; zeros stay zero. A layer
with at most ``2**bits - 1`` distinct non-zero values keeps them exactly, so compiling a
compressed model again is lossless.

The bias shares the layer's codebook: EIE stores it as one more column of the same matrix, with
the same 4-bit indices into the same 16 registers, so its non-zero values join the k-means data
(they are M values beside M * K weights). Biases are not pruned; a zero bias stays zero.

An LSTM layer (ONNX node) has one codebook shared by its four gates, W and R, both directions
and the bias: EIE runs a direction's gates as one matrix ``[W | R | bias]`` with one set of 16
codebook registers, and one codebook per layer keeps the two directions' programs alike (the
program stores it once per direction, each direction being its own EIE layer). Its bias is
``Wb + Rb`` (the ``#1`` column), written back as ``B = [shared(Wb + Rb); 0]``. A GRU layer
likewise (three gates; with ``linear_before_reset = 1`` its ``Rb_h`` is a bias of its own,
written back into Rb: ``eiec.relax_layers.lstm.RecurrentLayer.bias``).

The codebook is stored in 16-bit fixed point, one format per layer, whose step is set by the
largest value (``eiec.isa.fixed.frac_for_range``): :func:`fit_word_format` rounds the shared
values that are below half that step to zero here, as the program stores them (a trained bias of
1e-7 beside weights of 0.1), so the compressed model is what EIE computes; a layer most of whose
weights would round away (an outlier weight 1e5 times the others) is refused, and one losing more
than 1% of them gets a warning.

Codebook order is ascending (entry 1 the most negative centroid); ``LowerToEIE`` rebuilds the
codebook from the shared values in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm.relax.expr_functor import mutator

from eiec.errors import CompileError, warn
from eiec.isa.fixed import (
    COARSEST_FRAC,
    FINEST_FRAC,
    MAX_MAGNITUDE,
    frac_for_range,
    lost_to_rounding,
)
from eiec.isa.program import CODEBOOK_SIZE, NIBBLE_BITS
from eiec.passes.pass_decorator import eiec_module_pass
from eiec.relax_layers.fc import LayerConstantRewriter, find_fc_layers, rewrite_layers
from eiec.relax_layers.lstm import (
    direction_suffixes,
    find_recurrent_layers,
    rewrite_recurrent_layers,
    split_weights,
)


@dataclass(frozen=True)
class ShareStats:
    """Weight sharing of one layer: its non-zero codebook values and the quantisation error.

    ``rmse`` and ``max_error`` are over the layer's non-zero weights and bias values;
    ``relative_rmse`` is ``rmse`` over their root mean square. ``exact`` is True when the layer
    already had few enough distinct values (no k-means ran, no error).
    """

    layer: str
    bits: int
    centroids: np.ndarray
    exact: bool
    rmse: float
    max_error: float
    relative_rmse: float


def share_values(
    values: np.ndarray, clusters: int, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(sorted centroids, index of each value's centroid, exact) for 1-D non-zero ``values``;
    ``weights``: each value's importance in the k-means (:func:`lloyd_1d`)."""
    ordered = np.sort(values.astype(np.float64))
    step = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    if step.size + 1 <= clusters:
        distinct = ordered[np.concatenate(([0], step))]
        return distinct, np.searchsorted(distinct, values), True
    if weights is None:
        centers, labels = lloyd_1d(values, clusters, ordered=ordered)
    else:
        centers, labels = lloyd_1d(values, clusters, weights=weights)
    return centers, labels, False


def lloyd_1d(
    values: np.ndarray,
    clusters: int,
    max_iter: int = 300,
    tol: float = 1e-4,
    *,
    ordered: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(ascending centroids, index of each value's centroid): Lloyd's k-means in one dimension
    from centroids spaced linearly between the minimum and the maximum (``ordered``: the values
    sorted, when the caller has them).

    It is scikit-learn's ``KMeans(init=linear, n_init=1, algorithm="lloyd")`` step for step
    (data centred on its mean, stop on unchanged labels or on a squared centre shift at most
    ``tol`` times the variance, an empty cluster takes the point farthest from its centre, a
    value half-way between two centroids goes to the lower one), done the 1-D way: on sorted
    values a cluster is a range, found by binary search at the midpoints between centroids, and
    its mean comes from prefix sums, so an iteration costs O(clusters log n), not O(n clusters).

    ``weights`` (positive, one per value) make it the weighted k-means (scikit-learn's
    ``sample_weight``): each centroid the weighted mean of its cluster, so values that matter
    more are represented more closely.
    """
    if weights is None:
        x = np.sort(values.astype(np.float64)) if ordered is None else ordered.astype(np.float64)
        w = np.ones(x.size)
    else:
        order = np.argsort(values, kind="stable")
        x = values.astype(np.float64)[order]
        w = np.asarray(weights, np.float64)[order]
    mean = float(x.mean())
    x -= mean
    prefix = np.zeros(x.size + 1)
    np.cumsum(w * x, out=prefix[1:])
    mass = np.zeros(x.size + 1)
    np.cumsum(w, out=mass[1:])
    centers = np.linspace(x[0], x[-1], clusters)
    tol *= float(np.var(x))
    cut_before = None
    for _ in range(max_iter):
        cut = np.searchsorted(x, (centers[:-1] + centers[1:]) / 2, side="right")
        lo, hi = np.concatenate(([0], cut)), np.concatenate((cut, [x.size]))
        new = _relocated_means(x, w, prefix, mass, centers, lo, hi)
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if cut_before is not None and np.array_equal(cut, cut_before):
            break  # the same clusters twice: converged
        if shift <= tol:
            break
        cut_before = cut
    return centers + mean, _nearest(centers, values - mean)


def _nearest(centers: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The index of each value's nearest of the ascending ``centers`` (ties: the lower)."""
    return np.searchsorted((centers[:-1] + centers[1:]) / 2, values, side="left")


def _relocated_means(
    x: np.ndarray,
    w: np.ndarray,
    prefix: np.ndarray,
    mass: np.ndarray,
    centers: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """The new ascending centroids (weighted means, ``w``: the values' weights, ``prefix`` and
    ``mass`` the prefix sums of ``w x`` and ``w``) of the clusters ``x[lo[i]:hi[i]]``; each
    empty cluster moves to the remaining point farthest from its centre (always at one end of a
    range), which leaves its old cluster."""
    counts = mass[hi] - mass[lo]
    sums = prefix[hi] - prefix[lo]
    empty_mask = hi == lo
    new = centers.copy()
    empty = np.flatnonzero(empty_mask)
    if empty.size:
        lo, hi = lo.copy(), hi.copy()
        moved = []
        for _ in empty:
            live = np.flatnonzero(hi > lo)
            left = np.abs(x[lo[live]] - centers[live])
            right = np.abs(x[hi[live] - 1] - centers[live])
            best = int(np.argmax(np.maximum(left, right)))
            cluster = live[best]
            if left[best] >= right[best]:
                where = lo[cluster]
                lo[cluster] += 1
            else:
                hi[cluster] -= 1
                where = hi[cluster]
            point = x[where]
            sums[cluster] -= w[where] * point
            counts[cluster] -= w[where]
            moved.append(point)
        counts[empty] = 0
        new[empty] = moved
    full = (counts > 0) & (hi > lo)
    new[full] = sums[full] / counts[full]
    return np.sort(new)


def check_bits(bits: int) -> None:
    """Raise CompileError unless 1 <= bits <= 4 (EIE's weight index is a nibble)."""
    if not 1 <= bits <= NIBBLE_BITS:
        raise CompileError(
            f"--bits {bits} is not supported: EIE stores {NIBBLE_BITS}-bit weight indices "
            f"(a codebook of at most {CODEBOOK_SIZE} entries, entry 0 reserved for zero)",
            fix=f"use --bits between 1 and {NIBBLE_BITS}",
        )


#: The fraction of a layer's non-zero weights that may round to zero without a warning.
LOST_WARNING = 0.01


def fit_word_format(
    name: str, weight: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of layer ``name`` with the values 16-bit fixed point stores as 0 set to 0.

    One format holds the layer's codebook (weights and bias): its step is set by the largest
    magnitude, and a value below half a step rounds to zero (what the program stores; the
    rounding error is within the codebook's bound). CompileError when most of the non-zero
    weights would be lost (the format cannot hold the layer); a warning when more than
    ``LOST_WARNING`` of them are. A bias value below the step is only rounded: it adds less
    than the output's rounding."""
    values = np.concatenate((weight.ravel(), bias.ravel())).astype(np.float64)
    magnitudes = np.abs(values)
    largest = float(magnitudes.max(initial=0.0))
    if largest == 0.0:
        return weight, bias
    if not largest <= MAX_MAGNITUDE:  # NaN and Inf too
        bad = float(values[int(np.argmax(~(magnitudes <= MAX_MAGNITUDE)))])
        raise CompileError(
            f"a weight or bias of {bad:.4g} is beyond 16-bit fixed point (at most "
            f"{MAX_MAGNITUDE:.4g} in magnitude, at a step of {2.0**-COARSEST_FRAC:g})",
            where=f"layer {name}",
            fix="retrain or repair the weights, or scale the layer's input down",
        )
    frac = frac_for_range(largest)
    lost = lost_to_rounding(values, frac)
    if not lost.any():
        return weight, bias
    count = int(np.count_nonzero(weight))
    lost_count = int(lost[: weight.size].sum())
    step = 2.0**-frac
    if frac == FINEST_FRAC:
        scale = f"its largest value ({largest:.4g}) is below the finest step (2^-{frac})"
        fix = "scale the layer's weights up (and the next layer's down), or remove the layer"
    else:
        place = "in the bias" if int(np.argmax(magnitudes)) >= weight.size else "a weight"
        scale = f"its largest value ({largest:.4g}, {place}) sets the step to {step:.3g}"
        fix = (
            "the values span too wide a range for one 16-bit format: clip or remove the "
            "outliers, or retrain with weight decay"
        )
    what = (
        f"{lost_count} of {count} non-zero weights round to 0 in 16-bit fixed point: one format "
        f"holds the layer's weights and bias, {scale}, and values below {step / 2:.3g} are lost"
    )
    if lost_count * 2 > count:
        raise CompileError(what, where=f"layer {name}", fix=fix)
    if lost_count > LOST_WARNING * count:
        warn(what, where=f"layer {name}", fix="check that the small weights do not matter, or "
             "clip the outliers")  # fmt: skip
    kept = np.where(lost, 0.0, values)
    return (
        kept[: weight.size].reshape(weight.shape).astype(weight.dtype),
        kept[weight.size :].reshape(bias.shape).astype(bias.dtype),
    )


@mutator
class _ShareRewriter(LayerConstantRewriter):
    """Substitutes the shared weights."""


def layer_values(mod: tvm.IRModule) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(weights, bias) each layer's codebook covers, by program layer name: an FC layer's (K, M)
    weight and its bias (empty without one); an LSTM / GRU layer's ``[W | R]`` and EIE bias under
    each of its directions' names (FC layers first)."""
    values = {}
    for layer in find_fc_layers(mod["main"]):
        bias = layer.bias if layer.bias is not None else np.zeros(0, layer.weight.dtype)
        values[layer.name] = (layer.weight, bias)
    for layer in find_recurrent_layers(mod):
        for suffix in direction_suffixes(layer.directions):
            values[layer.name + suffix] = (layer.weights(), layer.bias())
    return values


@eiec_module_pass("ShareWeights")
@dataclass(frozen=True)
class ShareWeights:
    """Quantise every FC, LSTM and GRU layer of ``main`` to a ``2**bits``-entry codebook (entry
    0 = 0).

    :meth:`stats` gives each program layer's centroids and quantisation error, FC layers first;
    an LSTM or GRU layer has one entry per direction (``NAME``, or ``NAME.forward`` and
    ``NAME.backward``: the same figures).
    """

    bits: int = 4

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        check_bits(self.bits)
        fc_constants = {}
        for layer in find_fc_layers(mod["main"]):
            bias = layer.bias if layer.bias is not None else np.zeros(0, layer.weight.dtype)
            weight, shared_bias = fit_word_format(layer.name, *self._share(layer.weight, bias))
            fc_constants[layer.name] = (weight, shared_bias if layer.bias is not None else None)
        lstm_constants = {}
        for layer in find_recurrent_layers(mod):
            weights, bias = fit_word_format(layer.name, *self._share(layer.weights(), layer.bias()))
            lstm_constants[layer.name] = split_weights(layer, weights, bias)
        mod = rewrite_layers(mod, fc_constants, _ShareRewriter)
        return rewrite_recurrent_layers(mod, lstm_constants)

    def _share(self, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shared weight, shared bias): the non-zero values of both, in that order, clustered
        together; zeros stay zero."""
        w_mask, b_mask = weight != 0, bias != 0
        values = np.concatenate((weight[w_mask], bias[b_mask])).astype(np.float64)
        shared = np.zeros(0)
        if values.size:
            centroids, labels, _ = share_values(values, (1 << self.bits) - 1)
            shared = centroids[labels]
        count = int(w_mask.sum())
        new_weight = np.zeros_like(weight)
        new_weight[w_mask] = shared[:count]
        new_bias = np.zeros_like(bias)
        new_bias[b_mask] = shared[count:]
        return new_weight, new_bias

    def stats(self, before: tvm.IRModule, after: tvm.IRModule) -> list[ShareStats]:
        """Each program layer's codebook and quantisation error, from the module ``before`` the
        pass and ``after`` it (the stored, shared values)."""
        shared = layer_values(after)
        stats = []
        for name, (weight, bias) in layer_values(before).items():
            w_mask, b_mask = weight != 0, bias != 0
            values = np.concatenate((weight[w_mask], bias[b_mask])).astype(np.float64)
            new_weight, new_bias = shared[name]
            stored = np.concatenate((new_weight[w_mask], new_bias[b_mask])).astype(np.float64)
            error = stored - values
            rms = float(np.sqrt(np.mean(values**2))) if values.size else 0.0
            rmse = float(np.sqrt(np.mean(error**2))) if values.size else 0.0
            stats.append(
                ShareStats(
                    name,
                    self.bits,
                    np.unique(stored).astype(np.float32),
                    np.unique(values).size <= (1 << self.bits) - 1,
                    rmse,
                    float(np.abs(error).max()) if values.size else 0.0,
                    rmse / rms if rms else 0.0,
                )
            )
        return stats
