"""Per-token accounting and language-model quality of a BYOC run of a transformer.

Every offloaded Linear of a sequence model runs once per token (a row of its [..., T, H]
activations); EIE's figures are per run. For each EIE layer the profile gives cycles, time and
energy over all samples; the layers are named and classified (QKV, attention output, MLP up,
MLP down, head: :func:`eiec.frontend.linear_kinds.linear_kinds`) by matching them, in call
order, to the model's Linears in graph order. What is counted is EIE's work only: attention's
activation-activation products, softmax, LayerNorm and GELU run on the CPU and are not.

- **prefill**: one sample, its T tokens through every Linear (the run's mean per sample);
- **decode**: one new token with the earlier ones cached: one run of each offloaded function
  (each function's cycles per run); tokens/s and uJ/token are the decode figures;
- **per token by kind**: each kind's share of prefill, divided by T.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from eiec.byoc.profile import Profiler
from eiec.frontend.fold import fold_constants
from eiec.frontend.linear_kinds import KINDS, linear_kinds

_FIGURES = ("cycles", "time_us", "energy_pj")


@dataclass(frozen=True)
class TokenReport:
    """Per-token figures of the offloaded Linears (module doc)."""

    tokens: int
    prefill: dict[str, float]
    decode: dict[str, float]
    kinds: dict[str, dict[str, float]]
    layers: list[dict[str, Any]]

    @property
    def tokens_per_s(self) -> float:
        """Decode throughput of the EIE part alone."""
        return 1e6 / self.decode["time_us"] if self.decode["time_us"] else float("inf")

    @property
    def uj_per_token(self) -> float:
        """Decode energy per token of the EIE part, in microjoules."""
        return self.decode["energy_pj"] / 1e6

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "tokens": self.tokens,
            "prefill": self.prefill,
            "decode": self.decode,
            "tokens_per_s": self.tokens_per_s,
            "uj_per_token": self.uj_per_token,
            "kinds": self.kinds,
            "layers": self.layers,
        }

    def summary(self) -> str:
        """The figures as text: one line per kind, then prefill and decode."""
        total = sum(row["cycles"] for row in self.kinds.values()) or 1.0
        lines = [f"per token (EIE's Linears only; T = {self.tokens} tokens per sample):"]
        lines.append(
            f"  {'kind':<9} {'layers':>6} {'cycles':>10} {'share':>7} {'time us':>9} "
            f"{'energy nJ':>10}"
        )
        for kind, row in self.kinds.items():
            lines.append(
                f"  {kind:<9} {int(row['layers']):>6} {row['cycles']:>10.0f} "
                f"{row['cycles'] / total:>7.1%} {row['time_us']:>9.3f} "
                f"{row['energy_pj'] / 1e3:>10.3f}"
            )
        p, d = self.prefill, self.decode
        lines.append(
            f"prefill ({self.tokens} tokens): {p['cycles']:.0f} cycles, {p['time_us']:.2f} us, "
            f"{p['energy_pj'] / 1e6:.3f} uJ; decode (1 token): {d['cycles']:.0f} cycles, "
            f"{d['time_us']:.3f} us, {d['energy_pj'] / 1e6:.4f} uJ = "
            f"{self.tokens_per_s:,.0f} tokens/s, {self.uj_per_token:.4f} uJ/token"
        )
        return "\n".join(lines)


def token_report(model: onnx.ModelProto, profile: Profiler, samples: int) -> TokenReport | None:
    """The per-token figures of a run of ``samples`` samples, or None when no offloaded
    function runs more than once per call (not a sequence model)."""
    functions = profile.per_function()
    per_call = {symbol: row["runs"] / row["calls"] for symbol, row in functions.items()}
    tokens = int(max(per_call.values(), default=0))
    if tokens <= 1:
        return None
    prefill = {key: sum(row[key] for row in functions.values()) / samples for key in _FIGURES}
    decode = {key: sum(row[key] / row["runs"] for row in functions.values()) for key in _FIGURES}
    rows = list(profile.per_layer().items())
    found = linear_kinds(fold_constants(model))
    named = len(found) == len(rows)
    layers, kinds = [], {}
    for index, ((symbol, local), row) in enumerate(rows):
        layer, kind = found[index] if named else (None, "linear")
        entry = {
            "symbol": symbol,
            "layer": local,
            "name": layer.name if layer is not None else local,
            "kind": kind,
            **{key: row[key] / samples / tokens for key in _FIGURES},
        }
        layers.append(entry)
        group = kinds.setdefault(kind, {"layers": 0, **dict.fromkeys(_FIGURES, 0.0)})
        group["layers"] += 1
        for key in _FIGURES:
            group[key] += entry[key]
    ordered = {kind: kinds[kind] for kind in KINDS if kind in kinds}
    return TokenReport(tokens, prefill, decode, ordered, layers)


@dataclass(frozen=True)
class SequenceQuality:
    """Perplexity and next-token accuracy against per-token targets (negative targets are
    ignored), of the original model (CPU) and of the run (EIE + CPU)."""

    tokens: int
    original_perplexity: float
    perplexity: float
    original_accuracy: float
    accuracy: float

    def to_json(self) -> dict[str, float]:
        """Plain data."""
        return dict(self.__dict__)

    def summary(self) -> str:
        """One line."""
        return (
            f"language model over {self.tokens} tokens: perplexity original (CPU) "
            f"{self.original_perplexity:.3f}, EIE + CPU {self.perplexity:.3f}; next-token "
            f"accuracy original {self.original_accuracy:.2%}, EIE + CPU {self.accuracy:.2%}"
        )


def perplexity_and_accuracy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """exp(mean negative log-likelihood) and top-1 accuracy of ``logits`` [..., V] against
    integer ``targets`` [...] (negative targets ignored)."""
    flat = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    wanted = targets.reshape(-1)
    keep = wanted >= 0
    flat, wanted = flat[keep], wanted[keep]
    shifted = flat - flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    nll = -log_probs[np.arange(len(wanted)), wanted]
    return float(np.exp(nll.mean())), float(np.mean(flat.argmax(axis=1) == wanted))


def sequence_quality(got: np.ndarray, original: np.ndarray, targets: np.ndarray) -> SequenceQuality:
    """:class:`SequenceQuality` of logits ``got`` and ``original`` against ``targets``."""
    ppl, acc = perplexity_and_accuracy(got, targets)
    original_ppl, original_acc = perplexity_and_accuracy(original, targets)
    return SequenceQuality(int((targets >= 0).sum()), original_ppl, ppl, original_acc, acc)


def sequence_output(outputs: dict[str, np.ndarray], targets: np.ndarray) -> str | None:
    """The name of the first float output of shape [*targets.shape, V], or None."""
    for name, value in outputs.items():
        if value.dtype.kind == "f" and value.shape[:-1] == targets.shape:
            return name
    return None


def collapse_warning(
    quality: SequenceQuality | None,
    accuracy: tuple[float, float] | None,
    agreement: float | None,
) -> str | None:
    """A warning when the run's quality collapses against the original model's: perplexity
    up by more than 10%, accuracy down by more than 5 points, or (without labels) under 90% of
    the predictions agreeing with the original's; None otherwise."""
    if quality is not None:
        if quality.perplexity > 1.1 * quality.original_perplexity:
            return (
                f"the model's quality collapsed: perplexity {quality.perplexity:.3f} vs "
                f"{quality.original_perplexity:.3f} for the original model (+"
                f"{quality.perplexity / quality.original_perplexity - 1:.0%}); the PASS is about "
                "the emulation, not the compressed model (lower --sparsity, or retrain)"
            )
        return None
    if accuracy is not None:
        original, emulated = accuracy
        if emulated < original - 0.05:
            return (
                f"the model's quality collapsed: accuracy {emulated:.2%} vs {original:.2%} for "
                "the original model; the PASS is about the emulation, not the compressed model "
                "(lower --sparsity, or retrain)"
            )
        return None
    if agreement is not None and agreement < 0.9:
        return (
            f"only {agreement:.1%} of the predictions agree with the original model's; the "
            "PASS is about the emulation, not the compressed model (lower --sparsity, or retrain)"
        )
    return None
