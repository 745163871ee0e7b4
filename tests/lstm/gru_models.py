"""Small ONNX GRU models built with onnx.helper (lstm_models.lstm_model with ``op="GRU"``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import onnx
from lstm_models import LstmSpec, lstm_model


def gru_spec(
    hidden: int,
    direction: str = "forward",
    linear_before_reset: int = 0,
    *,
    bias: bool = True,
    initial_h: bool = False,
    **attrs: Any,
) -> LstmSpec:
    """One GRU layer of a test model (``attrs``: further ONNX attributes)."""
    return LstmSpec(
        hidden,
        direction,
        bias=bias,
        initial_h=initial_h,
        attrs={"linear_before_reset": linear_before_reset, **attrs},
        op="GRU",
    )


def gru_model(
    layers: Sequence[LstmSpec], *, outputs: Sequence[str] = ("Y", "Y_h"), **options: Any
) -> onnx.ModelProto:
    """A stack of GRU layers (``lstm_model``'s options; outputs Y and Y_h)."""
    return lstm_model(layers, outputs=outputs, **options)
