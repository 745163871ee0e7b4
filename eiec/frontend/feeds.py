"""A model's run-time inputs and the arrays fed to them, in order and dtype."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

from eiec.errors import InputError
from eiec.frontend.graph import GraphFacts


def model_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs that are fed at run time (initialisers excluded)."""
    return GraphFacts.of(model).graph_inputs


def order_feeds(
    names: Sequence[str],
    dtypes: Sequence[np.dtype],
    inputs: Mapping[str, np.ndarray] | np.ndarray,
) -> list[np.ndarray]:
    """``inputs`` (name -> array, or one array for a one-input model) in the order of the
    model's input ``names``, cast to their ``dtypes``.

    Only the width may change (float64 -> float32); a change of kind is an error.
    """
    if isinstance(inputs, np.ndarray):
        if len(names) != 1:
            raise InputError(
                f"the model has {len(names)} inputs ({', '.join(names)}); got one array",
                fix="pass a dict of input name -> array",
            )
        inputs = {names[0]: inputs}
    unknown = sorted(set(inputs) - set(names))
    missing = [name for name in names if name not in inputs]
    if unknown or missing:
        raise InputError(
            f"inputs do not match the model: missing {missing}, unknown {unknown}",
            fix=f"the model's inputs are {list(names)}",
        )
    result = []
    for name, dtype in zip(names, dtypes, strict=True):
        array = np.asarray(inputs[name])
        if array.dtype.kind != dtype.kind:
            raise InputError(
                f"input '{name}' has dtype {array.dtype}; the model takes {dtype}",
                fix=f"convert it with .astype(np.{dtype})",
            )
        result.append(np.ascontiguousarray(array, dtype=dtype))
    return result


def elem_dtype(info: onnx.ValueInfoProto) -> np.dtype:
    """The numpy element type of a tensor value info."""
    return np.dtype(helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type))


def model_feeds(
    model: onnx.ModelProto, inputs: Mapping[str, np.ndarray] | np.ndarray
) -> list[np.ndarray]:
    """``inputs`` in the order and dtypes of ``model``'s run-time inputs (:func:`order_feeds`)."""
    infos = model_inputs(model)
    return order_feeds([info.name for info in infos], [elem_dtype(info) for info in infos], inputs)
