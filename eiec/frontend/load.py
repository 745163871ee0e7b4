"""Load and check an ONNX model: the one entry point that turns a path into a checked ModelProto."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import onnx

from eiec.errors import ModelLoadError
from eiec.frontend.checks import check_model


@dataclass(frozen=True)
class LoadedModel:
    """A model :func:`load_model` has read and checked (``proto``), with the path it was read
    from (``source``, which messages name): given to :func:`load_model` or to the compiler,
    it is neither read nor checked again."""

    proto: onnx.ModelProto
    source: str


def load_checked(model: str | Path) -> LoadedModel:
    """:func:`load_model` of the file ``model``, kept with its path."""
    return LoadedModel(load_model(model), str(model))


def load_model(model: str | Path | onnx.ModelProto | LoadedModel) -> onnx.ModelProto:
    """The model at ``model`` (or the given proto), checked by ``onnx.checker``, its weights
    listed as graph inputs made constants (:func:`without_weight_inputs`).

    Raises ModelLoadError naming the file and the reason (missing, not ONNX, invalid, or a
    tensor eiec cannot compute with: ``eiec.frontend.checks.check_model``). A
    :class:`LoadedModel` was checked when it was loaded: its proto is returned as it is.
    """
    if isinstance(model, LoadedModel):
        return model.proto
    if isinstance(model, onnx.ModelProto):
        where = f"model {model.graph.name or '<in memory>'}"
        proto = model
    else:
        path = Path(model)
        where = str(path)
        if not path.is_file():
            raise ModelLoadError(
                "model file not found" if not path.exists() else "not a file",
                where=where,
                fix="give the path of an .onnx file",
            )
        if path.stat().st_size == 0:
            raise ModelLoadError(
                "the file is empty", where=where, fix="give the path of an .onnx file"
            )
        try:
            proto = onnx.load(str(path))
        except Exception as error:  # protobuf raises DecodeError and friends
            external = _EXTERNAL.search(str(error))
            if external:
                raise ModelLoadError(
                    f"the weights of '{external['tensor']}' are stored in {external['file']}, "
                    "which is missing",
                    where=where,
                    fix="keep the external-data files beside the model, as onnx.save wrote them",
                ) from None
            raise ModelLoadError(
                f"not an ONNX model: {_first_line(error)}",
                where=where,
                fix="export the model with torch.onnx.export, skl2onnx or onnx.save",
            ) from error
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as error:
        raise ModelLoadError(
            f"invalid ONNX model: {_first_line(error)}",
            where=where,
            fix="repair the model so that onnx.checker.check_model accepts it",
        ) from error
    if len(proto.graph.node) == 0:
        raise ModelLoadError("the model's graph has no nodes", where=where)
    proto = without_weight_inputs(proto)
    check_model(proto, where)
    return proto


def without_weight_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without the graph inputs that an initialiser of the same name gives a value
    (older exporters, opset <= 8 and ``keep_initializers_as_inputs=True``, list every weight
    as an input): eiec compiles those weights as the constants they hold. A copy when there are
    any (IR version at least 4, which lets initialisers stand alone); else ``model`` itself."""
    weights = {init.name for init in model.graph.initializer}
    if not any(info.name in weights for info in model.graph.input):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [info for info in copy.graph.input if info.name not in weights]
    del copy.graph.input[:]
    copy.graph.input.extend(kept)
    copy.ir_version = max(copy.ir_version, 4)
    return copy


#: onnx.load's message for a missing external-data file.
_EXTERNAL = re.compile(
    r"Data of TensorProto \( tensor name: (?P<tensor>.*?)\) should be stored in (?P<file>.*?), "
    r"but it is not regular file"
)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
