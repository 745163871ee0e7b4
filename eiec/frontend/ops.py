"""The op table: every ONNX op ``eiec compile`` supports, declared once.

Each :class:`OnnxOp` says how the op is checked (``check``: the problems of one node on the
model at batch 1 with its constants folded), how the support list names it (``hint``), which
Relax ops its import produces (``relax_ops``: the keys of the code generator's lowerings,
``eiec.codegen.generate.LOWERINGS``) and which BYOC pattern offloads it (``byoc``: a pattern
name of ``eiec.byoc.patterns``, or ``OffloadRecurrent``) and whether it is a layer of weights
EIE stores (``layer``). ``tests/compiler/test_ops.py`` checks that
the table, the lowerings and the BYOC patterns name each other completely.

Adding an op: a check (``eiec.frontend.support``), an entry here, and a lowering for each new
Relax op it imports to (``eiec.codegen``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eiec.frontend import lstm_checks, support
from eiec.frontend.graph import OpCheck

#: The BYOC patterns of an FC layer (``eiec.byoc.patterns``), biggest first.
DENSE_PATTERNS = ("eie.dense_bias_relu", "eie.dense_bias", "eie.dense_relu", "eie.dense")
#: BYOC's pass that offloads imported LSTM / GRU calls (not a pattern: ``eiec.byoc.lstm``).
OFFLOAD_RECURRENT = "OffloadRecurrent"


@dataclass(frozen=True)
class OnnxOp:
    """One supported ONNX op (module docstring)."""

    name: str
    check: OpCheck
    hint: str | None
    relax_ops: tuple[str, ...]
    byoc: tuple[str, ...] = ()
    layer: bool = False


OPS: tuple[OnnxOp, ...] = (
    OnnxOp(
        "Gemm",
        support.gemm,
        "Gemm",
        ("relax.matmul", "relax.add", "relax.permute_dims"),
        DENSE_PATTERNS,
        layer=True,
    ),
    OnnxOp("MatMul", support.matmul, "MatMul+Add", ("relax.matmul",), DENSE_PATTERNS, layer=True),
    OnnxOp("Add", support.add, None, ("relax.add",), DENSE_PATTERNS[:2]),
    OnnxOp(
        "Relu",
        support.no_problems,
        "Relu",
        ("relax.nn.relu",),
        (DENSE_PATTERNS[0], DENSE_PATTERNS[2]),
    ),
    OnnxOp("Sigmoid", support.no_problems, None, ("relax.sigmoid",)),
    OnnxOp("Tanh", support.no_problems, None, ("relax.tanh",)),
    OnnxOp(
        "Flatten",
        lstm_checks.on_sequences(None, support.to_vector, "Flatten"),
        "Flatten/Reshape to a vector",
        ("relax.flatten", "relax.reshape"),
    ),
    OnnxOp(
        "Reshape",
        lstm_checks.on_sequences(None, support.to_vector, "Reshape"),
        None,
        ("relax.reshape",),
    ),
    OnnxOp("Identity", support.no_problems, "Identity", ()),
    OnnxOp("Dropout", support.dropout, "Dropout", ()),
    OnnxOp("Cast", support.cast, "Cast to float", ("relax.astype",)),
    OnnxOp(
        "LSTM", lstm_checks.recurrent_problems, None, ("lstm",), (OFFLOAD_RECURRENT,), layer=True
    ),
    OnnxOp("GRU", lstm_checks.recurrent_problems, None, ("gru",), (OFFLOAD_RECURRENT,), layer=True),
    OnnxOp(
        "Transpose",
        lstm_checks.on_sequences(lstm_checks.transpose_problems, None, "Transpose"),
        None,
        ("relax.permute_dims",),
    ),
    OnnxOp("Squeeze", lstm_checks.on_sequences(None, None, "Squeeze"), None, ("relax.squeeze",)),
    OnnxOp(
        "Unsqueeze",
        lstm_checks.on_sequences(None, None, "Unsqueeze"),
        None,
        ("relax.expand_dims", "relax.reshape"),
    ),
    OnnxOp(
        "Gather",
        lstm_checks.on_sequences(lstm_checks.gather_problems, None, "Gather"),
        None,
        ("relax.take",),
    ),
)

#: ONNX op type -> its check (what ``eiec.frontend.support.node_problems`` takes).
CHECKS: Mapping[str, OpCheck] = {op.name: op.check for op in OPS}

#: The ONNX ops that are layers of weights (the program's layers).
LAYER_OPS: tuple[str, ...] = tuple(op.name for op in OPS if op.layer)

#: The fix of an unsupported model: what EIE runs, and the BYOC path for the rest.
BYOC_HINT = (
    "EIE runs chains of fully-connected layers ("
    + ", ".join(op.hint for op in OPS if op.hint)
    + "); for a model that mixes them with other operators, offload the FC layers with "
    "eiec.byoc.partition_for_eie(mod) and let TVM run the rest (eiec run does this)"
)
