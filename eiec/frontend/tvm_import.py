"""TVM's ONNX import as eiec uses it everywhere: with eiec's LSTM converter and safe takes."""

from __future__ import annotations

from typing import Any

import onnx
import tvm

from eiec.frontend.lstm import lstm_converter
from eiec.frontend.takes import SafeTakes


def relax_from_onnx(model: onnx.ModelProto, **kwargs: Any) -> tvm.IRModule:
    """``tvm.relax.frontend.onnx.from_onnx(model, **kwargs)`` with ONNX LSTM supported
    (:func:`eiec.frontend.lstm.lstm_converter`) and Gather as a bounds-safe ``take``
    (:class:`eiec.frontend.takes.SafeTakes`)."""
    from tvm.relax.frontend.onnx import from_onnx

    with lstm_converter():
        mod = from_onnx(model, **kwargs)
    return SafeTakes()(mod)
