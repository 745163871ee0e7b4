"""Checks of an ONNX model that need neither TVM nor compilation: run first, fail fast.

``check_model`` (called by ``load_model`` on every model eiec reads) refuses tensor types eiec
does not compute in, NaN, and zero-size tensors; and, in the tensors EIE stores (layer weights
and biases), Inf and values too large for any 16-bit fixed-point format (named by initialiser and
index): constants of the CPU's ops may be anything finite or infinite. ``ShareWeights`` applies
the rest of the rule to the stored codebooks (``fit_word_format``). ``check_runs_on_eie``
refuses a model with no layer for EIE to run. ``check_capacity`` raises the per-PE memory
overflows that follow from the layers' shapes and the sparsity targets alone, before pruning
and k-means spend any time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from eiec.emulator.ports import check_finite
from eiec.errors import CapacityError, InputError, ModelLoadError, UnsupportedModelError
from eiec.frontend.canonicalize import static_batch
from eiec.frontend.graph import RECURRENT_ONNX_OPS, infer_shapes
from eiec.frontend.layers import check_unambiguous, find_onnx_layers, layer_aliases
from eiec.isa.fixed import MAX_MAGNITUDE
from eiec.isa.program import Machine, Program

#: Floating-point element types a model may have: eiec computes in 16-bit fixed point either
#: way and compares in the model's own dtype.
FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}
#: Non-float element types a model may use for shapes, indices and masks.
OTHER_TYPES = {
    TensorProto.INT64,
    TensorProto.INT32,
    TensorProto.INT16,
    TensorProto.INT8,
    TensorProto.UINT8,
    TensorProto.UINT16,
    TensorProto.UINT32,
    TensorProto.UINT64,
    TensorProto.BOOL,
}
#: Ops EIE computes: the layers and the element-wise activations of ``eiec.frontend.ops.OPS``
#: (which imports TVM; tests/reliability/test_checks.py keeps the two in step).
EIE_OPS = ("Gemm", "MatMul", "LSTM", "GRU", "Relu", "Sigmoid", "Tanh")

_DTYPE_FIX = "convert the model to float32, e.g. with onnxconverter-common"


def type_name(elem_type: int) -> str:
    """``TensorProto.FLOAT`` -> ``FLOAT``; an unknown number as ``type N``."""
    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"type {elem_type}"


def check_model(model: onnx.ModelProto, where: str) -> None:
    """Raise ModelLoadError for an element type, value or size eiec cannot compute with."""
    _check_value_types(model, where)
    stored = _stored_tensors(model)
    for name, init in _initializers(model):
        _check_initializer(init, where, name in stored)
    try:
        infer_shapes(model, weights=False, strict=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(
            f"shapes or types do not agree: {text}",
            where=where,
            fix="repair the model so that onnx.shape_inference.infer_shapes(model, "
            "strict_mode=True) accepts it",
        ) from None


def _initializers(model: onnx.ModelProto) -> Iterable[tuple[str, onnx.TensorProto]]:
    """(the name the graph uses, the tensor) of every initialiser and Constant node's value."""
    for init in model.graph.initializer:
        yield init.name, init
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    yield node.output[0], attribute.t


def _stored_tensors(model: onnx.ModelProto) -> set[str]:
    """The initialisers EIE may store: the weights and biases of FC layers, an LSTM's or GRU's
    W, R, B and initial states. Only these must fit 16-bit fixed point; a constant the CPU's
    ops use (a shape vector with no elements, an attention mask of -3.4e38 or -inf) need not."""
    names = {n for layer in find_onnx_layers(model) for n in (layer.weight, layer.bias) if n}
    for node in model.graph.node:
        if node.op_type in RECURRENT_ONNX_OPS:
            names.update(node.input[1:])
    return names


