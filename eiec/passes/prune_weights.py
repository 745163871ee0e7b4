"""PruneWeights: magnitude pruning of every FC, LSTM and GRU layer's weights to a target sparsity.

Deep Compression's first stage. Per layer, the smallest-magnitude weights are set to zero until
the layer has ``round(sparsity * weights)`` zeros. Weights that are already zero stay zero and
count towards the target: a layer that is already as sparse as asked loses nothing, and
sparsity 0 prunes nothing. Ties at the threshold are broken by position (the earlier weight in
row-major order is pruned first), so the result is deterministic. Biases are not pruned.

The weights of an FC layer are its (M, K) matrix in EIE's [out, in] order; those of an LSTM
(GRU) layer are W and R of all its directions together, ``[W | R]`` matrices in
[direction, gate row, column] order (``D * GH * (I + H)`` weights, G = 4 or 3 gates).

With ``balance`` (load-balance-aware pruning, ESE: Han et al., FPGA 2017) each PE's share of a
layer is pruned to the target on its own, so no PE keeps more weights than the others: the
rows of PE p are those EIE stores there (FC row r: ``r mod N``; LSTM / GRU gate row
``g*H + u``: ``u mod N``, as the code generation interleaves them).

For models that are not retrained, ``criterion`` (FC layers; LSTM and GRU layers stay
magnitude-pruned):

- ``"wanda"`` (Sun et al., ICLR 2024): score ``|W_ij| * ||X_j||_2``, the input column's norm
  over calibration activations of that layer (``calibration``: samples of ``main``'s input,
  the layer's own input in an offloaded function); each output row loses the lowest scores
  to the target on its own.
- ``"N:M"`` (e.g. ``"2:4"``, GPUs' sparse tensor cores): in every group of M consecutive
  inputs of a row, the N highest magnitudes stay (density N/M; the layer's target is not used);
  ``"wanda,N:M"`` ranks the groups by Wanda's score.
- ``",refit"`` added to any of them (e.g. ``"wanda,refit"``): layer-wise recovery without
  backpropagation: each row's kept weights and its bias are refitted by least squares on the
  calibration activations so that the pruned layer's output matches the dense one's
  (ridge-regularised normal equations, :func:`refit_rows`); weight sharing then quantises the
  refitted weights. Given ``reference`` (the original model's activations at the calibration
  rows, while ``calibration`` holds the pruned model's: BYOC's sequential calibration), the
  target is the dense layer on the original activations.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import tvm
from threadpoolctl import threadpool_limits
from tvm import relax
from tvm.relax.expr_functor import mutator

from eiec.errors import CompileError
from eiec.passes.pass_decorator import eiec_module_pass
from eiec.passes.share_weights import share_values
from eiec.relax_layers.exprs import bindings
from eiec.relax_layers.fc import FcLayer, LayerConstantRewriter, find_fc_layers, rewrite_layers
from eiec.relax_layers.lstm import (
    find_recurrent_layers,
    recurrent_aliases,
    rewrite_recurrent_layers,
    split_weights,
)


@dataclass(frozen=True)
class PruneStats:
    """What pruning did to one layer."""

    layer: str
    target: float
    density_before: float
    density_after: float
    pruned: int
    #: Non-zero weights of the busiest PE, and their mean over the PEs, before and after.
    pe_max_before: int = 0
    pe_mean_before: float = 0.0
    pe_max_after: int = 0
    pe_mean_after: float = 0.0


def prune_magnitude(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """``weight`` (any shape, row-major order breaks ties) with its smallest magnitudes zeroed.

    The copy keeps the memory order of a transposed (Fortran-ordered) 2-D ``weight``: it is
    pruned as stored, without a strided copy, and only the threshold's ties are ordered by
    their row-major index.
    """
    transposed = weight.ndim == 2 and weight.flags.f_contiguous and not weight.flags.c_contiguous
    stored = np.array(weight.T if transposed else weight, order="C")
    flat = stored.reshape(-1)
    magnitude = np.abs(flat)
    target = round(sparsity * flat.size)
    zeros = flat.size - int(np.count_nonzero(magnitude))
    if target > zeros:
        magnitude.partition(target - 1)  # in place: the magnitudes are not needed again
        threshold = magnitude[target - 1]  # > 0, as fewer than target weights are zero
        # |w| < t and |w| == t on the weights themselves (the same for NaN and infinities).
        mask = (flat > -threshold) & (flat < threshold)
        ties = np.flatnonzero((flat == threshold) | (flat == -threshold))
        if transposed:  # storage index c * rows + r is the row-major index r * cols + c
            columns, rows = divmod(ties, weight.shape[0])
            ties = ties[np.argsort(rows * weight.shape[1] + columns, kind="stable")]
        mask[ties[: target - int(np.count_nonzero(mask))]] = True
        np.copyto(flat, 0, where=mask)
    return stored.T if transposed else stored


def prune_balanced(weight: np.ndarray, sparsity: float, owner: np.ndarray) -> np.ndarray:
    """Load-balance-aware pruning (ESE, Han et al., FPGA 2017): ``weight`` (rows first) with
    each PE's rows (``owner[r]``: the PE of row r) magnitude-pruned to ``sparsity`` on their own,
    so every PE's share of the matrix keeps the same density."""
    rows = weight.reshape(len(owner), -1)
    pruned = np.empty_like(rows)
    for pe in np.unique(owner):
        mine = owner == pe
        pruned[mine] = prune_magnitude(rows[mine], sparsity)
    return pruned.reshape(weight.shape)


