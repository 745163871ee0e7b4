"""ShareLstmWeights: weight sharing of every LSTM layer with one k-means codebook per layer.

The LSTM counterpart of ``ShareWeights`` (same k-means, same ``ShareStats``). One codebook per
LSTM layer (ONNX node), shared by its four gates, W and R, both directions and the bias: EIE
runs a direction's gates as one matrix ``[W | R | bias]`` with one set of 16 codebook registers,
and one codebook per layer keeps the two directions' programs alike (the program stores it once
per direction, each direction being its own EIE layer). The bias is ``Wb + Rb`` (the ``#1``
column), written back as ``B = [shared(Wb + Rb); 0]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm

from eiec.passes.lstm_layers import (
    direction_suffixes,
    find_lstm_layers,
    rewrite_lstm_layers,
    split_weights,
)
from eiec.passes.pass_decorator import eiec_module_pass
from eiec.passes.share_weights import ShareStats, check_bits, share_values


@eiec_module_pass("ShareLstmWeights")
@dataclass
class ShareLstmWeights:
    """Quantise every LSTM layer of ``main`` to a ``2**bits``-entry codebook (entry 0 = 0).

    After the pass, ``stats`` holds each layer's centroids and quantisation error, once per
    program layer (``NAME``, or ``NAME.forward`` and ``NAME.backward``: the same figures).
    """

    bits: int = 4
    stats: list[ShareStats] = field(default_factory=list, init=False)

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        check_bits(self.bits)
        self.stats = []
        new = {}
        for layer in find_lstm_layers(mod):
            weights, bias = layer.weights(), layer.bias()
            w_mask, b_mask = weights != 0, bias != 0
            values = np.concatenate((weights[w_mask], bias[b_mask])).astype(np.float64)
            if values.size == 0:
                centroids, labels, exact = np.zeros(0), np.zeros(0, np.int64), True
            else:
                centroids, labels, exact = share_values(values, (1 << self.bits) - 1)
            shared = centroids[labels]
            error = shared - values
            rms = float(np.sqrt(np.mean(values**2))) if values.size else 0.0
            rmse = float(np.sqrt(np.mean(error**2))) if values.size else 0.0
            self.stats += [
                ShareStats(
                    layer.name + suffix,
                    self.bits,
                    centroids.astype(np.float32),
                    exact,
                    rmse,
                    float(np.abs(error).max()) if values.size else 0.0,
                    rmse / rms if rms else 0.0,
                )
                for suffix in direction_suffixes(layer.directions)
            ]
            count = int(w_mask.sum())
            new_weights = np.zeros_like(weights)
            new_weights[w_mask] = shared[:count]
            new_bias = np.zeros_like(bias)
            new_bias[b_mask] = shared[count:]
            new[layer.name] = split_weights(layer, new_weights, new_bias)
        return rewrite_lstm_layers(mod, new)