def _check_value_types(model: onnx.ModelProto, where: str) -> None:
    graph = model.graph
    for kind, infos in (("input", graph.input), ("output", graph.output)):
        for info in infos:
            if not info.type.HasField("tensor_type"):
                raise ModelLoadError(
                    f"graph {kind} '{info.name}' is not a tensor",
                    where=where,
                    fix="EIE takes and returns tensors (no sequences or maps)",
                )
            tensor = info.type.tensor_type
            elem = tensor.elem_type
            if elem not in FLOAT_TYPES | OTHER_TYPES:
                raise ModelLoadError(
                    f"graph {kind} '{info.name}' has element type {type_name(elem)}, which eiec "
                    "does not compute in (FLOAT, FLOAT16 or DOUBLE)",
                    where=where,
                    fix=_DTYPE_FIX,
                )
            dims = [d.dim_value for d in tensor.shape.dim if d.HasField("dim_value")]
            if 0 in dims:
                shape = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?"
                         for d in tensor.shape.dim]  # fmt: skip
                raise ModelLoadError(
                    f"graph {kind} '{info.name}' has shape {shape} with no elements",
                    where=where,
                    fix="give every dimension a size of at least 1",
                )


def _check_initializer(init: onnx.TensorProto, where: str, stored: bool) -> None:
    """ModelLoadError for a type eiec does not compute in, NaN, and (``stored``: a tensor EIE
    stores) no elements, Inf or a magnitude beyond 16-bit fixed point."""
    name = init.name or "<constant>"
    if init.data_type not in FLOAT_TYPES | OTHER_TYPES:
        raise ModelLoadError(
            f"initialiser '{name}' has element type {type_name(init.data_type)}, which eiec "
            "does not compute in (FLOAT, FLOAT16 or DOUBLE)",
            where=where,
            fix=_DTYPE_FIX,
        )
    if 0 in init.dims:
        if not stored:
            return
        raise ModelLoadError(
            f"initialiser '{name}' has shape {list(init.dims)} with no elements",
            where=where,
            fix="remove the empty layer, or give it at least one input and one output",
        )
    if init.data_type not in FLOAT_TYPES:
        return
    try:
        values = numpy_helper.to_array(init)
    except Exception as error:  # external data missing, wrong byte count, ...
        raise ModelLoadError(
            f"initialiser '{name}' cannot be read: {str(error).splitlines()[0]}",
            where=where,
            fix="keep any external-data files beside the model, as onnx.save wrote them",
        ) from None
    flat = values.reshape(-1)
    low, high = float(flat.min()), float(flat.max())  # NaN propagates; no copy of the weights
    if math.isfinite(low) and math.isfinite(high) and max(-low, high) <= MAX_MAGNITUDE:
        return
    if not stored and not (math.isnan(low) or math.isnan(high)):
        return
    bad = ~np.isfinite(flat) if stored else np.isnan(flat)
    if bad.any():
        what = "NaN or Inf" if stored else "NaN"
    else:
        bad = np.abs(flat) > MAX_MAGNITUDE  # exact in float32 (and beyond float16's range)
        what = f"a magnitude above {MAX_MAGNITUDE:.4g}, beyond 16-bit fixed point"
    first = int(np.argmax(bad))
    index = tuple(int(i) for i in np.unravel_index(first, values.shape))
    raise ModelLoadError(
        f"initialiser '{name}' has {flat[first]!s} at index {index} ({int(bad.sum())} value(s) "
        f"with {what})",
        where=where,
        fix="retrain or repair the weights; EIE computes in 16-bit fixed point",
    )


def check_runs_on_eie(model: onnx.ModelProto, where: str) -> None:
    """Raise UnsupportedModelError when no node is one EIE computes (``EIE_OPS``)."""
    if any(node.op_type in EIE_OPS for node in model.graph.node):
        return
    ops = sorted({node.op_type for node in model.graph.node})
    raise UnsupportedModelError(
        f"nothing for EIE to run: no {', '.join(EIE_OPS[:-1])} or {EIE_OPS[-1]} node (the model "
        f"has {', '.join(ops)})",
        where=where,
        fix="EIE runs fully-connected, LSTM and GRU layers; run this model on the CPU",
    )


