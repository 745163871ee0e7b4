"""The CPU reference: an ONNX model built by TVM for the host CPU and run on numpy inputs.

``tvm.relax.frontend.onnx.from_onnx`` -> ``tvm.compile(mod, target="llvm")`` (its matmuls
scheduled, the same bits: ``eiec.byoc.cpu``) -> ``relax.VirtualMachine``. Builds are cached
per process, keyed by the SHA-256 of the model's serialised bytes (and the extra outputs asked
for), so the original and the compressed model of one run are built once each.

TVM's ONNX front end lacks some ops that exporters write; the model is first rewritten by
:func:`eiec.frontend.compat.tvm_compatible`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from eiec.errors import InputError, RuntimeCheckError, UnsupportedModelError
from eiec.frontend.canonicalize import batch_of_one, port_batch_axes, static_batch
from eiec.frontend.compat import tvm_compatible
from eiec.frontend.feeds import elem_dtype, model_inputs, order_feeds
from eiec.frontend.fingerprint import ORIGIN_KEY, model_fingerprint, weights_fingerprint
from eiec.frontend.load import load_model
from eiec.isa.program import Program

#: Builds kept per process (each holds a compiled VM executable).
CACHE_SIZE = 16

ModelLike = str | Path | onnx.ModelProto

__all__ = ["Reference", "build", "load_model", "run_intermediates", "run_reference", "run_rows"]


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph also outputs the intermediate tensors ``names``."""
    present = {o.name for o in model.graph.output}
    produced = {out for node in model.graph.node for out in node.output}
    produced |= {vi.name for vi in model_inputs(model)}
    missing = [name for name in names if name not in produced]
    if missing:
        raise RuntimeCheckError(
            f"no tensor named {', '.join(repr(m) for m in missing)} in the model",
            fix="name tensors that a node of the graph produces",
        )
    extra = [name for name in names if name not in present]
    if not extra:
        return model
    result = onnx.ModelProto()
    result.CopyFrom(model)
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {vi.name: vi for vi in inferred.graph.value_info}
    for name in extra:
        info = infos.get(name)
        result.graph.output.append(info if info is not None else helper.ValueInfoProto(name=name))
    return result


