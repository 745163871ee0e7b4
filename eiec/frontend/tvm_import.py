"""TVM's ONNX import as eiec uses it everywhere: with eiec's LSTM converter and safe takes."""

from __future__ import annotations

from typing import Any

import onnx
import tvm

from eiec.errors import EiecError, UnsupportedModelError
from eiec.frontend.lstm import lstm_converter
from eiec.frontend.takes import SafeTakes


def relax_from_onnx(model: onnx.ModelProto, **kwargs: Any) -> tvm.IRModule:
    """``tvm.relax.frontend.onnx.from_onnx(model, **kwargs)`` with ONNX LSTM supported
    (:func:`eiec.frontend.lstm.lstm_converter`) and Gather as a bounds-safe ``take``
    (:class:`eiec.frontend.takes.SafeTakes`)."""
    from tvm.relax.frontend.onnx import from_onnx

    with lstm_converter():
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
