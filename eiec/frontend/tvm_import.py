"""TVM's ONNX import as eiec uses it everywhere: with eiec's LSTM/GRU converters and safe takes.

:func:`relax_from_onnx` is ``from_onnx`` itself (the compiler's, the LSTM importer's and the
CPU reference's import); :func:`import_onnx` prepares any ONNX model for it first (BYOC).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import onnx
import tvm
from tvm.relax.frontend.onnx import from_onnx

from eiec.errors import EiecError, UnsupportedModelError
from eiec.frontend.fold import fold_constants
from eiec.frontend.lstm_checks import RECURRENT_ONNX_OPS, check_recurrent_nodes
from eiec.frontend.lstm_converter import recurrent_converters
from eiec.frontend.takes import SafeTakes


def relax_from_onnx(model: onnx.ModelProto, **kwargs: Any) -> tvm.IRModule:
    """``tvm.relax.frontend.onnx.from_onnx(model, **kwargs)`` with ONNX LSTM and GRU supported
    (:func:`eiec.frontend.lstm_converter.recurrent_converters`) and Gather as a bounds-safe ``take``
    (:class:`eiec.frontend.takes.SafeTakes`)."""
    with recurrent_converters(), _not_checked_again(model):
        try:
            mod = from_onnx(model, **kwargs)
        except EiecError:
            raise
        except Exception as error:  # TVM's converter checks shapes and types as it builds
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise UnsupportedModelError(
                f"TVM's ONNX import rejected the model: {type(error).__name__}: {text}",
                where=f"graph '{model.graph.name}'",
                fix="check that every node's inputs have the shapes and types it needs "
                "(onnx.shape_inference.infer_shapes(model, strict_mode=True))",
            ) from error
    return SafeTakes()(mod)


@contextmanager
def _not_checked_again(model: onnx.ModelProto) -> Iterator[None]:
    """Inside the block, ``onnx.checker.check_model`` passes ``model`` without checking it.

    TVM's ``from_onnx`` checks the model only to warn, serialising it first (about 0.7 s for
    AlexNet's classifier); eiec's models were checked when loaded (``eiec.frontend.load``) and
    then only rewritten by eiec. Other models, in any thread, are still checked.
    """
    check = onnx.checker.check_model

    def check_others(proto: Any, *args: Any, **kwargs: Any) -> None:
        if proto is not model:
            check(proto, *args, **kwargs)

    onnx.checker.check_model = check_others
    try:
        yield
    finally:
        onnx.checker.check_model = check


def import_onnx(
    model: onnx.ModelProto, shape_dict: Mapping[str, Sequence[int]] | None = None
) -> tvm.IRModule:
    """Relax module of an ONNX model that may contain LSTM or GRU nodes.

    ``shape_dict`` (input name -> static shape) overrides the graph inputs' shapes. Folds
    constant subgraphs (zero initial states an exporter builds from
    ``Shape``/``Gather``/``Concat``/``Expand``) with ``eiec.frontend.fold.fold_constants``, names
    unnamed LSTM / GRU nodes ``LSTM_<index>`` / ``GRU_<index>``, checks them, then runs TVM's
    ``from_onnx`` with the converters registered.
    """
    folded = fold_constants(_with_input_shapes(model, shape_dict or {}))
    for index, node in enumerate(folded.graph.node):
        if node.op_type in RECURRENT_ONNX_OPS and not node.name:
            node.name = f"{node.op_type}_{index}"
    check_recurrent_nodes(folded)
    return relax_from_onnx(folded)


def _with_input_shapes(
    model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]
) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs named in ``shapes`` have those static shapes."""
    if not shapes:
        return model
    result = onnx.ModelProto()
    result.CopyFrom(model)
    for info in result.graph.input:
        if info.name in shapes:
            dims = info.type.tensor_type.shape.dim
            del dims[:]
            for size in shapes[info.name]:
                dims.add().dim_value = int(size)
    return result
