"""The op table (eiec.frontend.ops), the code generator's lowerings and BYOC's patterns name each
other completely: every Relax op an ONNX op imports to has a lowering, every lowering serves an
op, every BYOC name an op gives exists."""

from __future__ import annotations

from eiec.byoc.patterns import eie_patterns
from eiec.codegen.generate import LOWERINGS
from eiec.frontend.ops import BYOC_HINT, CHECKS, LAYER_OPS, OFFLOAD_RECURRENT, OPS


def test_each_op_is_declared_once() -> None:
    names = [op.name for op in OPS]
    assert len(names) == len(set(names)) == len(CHECKS)


def test_every_relax_op_of_the_table_has_a_lowering_and_back() -> None:
    declared = {relax_op for op in OPS for relax_op in op.relax_ops}
    assert sorted(declared - set(LOWERINGS)) == []
    assert sorted(set(LOWERINGS) - declared) == []


def test_byoc_names_exist() -> None:
    patterns = {pattern.name for pattern in eie_patterns()}
    named = {name for op in OPS for name in op.byoc}
    assert named - patterns == {OFFLOAD_RECURRENT}
    assert patterns <= named


def test_layers_and_hint_come_from_the_table() -> None:
    assert LAYER_OPS == ("Gemm", "MatMul", "LSTM", "GRU")
    assert BYOC_HINT.startswith(
        "EIE runs chains of fully-connected layers (Gemm, MatMul+Add, Relu, Flatten/Reshape to a "
        "vector, Identity, Dropout, Cast to float); "
    )