@dataclass
class Reference:
    """A TVM CPU build of an ONNX model; :meth:`run` executes it on numpy inputs."""

    model: onnx.ModelProto
    input_names: tuple[str, ...]
    input_dtypes: tuple[np.dtype, ...]
    output_names: tuple[str, ...]
    _vm: Any = field(repr=False)
    _device: Any = field(repr=False)
    _axes: tuple[dict[str, int | None], dict[str, int | None]] | None = field(
        default=None, repr=False
    )

    def feeds(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """``inputs`` in the model's input order, cast to the declared element types."""
        return order_feeds(self.input_names, self.input_dtypes, inputs)

    def batch_axes(self) -> tuple[dict[str, int | None], dict[str, int | None]]:
        """(input name -> batch axis, output name -> batch axis), as ``eiec compile`` gives
        the ports (``eiec.frontend.canonicalize.port_batch_axes``); axis 0 for every input and
        output when the model's shapes do not say (found once per build)."""
        if self._axes is None:
            try:
                self._axes = port_batch_axes(self.model, f"graph '{self.model.graph.name}'")
            except UnsupportedModelError:  # a dynamic feature dimension: no axis to derive
                self._axes = ({name: 0 for name in self.input_names}, {})
        return self._axes

    def run(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Execute the build; returns every graph output by name (batch as given)."""
        import tvm  # lazy: TVM, only to build a reference

        args = [tvm.runtime.tensor(a, self._device) for a in self.feeds(inputs)]
        try:
            result = self._vm["main"](*args)
        except Exception as error:  # TVM raises its own error types for shape mismatches
            raise InputError(
                f"the TVM CPU build rejected the inputs: {str(error).splitlines()[-1]}",
                where="CPU reference",
                fix="check the input shapes against the model's inputs",
            ) from None
        values = [result] if len(self.output_names) == 1 else list(result)
        return {name: value.numpy() for name, value in zip(self.output_names, values, strict=True)}


_CACHE: OrderedDict[tuple[str, tuple[str, ...]], Reference] = OrderedDict()


def model_key(model: onnx.ModelProto) -> str:
    """The SHA-256 of the model's serialised bytes."""
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()


def build(model: ModelLike, extra_outputs: Sequence[str] = ()) -> Reference:
    """The (cached) TVM CPU build of ``model``, optionally exposing intermediate tensors."""
    proto = load_model(model)
    key = (model_key(proto), tuple(extra_outputs))
    cached = _CACHE.get(key)
    if cached is not None:
        _CACHE.move_to_end(key)
        return cached
    reference = _compile(with_outputs(proto, extra_outputs) if extra_outputs else proto)
    _CACHE[key] = reference
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return reference


def _compile(model: onnx.ModelProto) -> Reference:
    import tvm  # lazy: TVM, only to build a reference
    from tvm import relax  # lazy: TVM

    from eiec.byoc.cpu import cpu_executable  # lazy: TVM
    from eiec.frontend.fold import fold_constants  # lazy: onnx.reference, only to build
    from eiec.frontend.tvm_import import relax_from_onnx  # lazy: TVM

    # Folded first, as the BYOC import is: TVM's converters reject some run-time constants
    # exporters write (ConstantOfShape of an empty shape in transformers' causal mask).
    runnable = fold_constants(tvm_compatible(model))
    inputs = model_inputs(runnable)
    try:
        mod = relax_from_onnx(runnable, keep_params_in_input=False)
        executable = cpu_executable(mod)
    except Exception as error:
        raise RuntimeCheckError(
            f"TVM could not build the model for the CPU: {str(error).strip().splitlines()[-1]}",
            where=f"graph '{model.graph.name}'",
            fix="check that TVM's ONNX front end supports every op of the model",
        ) from None
    device = tvm.cpu()
    return Reference(
        model=model,
        input_names=tuple(vi.name for vi in inputs),
        input_dtypes=tuple(elem_dtype(vi) for vi in inputs),
        output_names=tuple(o.name for o in runnable.graph.output),
        _vm=relax.VirtualMachine(executable, device),
        _device=device,
    )


def run_reference(
    model: ModelLike, inputs: Mapping[str, np.ndarray] | np.ndarray
) -> dict[str, np.ndarray]:
    """Run ``model`` on the CPU with TVM; every graph output by name."""
    return build(model).run(inputs)


def run_rows(
    model: ModelLike, inputs: Mapping[str, np.ndarray], extra_outputs: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """Run a batch of ``inputs``, each stacked along its batch axis (the axis ``eiec compile``
    fixes to 1: axis 0, axis 1 of an LSTM's sequence-first X...). A model whose inputs have a
    fixed batch of 1 there (or, at axis 0, of another size than the batch's:
    :func:`eiec.frontend.canonicalize.batch_of_one`) runs sample by sample, the outputs
    concatenated along their batch axes (axis 0 where none is known)."""
    proto = load_model(model)
    batch = static_batch(proto)  # at axis 0
    if batch is not None and batch not in {
        int(np.asarray(v).shape[0]) for v in inputs.values() if np.ndim(v) >= 1
    }:
        model = batch_of_one(proto, model_where(model))
    ref = build(model, extra_outputs=tuple(extra_outputs))
    in_axes, out_axes = ref.batch_axes()
    declared = {vi.name: vi for vi in model_inputs(ref.model)}
    sizes = {
        int(np.asarray(value).shape[axis])
        for name, value in inputs.items()
        if (axis := in_axes.get(name, 0)) is not None and np.ndim(value) > axis
    }
    fixed_one = all(
        _dim(vi, axis) == 1
        for name, vi in declared.items()
        if (axis := in_axes.get(name, 0)) is not None
    )
    if not fixed_one or sizes <= {1}:
        return ref.run(inputs)
    if len(sizes) > 1:
        raise InputError(
            f"the inputs disagree on the batch size ({sorted(sizes)})",
            where="CPU reference",
            fix="give every batched input the same number of samples",
        )
    (count,) = sizes
    parts = [
        ref.run({k: _row(np.asarray(v), in_axes.get(k, 0), i) for k, v in inputs.items()})
        for i in range(count)
    ]
    return {
        name: np.concatenate([p[name] for p in parts], axis=out_axes.get(name) or 0)
        for name in ref.output_names
    }


def _dim(info: onnx.ValueInfoProto, axis: int | None) -> int | None:
    """The static size of ``info``'s dimension ``axis`` (None: unknown, or no such axis)."""
    dims = info.type.tensor_type.shape.dim
    if axis is None or axis >= len(dims) or not dims[axis].HasField("dim_value"):
        return None
    return int(dims[axis].dim_value)


def _row(array: np.ndarray, axis: int | None, index: int) -> np.ndarray:
    """Sample ``index`` of ``array`` along ``axis`` (kept as an axis of size 1)."""
    if axis is None or array.ndim <= axis:
        return array
    return np.take(array, [index], axis=axis)


def model_where(model: ModelLike) -> str:
    """How messages name a model: its path, or its graph's name."""
    if isinstance(model, onnx.ModelProto):
        return f"graph '{model.graph.name}'"
    return str(model)


def run_intermediates(
    model: ModelLike, inputs: Mapping[str, np.ndarray] | np.ndarray, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """The tensors ``names`` (any tensors of the graph) computed by the TVM CPU build."""
    outputs = build(model, extra_outputs=tuple(names)).run(inputs)
    return {name: outputs[name] for name in names}


def program_reference(
    model: onnx.ModelProto, program: Program, where: str = "the given model"
) -> tuple[onnx.ModelProto, bool]:
    """(the model to check ``program`` against, whether ``model`` is the program's source).

    With the source model (its fingerprint is the program's ``.origin``): that model's graph
    with the weights decoded from the program (``eiec.codegen.decode``), so the reference computes
    what the program stores, after pruning, sharing and retraining alike. A compressed model
    exported for this source (``--export-onnx``), and any model for a program without an
    ``.origin``, is the reference itself. Any other model is a RuntimeCheckError.
    """
    origin = program.origin
    exported = {p.key: p.value for p in model.metadata_props}.get(ORIGIN_KEY)
    if origin is None:
        return model, False
    if exported == origin.model:
        _check_weights(model, origin.compressed, program, where, "the compressed model")
        return model, False
    if model_fingerprint(model) != origin.model:
        raise RuntimeCheckError(
            f"{where} is not the model {_name(program)} was compiled from: its graph, shapes, "
            "layer names or weights outside the EIE layers differ (fingerprint "
            f"{model_fingerprint(model)[:12]}, the program's .origin {origin.model[:12]})",
            fix="pass the ONNX model given to eiec compile, or the file its --export-onnx wrote",
        )
    from eiec.codegen.decode import decoded_module  # lazy: the compiler (front end, TVM)
    from eiec.compiler import export_model  # lazy: the compiler
    from eiec.frontend.read import read_onnx  # lazy: the front end

    _check_weights(model, origin.weights, program, where, "the source model")
    imported = read_onnx(model)
    return export_model(imported, decoded_module(program, imported.module)), True


def _check_weights(
    model: onnx.ModelProto, recorded: str | None, program: Program, where: str, role: str
) -> None:
    """RuntimeCheckError unless ``model``'s layer weights are those ``program`` recorded for
    ``role`` (no record: a program written before weights were fingerprinted)."""
    if recorded is None:
        return
    found = weights_fingerprint(model)
    if found != recorded:
        raise RuntimeCheckError(
            f"{where} has the graph of the model {_name(program)} was compiled from, but other "
            f"weights than {role} it was compiled with (weights fingerprint {found[:12]}, the "
            f"program's .origin {recorded[:12]})",
            fix="pass the ONNX model given to eiec compile, or the file its --export-onnx wrote; "
            "after retraining or editing the weights, compile again",
        )


def _name(program: Program) -> str:
    return "the program" if program.source == "<program>" else program.source
