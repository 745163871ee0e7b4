"""``eiec.frontend.checks`` runs before TVM is imported, so it keeps its own list of the ops EIE
computes: it must be the op table's layers and activations."""

from __future__ import annotations

from eiec.frontend.checks import EIE_OPS
from eiec.frontend.ops import LAYER_OPS, OPS


def test_eie_ops_are_the_op_tables_layers_and_activations() -> None:
    activations = {op.name for op in OPS if op.name in ("Relu", "Sigmoid", "Tanh")}
    assert set(EIE_OPS) == set(LAYER_OPS) | activations
    assert activations == {"Relu", "Sigmoid", "Tanh"}