def check_capacity(
    model: onnx.ModelProto,
    machine: Machine,
    sparsity: float | dict[str, float] | str,
    default_sparsity: float,
    where: str,
) -> None:
    """Raise :func:`capacity_error`'s CapacityError for the model's FC layers at their sparsity
    targets (``'auto'``: the pointer SRAM only). Only models whose layers are all FC
    (Gemm/MatMul) with constant 2-D weights are checked here (read as they are: nothing is
    folded or copied)."""

    layers = find_onnx_layers(model)
    if isinstance(sparsity, dict):
        check_unambiguous(sparsity, layers, "--sparsity")
    weights = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in RECURRENT_ONNX_OPS:
            return
        if node.op_type in ("Gemm", "MatMul") and (
            len(node.input) < 2 or len(weights.get(node.input[1], onnx.TensorProto()).dims) != 2
        ):
            return  # a weight computed in the graph: the compiler checks after folding
    shapes = []
    aliases = layer_aliases(layers)
    for layer in layers:
        weight = weights.get(layer.weight)
        if weight is None or len(weight.dims) != 2:
            return
        rows, inputs = weight.dims if layer.weight_layout == "out_in" else weight.dims[::-1]
        target = (
            None
            if isinstance(sparsity, str)
            else _target(
                [a for a in layer.aliases if aliases.get(a) == layer.name],
                sparsity,
                default_sparsity,
            )
        )
        shapes.append(
            FcShape(
                layer.name,
                rows,
                inputs,
                layer.bias is not None,
                target,
                lambda w=weight: int(np.count_nonzero(numpy_helper.to_array(w))),
            )
        )
    error = capacity_error(machine, shapes)
    if error is not None:
        raise error


@dataclass(frozen=True)
class FcShape:
    """An FC layer as the capacity rule sees it: ``rows`` x ``inputs`` weights (and a bias
    column), pruned to ``sparsity`` (None: not known yet), ``nonzero()`` of them non-zero."""

    name: str
    rows: int
    inputs: int
    bias: bool
    sparsity: float | None
    nonzero: Callable[[], int]


