"""PruneLstmWeights: magnitude pruning of every LSTM layer's W and R to a target sparsity.

The LSTM counterpart of ``PruneWeights`` (same rule, same ``PruneStats``): per layer, the
smallest-magnitude entries of W and R of all directions together (EIE's ``[W | R]`` matrices,
row-major [direction, gate row, column] order breaking ties) are set to zero until
``round(sparsity * D * 4H * (I + H))`` are zero. The bias is not pruned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import tvm

from eiec.errors import CompileError
from eiec.passes.lstm_layers import find_lstm_layers, rewrite_lstm_layers, split_weights
from eiec.passes.pass_decorator import eiec_module_pass
from eiec.passes.prune_weights import PruneStats, prune_magnitude, resolve_layer_options


@eiec_module_pass("PruneLstmWeights")
@dataclass
class PruneLstmWeights:
    """Magnitude-prune W and R of every LSTM layer of ``main`` to ``sparsity`` (0 <= s <= 1).

    ``overrides`` gives other targets for some layers, keyed by layer name or an alias in
    ``aliases`` (alias -> layer name); keys naming no LSTM layer are ignored (they may name FC
    layers). After the pass, ``stats`` lists what each layer lost.
    """

    sparsity: float = 0.9
    overrides: Mapping[str, float] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    stats: list[PruneStats] = field(default_factory=list, init=False)

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        layers = find_lstm_layers(mod)
        names = [layer.name for layer in layers]
        mine = {k: v for k, v in self.overrides.items() if self.aliases.get(k, k) in names}
        targets = resolve_layer_options(mine, names, self.aliases, "--sparsity")
        self.stats = []
        new = {}
        for layer in layers:
            target = targets.get(layer.name, self.sparsity)
            if not 0.0 <= target <= 1.0:
                raise CompileError(
                    f"sparsity {target} of layer {layer.name} is outside [0, 1]",
                    fix="give the fraction of weights to remove, e.g. --sparsity 0.9",
                )
            weights = layer.weights()
            pruned = prune_magnitude(weights, target)
            self.stats.append(
                PruneStats(
                    layer.name,
                    target,
                    float(np.count_nonzero(weights)) / weights.size,
                    float(np.count_nonzero(pruned)) / pruned.size,
                    int(np.count_nonzero(weights) - np.count_nonzero(pruned)),
                )
            )
            new[layer.name] = split_weights(layer, pruned, layer.bias())
        return rewrite_lstm_layers(mod, new)