def prune_scored_rows(weight: np.ndarray, scores: np.ndarray, sparsity: float) -> np.ndarray:
    """``weight`` (M, K) with the ``round(sparsity * K)`` lowest ``scores`` of each row zeroed
    (ties: the earlier column first)."""
    drop = round(sparsity * weight.shape[1])
    pruned = np.array(weight, order="C")
    if drop:
        order = np.argsort(scores, axis=1, kind="stable")[:, :drop]
        np.put_along_axis(pruned, order, 0, axis=1)
    return pruned


def prune_n_of_m(weight: np.ndarray, scores: np.ndarray, n: int, m: int) -> np.ndarray:
    """``weight`` (M, K) keeping, in each group of ``m`` consecutive columns of a row, the ``n``
    highest ``scores`` (a last, shorter group keeps at most ``n``; ties: the earlier column)."""
    rows, cols = weight.shape
    groups = -(-cols // m)
    padded = np.full((rows, groups * m), -np.inf)
    padded[:, :cols] = scores
    grouped = padded.reshape(rows, groups, m)
    order = np.argsort(-grouped, axis=2, kind="stable")  # highest first, earlier on ties
    keep = np.zeros_like(grouped, dtype=bool)
    np.put_along_axis(keep, order[:, :, :n], True, axis=2)
    return np.where(keep.reshape(rows, -1)[:, :cols], weight, 0).astype(weight.dtype)


#: Refits already computed in this process, by the digest of their arguments (most recent
#: last); at most ``REFIT_CACHE_BYTES`` of results are kept.
_REFITS: OrderedDict[str, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
REFIT_CACHE_BYTES = 256 << 20


def _refit_key(arrays: tuple[np.ndarray | None, ...], ridge: float, clusters: int | None) -> str:
    digest = hashlib.sha256(f"{ridge!r}:{clusters}".encode())
    for array in arrays:
        if array is None:
            digest.update(b"none")
            continue
        data = np.ascontiguousarray(array)
        digest.update(f":{data.dtype}:{data.shape}:".encode())
        digest.update(data.tobytes())
    return digest.hexdigest()


def refit_rows(
    dense: np.ndarray,
    pruned: np.ndarray,
    inputs: np.ndarray,
    ridge: float = 1e-3,
    *,
    bias: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    clusters: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(``pruned`` (M, K) with each row's non-zero weights refitted, the refitted ``bias``):
    :func:`solve_refit`, remembered for the process (BYOC's sequential calibration refits each
    layer, then its codegen compiles the same layer again with the same arguments: the second
    refit is a copy of the first). The solve runs on one BLAS thread: OpenBLAS's products and
    factorisations round differently with another thread count, so the refitted weights, and
    the program, would depend on the machine's core count (one thread is also faster here)."""
    key = _refit_key((dense, pruned, inputs, bias, reference), ridge, clusters)
    if key in _REFITS:
        _REFITS.move_to_end(key)
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            _REFITS[key] = solve_refit(
                dense, pruned, inputs, ridge, bias=bias, reference=reference, clusters=clusters
            )
        held = lambda entry: sum(a.nbytes for a in entry if a is not None)  # noqa: E731
        while len(_REFITS) > 1 and sum(map(held, _REFITS.values())) > REFIT_CACHE_BYTES:
            _REFITS.popitem(last=False)
    weights, new_bias = _REFITS[key]
    return weights.copy(), None if new_bias is None else new_bias.copy()


def solve_refit(
    dense: np.ndarray,
    pruned: np.ndarray,
    inputs: np.ndarray,
    ridge: float = 1e-3,
    *,
    bias: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    clusters: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(``pruned`` (M, K) with each row's non-zero weights refitted, the refitted ``bias``).

    Each row minimises ``||X_S w + b - (R w_dense + b_dense)||^2 + ridge * mean(diag(G)) *
    ||(w, b)||^2`` (G: the Gram matrix of ``[X 1]``) over the calibration rows ``inputs`` X
    (N, K): the pruned row's output on X matches the dense row's on ``reference`` R (the
    original model's activations at the same rows, default X) as closely as its kept inputs
    and its bias allow. With R the dense model's activations and X the pruned model's (SparseGPT's
    sequential calibration), each layer also corrects the error its inputs carry. Without a
    ``bias`` (None) there is no bias term. Rows that keep nothing keep no weight (their bias is
    still refitted). With ``clusters`` (the codebook size weight sharing will use) the refitted
    weights and bias are then quantised to that many shared values by :func:`quantize_refit`,
    which weight sharing keeps as they are."""
    x = np.asarray(inputs, dtype=np.float64).reshape(-1, dense.shape[1])
    r = x if reference is None else np.asarray(reference, dtype=np.float64).reshape(x.shape)
    weights = np.asarray(dense, dtype=np.float64)
    if bias is not None:  # the bias as one more input, always 1, never pruned
        x = np.hstack((x, np.ones((len(x), 1))))
        r = x if reference is None else np.hstack((r, np.ones((len(r), 1))))
        weights = np.hstack((weights, np.asarray(bias, dtype=np.float64).reshape(-1, 1)))
    gram = x.T @ x
    damp = ridge * float(np.mean(np.diag(gram))) + 1e-12
    target = x.T @ (r @ weights.T)  # (K, M): X^T (R w_dense) per row
    kept_mask = np.asarray(pruned) != 0
    if bias is not None:
        kept_mask = np.hstack((kept_mask, np.ones((len(kept_mask), 1), dtype=bool)))
    refitted = np.zeros_like(weights)
    refitted[:, : dense.shape[1]] = pruned
    for row in range(dense.shape[0]):
        kept = np.flatnonzero(kept_mask[row])
        if len(kept):
            system = gram[np.ix_(kept, kept)] + damp * np.eye(len(kept))
            refitted[row, kept] = np.linalg.solve(system, target[kept, row])
    if clusters is not None:
        refitted = quantize_refit(
            refitted, kept_mask, gram + damp * np.eye(len(gram)), target, clusters
        )
    new_bias = None if bias is None else refitted[:, -1].astype(np.asarray(bias).dtype)
    return refitted[:, : dense.shape[1]].astype(pruned.dtype), new_bias


def quantize_refit(
    weights: np.ndarray, kept: np.ndarray, gram: np.ndarray, target: np.ndarray, clusters: int
) -> np.ndarray:
    """``weights`` (M, K) quantised to ``clusters`` shared values (zeros where ``kept`` is
    False), minimising the layer's output error ``sum_rows (w - w*)^T G (w - w*)`` around the
    least-squares optimum w* (``gram`` G = X^T X, damped; ``target`` = X^T Y, (K, M)).

    GPTQ / SparseGPT's column sweep (Frantar et al., 2022-23) with Deep Compression's codebook
    for a grid: the codebook is the k-means of the kept values (:func:`share_values`), column j
    is rounded to its nearest entry and the rounding error is spread over the columns after it
    through the Cholesky factor of G^-1. Then, the assignment fixed, the entries themselves are
    refitted by least squares on the same objective (Deep Compression's centroid fine-tuning,
    on the layer's output instead of the model's loss). The same refit of plain rounding's
    assignment is the other candidate; the one with the lower objective is returned, so the
    result is never worse on the calibration rows than rounding each weight to the k-means
    codebook (what weight sharing alone does)."""
    values = weights[kept]
    if values.size == 0:
        return weights
    centers, _, exact = share_values(values, clusters)
    if exact:
        return weights
    swept = np.array(weights, dtype=np.float64)
    upper = np.linalg.cholesky(np.linalg.inv(gram)).T  # G^-1 = U^T U, U upper triangular
    middles = (centers[1:] + centers[:-1]) / 2
    for col in range(swept.shape[1]):
        column = swept[:, col]
        rounded = np.where(kept[:, col], centers[np.searchsorted(middles, column)], 0.0)
        error = (column - rounded) / upper[col, col]
        swept[:, col] = rounded
        swept[:, col + 1 :] -= np.outer(error, upper[col, col + 1 :])
    candidates = [
        _refit_entries(np.searchsorted(middles, grid), kept, gram, target, len(centers))
        for grid in (swept, weights)  # the sweep's assignment, and plain rounding's
    ]

    def loss(candidate: np.ndarray) -> float:
        delta = candidate - weights
        return float(np.sum((delta @ gram) * delta))

    return min(candidates, key=loss)


def _refit_entries(
    labels: np.ndarray, kept: np.ndarray, gram: np.ndarray, target: np.ndarray, entries: int
) -> np.ndarray:
    """The weights whose kept entries (``labels``: codebook index of each weight) take the
    codebook values minimising ``quantize_refit``'s objective (least squares, ``entries``
    unknowns)."""
    onehot = [(kept & (labels == c)).astype(np.float64) for c in range(entries)]
    weighted = [member @ gram for member in onehot]
    system = np.array([[np.sum(w * m) for m in onehot] for w in weighted])
    rhs = np.array([np.sum(member * target.T) for member in onehot])
    values = np.linalg.lstsq(system, rhs, rcond=None)[0]
    result = np.zeros(labels.shape)
    for value, member in zip(values, onehot, strict=True):
        result += value * member
    return result


def parse_criterion(text: str) -> tuple[str, tuple[int, int] | None]:
    """``"magnitude"``, ``"wanda"``, ``"N:M"`` or ``"wanda,N:M"`` (each with an optional
    ``",refit"``, see :func:`refits`) -> (score, (N, M) or None); CompileError for anything
    else."""
    score, pattern = "magnitude", None
    for part in (p.strip() for p in text.split(",")):
        if part == "refit":
            continue
        if part in ("magnitude", "wanda"):
            score = part
            continue
        n, sep, m = part.partition(":")
        if sep and n.isdigit() and m.isdigit() and 0 < int(n) <= int(m):
            pattern = (int(n), int(m))
            continue
        raise CompileError(
            f"unknown pruning criterion {part!r} in {text!r}",
            fix="give magnitude, wanda, N:M (e.g. 2:4) or wanda,N:M, optionally with ,refit",
        )
    return score, pattern


def refits(text: str) -> bool:
    """Whether the criterion asks for the least-squares recovery (``",refit"``)."""
    return "refit" in (p.strip() for p in text.split(","))


def column_norms(calibration: np.ndarray, cols: int) -> np.ndarray:
    """``||X_j||_2`` of each of the ``cols`` input columns over every calibration row."""
    rows = np.asarray(calibration, dtype=np.float64).reshape(-1, cols)
    return np.sqrt(np.square(rows).sum(axis=0))


def per_pe_counts(weight: np.ndarray, owner: np.ndarray, pes: int) -> np.ndarray:
    """Non-zero weights of each PE's rows (``owner[r]``: the PE of row r), shape (pes,)."""
    counts = np.count_nonzero(weight.reshape(len(owner), -1), axis=1)
    return np.bincount(owner, weights=counts, minlength=pes).astype(np.int64)


def row_owners(weights: np.ndarray, pes: int, hidden: int | None = None) -> np.ndarray:
    """The PE of each row of a layer's weights: FC (M, K) row r on ``r mod N``; a recurrent
    layer's (D, GH, K) (``hidden`` = H) row (d, g*H + u) on ``u mod N``."""
    if weights.ndim == 3:
        if hidden is None:
            raise ValueError("row_owners of a recurrent layer's weights needs its hidden size")
        return (np.arange(weights.shape[0] * weights.shape[1]) % hidden) % pes
    return np.arange(weights.shape[0]) % pes


def resolve_layer_options(
    values: Mapping[str, float],
    layer_names: list[str],
    aliases: Mapping[str, str],
    option: str,
) -> dict[str, float]:
    """Per-layer values keyed by layer name; keys may be layer names or their aliases.

    Raises CompileError naming the unknown keys and listing the layers.
    """
    known = {name: name for name in layer_names} | dict(aliases)
    unknown = [key for key in values if key not in known]
    if unknown:
        listing = ", ".join(_describe(name, aliases) for name in layer_names)
        raise CompileError(
            f"unknown layer name{'s' if len(unknown) > 1 else ''} in {option}: "
            + ", ".join(repr(k) for k in unknown),
            fix=f"the model's layers are: {listing}",
        )
    return {known[key]: value for key, value in values.items()}


def _describe(name: str, aliases: Mapping[str, str]) -> str:
    others = [repr(alias) for alias, layer in aliases.items() if layer == name and alias != name]
    return f"{name} (or {' / '.join(others)})" if others else name


@mutator
class _PruneRewriter(LayerConstantRewriter):
    """Substitutes the pruned weights."""


def layer_weights(mod: tvm.IRModule) -> dict[str, np.ndarray]:
    """The weights pruning works on, per layer name: an FC layer's (M, K) matrix, an LSTM or
    GRU layer's ``[W | R]`` of all directions (FC layers first)."""
    weights = {layer.name: layer.weight.T for layer in find_fc_layers(mod["main"])}
    weights.update({layer.name: layer.weights() for layer in find_recurrent_layers(mod)})
    return weights


@eiec_module_pass("PruneWeights")
@dataclass(frozen=True)
class PruneWeights:
    """Magnitude-prune every FC, LSTM and GRU layer of ``main`` to ``sparsity`` (0..1).

    ``overrides`` gives other targets for some layers, keyed by layer name, by an alias in
    ``aliases`` (ONNX node name or weight initialiser name -> layer name) or by an LSTM / GRU
    layer's ONNX node name. :meth:`stats` lists what each layer lost (FC layers first).
    """

    sparsity: float = 0.9
    overrides: Mapping[str, float] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: Load-balance-aware pruning over ``pes`` PEs (ESE); ``pes`` also sets the statistics'.
    balance: bool = False
    pes: int = 64
    #: ``"magnitude"``, ``"wanda"``, ``"N:M"`` or ``"wanda,N:M"`` (module doc).
    criterion: str = "magnitude"
    #: Samples of ``main``'s input (Wanda's activations); not compared.
    calibration: np.ndarray | None = field(default=None, compare=False, repr=False)
    #: The original model's values of those samples (``,refit``'s target; default: the same).
    reference: np.ndarray | None = field(default=None, compare=False, repr=False)
    #: With ``,refit``: the bits of the weight sharing that follows (None: none), so that the
    #: refit quantises to its codebook (:func:`quantize_refit`).
    bits: int | None = None

    def targets(self, mod: tvm.IRModule) -> dict[str, float]:
        """The sparsity target of each layer of ``mod`` (CompileError for unknown names or
        targets outside [0, 1])."""
        fc_layers, lstm_layers = find_fc_layers(mod["main"]), find_recurrent_layers(mod)
        names = [layer.name for layer in fc_layers] + [layer.name for layer in lstm_layers]
        aliases = {**self.aliases, **recurrent_aliases(lstm_layers)}
        overrides = resolve_layer_options(self.overrides, names, aliases, "--sparsity")
        targets = {name: overrides.get(name, self.sparsity) for name in names}
        for name, target in targets.items():
            if not 0.0 <= target <= 1.0:
                raise CompileError(
                    f"sparsity {target} of layer {name} is outside [0, 1]",
                    fix="give the fraction of weights to remove, e.g. --sparsity 0.9",
                )
        return targets

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        targets = self.targets(mod)
        fc_constants = {}
        main = mod["main"]
        for layer in find_fc_layers(main):
            # Relax holds W as (K, M); prune in EIE's (M, K) row-major order.
            if self.criterion != "magnitude":
                pruned, bias = self.prune_fc(layer, main, targets[layer.name])
                fc_constants[layer.name] = (np.ascontiguousarray(pruned.T), bias)
                continue
            pruned = self.prune(layer.weight.T, targets[layer.name]).T  # (K, M) as stored
            fc_constants[layer.name] = (np.ascontiguousarray(pruned), layer.bias)
        lstm_constants = {}
        for layer in find_recurrent_layers(mod):
            pruned = self.prune(layer.weights(), targets[layer.name], layer.hidden_size)
            lstm_constants[layer.name] = split_weights(layer, pruned, layer.bias())
        mod = rewrite_layers(mod, fc_constants, _PruneRewriter)
        return rewrite_recurrent_layers(mod, lstm_constants)

    def prune(self, weights: np.ndarray, sparsity: float, hidden: int | None = None) -> np.ndarray:
        """One layer's weights pruned: by magnitude, per PE with ``balance`` (``hidden``: a
        recurrent layer's H, see :func:`row_owners`)."""
        if self.balance:
            return prune_balanced(weights, sparsity, row_owners(weights, self.pes, hidden))
        return prune_magnitude(weights, sparsity)

    def prune_fc(
        self, layer: FcLayer, main: relax.Function, sparsity: float
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """An FC layer's (M, K) weights pruned by ``criterion`` and its bias (refitted with
        ``,refit``; module doc)."""
        score, pattern = parse_criterion(self.criterion)
        weight = np.asarray(layer.weight.T, dtype=np.float64)
        scores = np.abs(weight)
        if score == "wanda":
            scores = scores * self.wanda_norms(layer, main)[None, :]
        if score == "magnitude" and pattern is None:
            pruned = self.prune(weight, sparsity)
        elif pattern is None:
            pruned = prune_scored_rows(weight, scores, sparsity)
        else:
            pruned = prune_n_of_m(weight, scores, *pattern)
        bias = layer.bias
        if refits(self.criterion):
            # A bias broadcast from fewer values than rows is kept as it is.
            vector = layer.bias_vector() if bias is not None and bias.size == layer.rows else None
            inputs = self.layer_inputs(layer, main)
            reference = None if self.reference is None else np.asarray(self.reference)
            if reference is not None and reference.size != inputs.size:
                raise CompileError(
                    f"the reference activations of layer {layer.name} ({reference.size} values) "
                    f"do not match its calibration activations ({inputs.size})",
                    fix="give the original model's activations at the calibration rows",
                )
            pruned, refitted = refit_rows(
                weight,
                pruned,
                inputs,
                bias=vector,
                reference=reference,
                clusters=None if self.bits is None else (1 << self.bits) - 1,
            )
            bias = bias if refitted is None else refitted
        return pruned.astype(layer.weight.dtype), bias

    def wanda_norms(self, layer: FcLayer, main: relax.Function) -> np.ndarray:
        """The layer's input column norms over the calibration samples."""
        return column_norms(self.layer_inputs(layer, main), layer.cols)

    def layer_inputs(self, layer: FcLayer, main: relax.Function) -> np.ndarray:
        """The layer's calibration activations: the layer must take ``main``'s input
        (CompileError otherwise, or without calibration)."""
        source = layer_input(main, layer)
        if self.calibration is None or source is None or not source.same_as(main.params[0]):
            raise CompileError(
                f"--prune {self.criterion} of layer {layer.name} needs calibration activations "
                "of its input: give calibration samples, and a model whose every layer reads the "
                "input of the program it is in (BYOC offloads each Linear alone)",
                fix="pass --calibration X.npy (or run on inputs), or use --prune magnitude",
            )
        return np.asarray(self.calibration).reshape(-1, layer.cols)

    def stats(self, before: tvm.IRModule, after: tvm.IRModule) -> list[PruneStats]:
        """What the pass did to each layer, from the module ``before`` it and ``after`` it."""
        targets = self.targets(before)
        pruned = layer_weights(after)
        hidden = {layer.name: layer.hidden_size for layer in find_recurrent_layers(before)}
        stats = []
        for name, weights in layer_weights(before).items():
            owners = row_owners(weights, self.pes, hidden.get(name))
            first = per_pe_counts(weights, owners, self.pes)
            last = per_pe_counts(pruned[name], owners, self.pes)
            had, kept = int(first.sum()), int(last.sum())  # the non-zeros, counted once
            stats.append(
                PruneStats(
                    name,
                    targets[name],
                    float(had) / weights.size,
                    kept / weights.size,
                    had - kept,
                    int(first.max()),
                    float(first.mean()),
                    int(last.max()),
                    float(last.mean()),
                )
            )
        return stats


def layer_input(main: relax.Function, layer: FcLayer) -> relax.Expr | None:
    """The activation operand of the matmul binding ``layer``, or None."""
    for binding in bindings(main):
        if binding.var.same_as(layer.var):
            return binding.value.args[0]
    return None