def capacity_error(machine: Machine, layers: Iterable[FcShape]) -> CapacityError | None:
    """The CapacityError of the first FC layer (in order) whose column pointers cannot fit the
    pointer SRAM, or whose kept weights cannot fit the sparse-matrix SRAM or be addressed by
    ``ptr_bits``-bit pointers on the busiest PE, whatever pruning and sharing do; else None."""
    pointer_bits = 0
    kept_total = 0
    max_pointer = (1 << machine.ptr_bits) - 1
    for layer in layers:
        cols = layer.inputs + layer.bias
        own_bits = (cols + 1) * machine.ptr_bits
        pointer_bits += own_bits
        if pointer_bits > 8 * machine.ptr_sram:
            need, own = math.ceil(pointer_bits / 8), math.ceil(own_bits / 8)
            return CapacityError(
                f"does not fit the pointer SRAM: every PE needs {need} bytes of column pointers "
                f"({own} for this layer's {cols + 1} pointers, {need - own} for the layers before "
                f"it), {machine.ptr_sram} bytes available per PE",
                where=f"layer {layer.name}",
                fix=f"raise --ptr-sram to {need} (more PEs do not help: each PE holds a pointer "
                "per column), or compile the layers as separate programs",
            )
        # PruneWeights keeps exactly this many weights (ties broken in row-major order); the
        # busiest PE stores at least the average, padding and bias entries aside.
        if layer.sparsity is None:  # 'auto': each layer's target is chosen by training
            continue
        size = layer.rows * layer.inputs
        kept = size - round(layer.sparsity * size)
        too_many = -(-kept // machine.pes) > max_pointer
        if too_many or -(-(kept_total + kept) // machine.pes) > machine.spmat_sram:
            kept = min(kept, layer.nonzero())  # zeros may keep fewer
        least_own = -(-kept // machine.pes)
        if least_own > max_pointer:
            return CapacityError(
                f"some PE stores at least {least_own} entries of this layer at sparsity "
                f"{layer.sparsity:g}, more than {machine.ptr_bits}-bit column pointers address "
                f"({max_pointer})",
                where=f"layer {layer.name}",
                fix="use more PEs, a higher --sparsity, or a larger --ptr-bits",
            )
        kept_total += kept
        least = -(-kept_total // machine.pes)
        if least > machine.spmat_sram:
            return CapacityError(
                f"does not fit the sparse-matrix SRAM: its weights and the layers' before it "
                f"need at least {least} entries on some PE at sparsity {layer.sparsity:g}, "
                f"{machine.spmat_sram} bytes available per PE",
                where=f"layer {layer.name}",
                fix="use more PEs, a higher --sparsity, or raise --spmat-sram",
            )
    return None


def _target(aliases: list[str], sparsity: float | dict[str, float], default: float) -> float:
    if not isinstance(sparsity, dict):
        return float(sparsity)
    return next((sparsity[a] for a in aliases if a in sparsity), default)


def _input_dims(info: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in info.type.tensor_type.shape.dim
    ]


def check_inputs(
    model: onnx.ModelProto,
    inputs: Mapping[str, np.ndarray] | np.ndarray,
    where: str,
    batch_axis: int | None = None,
) -> None:
    """Raise InputError for an input array that cannot be a batch of the model's input: not
    real numbers, another rank, no samples, a fixed dimension of another size, or NaN/Inf.

    With ``batch_axis`` (BYOC: 0) only that axis may differ from the model's fixed sizes;
    without it, axis 0 and axes of size 1 may (an LSTM's batch axis is 1)."""
    weights = {init.name for init in model.graph.initializer}
    infos = [info for info in model.graph.input if info.name not in weights]
    if isinstance(inputs, np.ndarray):
        if len(infos) != 1:
            return  # order_feeds names the inputs to give
        inputs = {infos[0].name: inputs}
    for info in infos:
        if info.name not in inputs:
            continue
        array = np.asarray(inputs[info.name])
        label = f"input '{info.name}'"
        dims = _input_dims(info)
        shape = tuple(array.shape)
        if array.dtype.kind not in "fiub":
            raise InputError(
                f"{label} has dtype {array.dtype}, not a real number type",
                where=where,
                fix="give a float32 (or other float/int) array",
            )
        expected = f"the model takes {dims} (a batch along axis {batch_axis or 0})"
        if array.ndim != len(dims):
            raise InputError(
                f"{label} has shape {shape}, {expected}",
                where=where,
                fix=f"reshape the array to rank {len(dims)}",
            )
        if array.size == 0:
            raise InputError(
                f"{label} has shape {shape}, with no samples",
                where=where,
                fix="give at least one sample",
            )
        for axis, (got, want) in enumerate(zip(shape, dims, strict=True)):
            free = axis == batch_axis if batch_axis is not None else axis == 0 or want == 1
            if isinstance(want, int) and want > 0 and got != want and not free:
                raise InputError(
                    f"{label} has shape {shape}, {expected}: axis {axis} has size {got}, "
                    f"not {want}",
                    where=where,
                    fix="reshape the array to the model's input shape",
                )
        check_finite(array, label, where, fix="replace NaN/Inf first")


def check_program_matches(model: onnx.ModelProto, program: Program, where: str) -> None:
    """Raise InputError when ``program``'s inputs cannot be ``model``'s: another count, or a
    sample of another size (a program compiled from another model)."""
    weights = {init.name for init in model.graph.initializer}
    infos = [info for info in model.graph.input if info.name not in weights]
    fix = "give the model the program was compiled from (eiec compile --export-onnx)"
    if len(infos) != len(program.inputs):
        raise InputError(
            f"the program has {len(program.inputs)} input(s), the model {len(infos)}",
            where=where,
            fix=fix,
        )
    batch = static_batch(model)  # a static batch runs one sample at a time
    for info, port in zip(infos, program.inputs, strict=True):
        dims = _input_dims(info)
        size = math.prod(d for d in dims if isinstance(d, int) and d > 0)
        if batch is not None and dims and dims[0] == batch:
            size //= batch
        if size != math.prod(port.shape):
            raise InputError(
                f"the program's input '{port.name}' has shape {list(port.shape)}, the model's "
                f"input '{info.name}' {dims}",
                where=where,
                fix=fix,
            )
