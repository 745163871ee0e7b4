"""The training backbone: the imported Relax ``main`` with each layer's constants as parameters.

Every FC layer and every LSTM or GRU layer of ``main`` (as :mod:`eiec.relax_layers.fc` and
:mod:`eiec.relax_layers.lstm` find them) gets its weights from trainable parameters, in one of
two parametrisations:

- ``masked`` (pruning with retraining): ``weight = W * mask`` with ``W`` a parameter and
  ``mask`` an *input* of the function (0/1, so the pruning schedule changes it without
  rebuilding the graph; pruned weights are held at zero and get zero gradient); the bias is a
  parameter as it is.
- ``shared`` (trained quantisation): the layer's only parameter is its codebook's non-zero
  centroids ``c`` (``2**bits - 1`` of them); ``weight = take(concat([0], c), indices)`` with
  the indices an input (flattened: the gradient of ``take`` takes 1-D indices), so the
  gradient of a centroid is the sum of its weights' gradients. The bias indexes the same
  codebook (EIE stores it as one more column).

An LSTM or GRU layer's ``W`` and ``R`` are its prunable weights; its bias is trained as EIE's
``#1`` column (``Wb + Rb``; a GRU with ``linear_before_reset = 1`` keeps ``Rb_h`` apart:
:meth:`eiec.relax_layers.lstm.RecurrentLayer.bias`) and passed as the B computing the same
function (a ``take`` of ``[bias | 0]``, :func:`eiec.relax_layers.lstm.bias_indices`). The
imported functions are inlined so the gradient pass sees their bodies.

The function is ``backbone(inputs..., fixed..., params...)`` (fixed: masks or indices),
returning one tensor: the model's only output (batch first), or for distillation all outputs
flattened per sample and concatenated (B, F). Shapes are static: the model, imported at batch
1, is built at batch 1, its LSTM and GRU functions inlined, then re-emitted at ``batch`` samples per
step by :func:`eiec.training.retrace.retrace` (which also rewrites what TVM's gradients do not
take); a model it cannot re-batch trains one sample per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from eiec.errors import CompileError
from eiec.relax_layers.exprs import bindings, substitute
from eiec.relax_layers.fc import find_fc_layers
from eiec.relax_layers.lstm import find_recurrent_layers
from eiec.training import gradients
from eiec.training.retrace import NotBatchable, batch_axis, retrace

#: Gate blocks of a layer kind's weight rows (FC: one matrix).
GATES = {"fc": 1, "lstm": 4, "gru": 3}


@dataclass
class LayerWeights:
    """One layer's trainable tensors (numpy, float32).

    ``kind`` is ``fc``, ``lstm`` or ``gru``. ``weights`` are the prunable tensors (FC: ``W``
    (K, M) as Relax stores it; LSTM / GRU: ``W`` (D, GH, I) and ``R`` (D, GH, H)); ``bias`` the
    FC bias as stored (or None) or the recurrent layer's EIE bias (``RecurrentLayer.bias``).
    ``masks`` (same shapes as ``weights``) are 1 where a weight is kept.
    """

    name: str
    kind: str
    weights: list[np.ndarray]
    bias: np.ndarray | None
    masks: list[np.ndarray] = field(default_factory=list)

    @property
    def gates(self) -> int:
        """Blocks of rows per direction in :meth:`prunable` (the row interleave over the PEs
        repeats per block: :func:`eiec.passes.prune_weights.row_owners`)."""
        return GATES[self.kind]

    @property
    def hidden(self) -> int | None:
        """A recurrent layer's hidden size H (rows per gate block); None for an FC layer."""
        return None if self.kind == "fc" else self.weights[0].shape[1] // self.gates

    def prunable(self) -> np.ndarray:
        """The weights in PruneWeights' order: FC ``W.T`` (M, K), LSTM ``[W | R]``."""
        if self.kind == "fc":
            return self.weights[0].T
        return np.concatenate(self.weights, axis=2)

    def from_prunable(self, values: np.ndarray) -> list[np.ndarray]:
        """``weights`` shaped from an array in :meth:`prunable`'s order."""
        if self.kind == "fc":
            return [np.ascontiguousarray(values.T)]
        inputs = self.weights[0].shape[2]
        return [
            np.ascontiguousarray(values[:, :, :inputs]),
            np.ascontiguousarray(values[:, :, inputs:]),
        ]

    def effective(self) -> list[np.ndarray]:
        """The weights with their masks applied."""
        if not self.masks:
            return list(self.weights)
        return [w * m for w, m in zip(self.weights, self.masks, strict=True)]


def read_layers(mod: tvm.IRModule) -> list[LayerWeights]:
    """The FC and LSTM layers of ``mod["main"]`` (FC first, as the passes order them)."""
    layers = []
    for fc in find_fc_layers(mod["main"]):
        bias = None if fc.bias is None else fc.bias.astype(np.float32)
        layers.append(LayerWeights(fc.name, "fc", [fc.weight.astype(np.float32)], bias))
    for lstm in find_recurrent_layers(mod):
        layers.append(
            LayerWeights(
                lstm.name,
                lstm.op,
                [lstm.w.astype(np.float32), lstm.r.astype(np.float32)],
                lstm.bias().astype(np.float32),
            )
        )
    if not layers:
        raise CompileError(
            "the model has no FC, LSTM or GRU layer with constant weights to train",
            fix="train a model with Gemm/MatMul, LSTM or GRU layers whose weights are initialisers",
        )
    return layers


@dataclass
class SharedLayer:
    """A weight-shared layer: per tensor the codebook index of every element (0 = zero)."""

    indices: list[np.ndarray]
    bias_indices: np.ndarray | None
    centroids: np.ndarray


@dataclass
class Backbone:
    """The backbone module and what its parameters and inputs are.

    ``module`` has ``backbone`` (and the attributes SetupTrainer needs); ``input_shapes`` are
    the model inputs' shapes at the training batch, ``fixed`` the inputs that are not data
    (``(layer, key)`` in order: ``mask0``.. of masked layers, ``index0``.. and ``bias_index``
    of shared ones; see :func:`fixed_inputs`), ``params`` the parameters' names, ``batch``
    the samples per step. Weights, masks and indices are all inputs or parameters, so the
    module depends only on the model's structure (compiled once per architecture).
    """

    module: tvm.IRModule
    input_shapes: list[tuple[int, ...]]
    batch_axis: int | None
    batch: int
    fixed: list[tuple[str, str]]
    params: list[str]
    output_shape: tuple[int, ...]


def fixed_inputs(
    backbone: Backbone, layers: list[LayerWeights], shared: dict[str, SharedLayer] | None = None
) -> list[np.ndarray]:
    """The values of ``backbone.fixed``: each masked layer's masks (ones when it has none),
    each shared layer's flattened indices."""
    by_name = {layer.name: layer for layer in layers}
    values = []
    for name, key in backbone.fixed:
        layer = by_name[name]
        if key.startswith("mask"):
            index = int(key.removeprefix("mask"))
            mask = layer.masks[index] if layer.masks else np.ones_like(layer.weights[index])
            values.append(mask.astype(np.float32))
        elif key == "bias_index":
            values.append(shared[name].bias_indices.reshape(-1).astype(np.int32))
        else:
            index = int(key.removeprefix("index"))
            values.append(shared[name].indices[index].reshape(-1).astype(np.int32))
    return values


def build_backbone(
    mod: tvm.IRModule,
    layers: list[LayerWeights],
    batch_axis: int | None,
    batch: int,
    shared: dict[str, SharedLayer] | None = None,
    flatten_outputs: bool = False,
) -> Backbone:
    """The backbone of ``mod["main"]`` (see the module docstring). Layers named in ``shared``
    are parametrised by their codebook, the others by masked weights. It runs ``batch``
    samples per step where :func:`eiec.training.retrace.retrace` can re-batch the model, else
    one."""

    gradients.register()
    traced = _build(mod, layers, shared or {}, flatten_outputs)
    if batch_axis is None:
        batch = 1
    for size in dict.fromkeys((batch, 1)):
        try:
            return _rebatch(traced, batch_axis, size, flatten_outputs)
        except NotBatchable as error:
            problem = error
    raise CompileError(
        f"cannot build the training graph of the model: {problem}",
        fix="report this model: eiec's training graph should accept every model it compiles",
    )


def _tensor(shape: tuple[int, ...] | list[int], dtype: str = "float32") -> relax.TensorType:
    return relax.TensorType([int(d) for d in shape], dtype)


def _dims(ty: relax.TensorType) -> list[int]:
    return [int(d) for d in ty.shape.values]


def _rebatch(
    traced: tuple[tvm.IRModule, int, list[tuple[str, str]], list[str]],
    batch_axis: int | None,
    batch: int,
    flatten_outputs: bool,
) -> Backbone:
    """The batch-1 backbone ``traced`` re-emitted at ``batch`` samples per step (inputs resized
    along ``batch_axis``), its output (B, ...) with the batch first, or with
    ``flatten_outputs`` every output flattened per sample and concatenated (B, F)."""
    built, inputs, fixed_keys, params = traced
    func = built["backbone"]
    new_params = []
    for index, param in enumerate(func.params):
        ty = param.ty
        if index < inputs and batch_axis is not None:
            shape = _dims(ty)
            shape[batch_axis] = batch
            ty = _tensor(shape, ty.dtype)
        new_params.append(relax.Var(param.name, ty))
    before = func.ret_ty

    def finish(bb: relax.BlockBuilder, output: relax.Expr) -> relax.Expr:
        if isinstance(output.ty, relax.TupleType):
            fields = [bb.emit(relax.TupleGetItem(output, i)) for i in range(len(output.ty.fields))]
            old = list(before.fields)
        else:
            fields, old = [output], [before]
        rows = []
        for field_expr, old_ty in zip(fields, old, strict=True):
            axis = _sample_axis(_dims(old_ty), _dims(field_expr.ty), batch)
            if not flatten_outputs:
                if axis != 0 or len(old_ty.shape.values) != 2:
                    raise NotBatchable(
                        f"the output's batch is on axis {axis} of {_dims(field_expr.ty)}"
                    )
                return field_expr
            if axis != 0:
                order = [axis, *(i for i in range(len(old_ty.shape.values)) if i != axis)]
                field_expr = bb.emit(relax.op.permute_dims(field_expr, order))
            rows.append(bb.emit(relax.op.reshape(field_expr, [batch, -1])))
        return rows[0] if len(rows) == 1 else relax.op.concat(rows, 1)

    needs_finish = flatten_outputs or batch > 1
    func = retrace(func, new_params, "backbone", finish if needs_finish else None)
    module = tvm.IRModule({"backbone": func}).with_attrs(built.attrs)
    return Backbone(
        module=module,
        input_shapes=[tuple(_dims(v.ty)) for v in new_params[:inputs]],
        batch_axis=batch_axis,
        batch=batch,
        fixed=fixed_keys,
        params=params,
        output_shape=tuple(_dims(func.ret_ty)),
    )


def _sample_axis(before: list[int], after: list[int], batch: int) -> int:
    """The axis of an output the batch is on (at batch 1: 0, which flattens the same)."""
    axis = batch_axis(before, after)
    if axis is not None:
        return axis
    if batch > 1:
        raise NotBatchable(f"an output of shape {before} does not grow with the batch")
    return 0


def _build(
    mod: tvm.IRModule,
    layers: list[LayerWeights],
    shared: dict[str, SharedLayer],
    flatten_outputs: bool,
) -> tuple[tvm.IRModule, int, list[tuple[str, str]], list[str]]:
    """The backbone at batch 1 with the LSTM functions inlined, the number of data inputs,
    the fixed inputs' keys and the parameters' names."""
    main = mod["main"]
    inputs = [relax.Var(param.name, param.ty) for param in main.params]
    fixed_vars: list[relax.Var] = []
    fixed_keys: list[tuple[str, str]] = []
    param_vars: list[relax.Var] = []

    def fixed(layer: str, key: str, ty: relax.TensorType) -> None:
        fixed_vars.append(relax.Var(f"{layer}_{key}", ty))
        fixed_keys.append((layer, key))

    for layer in layers:
        if layer.name in shared:
            size = shared[layer.name].centroids.size
            param_vars.append(relax.Var(f"{layer.name}_codebook", _tensor((size,))))
            for index, weight in enumerate(layer.weights):
                fixed(layer.name, f"index{index}", _tensor((weight.size,), "int32"))
            if layer.bias is not None:
                fixed(layer.name, "bias_index", _tensor((layer.bias.size,), "int32"))
            continue
        for index, weight in enumerate(layer.weights):
            fixed(layer.name, f"mask{index}", _tensor(weight.shape))
            param_vars.append(relax.Var(f"{layer.name}_w{index}", _tensor(weight.shape)))
        if layer.bias is not None:
            param_vars.append(relax.Var(f"{layer.name}_bias", _tensor(layer.bias.shape)))

    bb = relax.BlockBuilder()
    with bb.function("backbone", [*inputs, *fixed_vars, *param_vars]):
        with bb.dataflow():
            unfold = {layer.name: layer.bias_indices()[1] for layer in find_recurrent_layers(mod)}
            tensors = _layer_tensors(bb, layers, shared, fixed_vars, param_vars, unfold)
            output = _emit_main(bb, mod, main, inputs, tensors)
            if not flatten_outputs and isinstance(output.ty, relax.TupleType):
                raise CompileError(
                    f"training with labels needs a model with one output; this one has "
                    f"{len(output.ty.fields)}",
                    fix="train without y (distillation against the model's own outputs)",
                )
            result = bb.emit_output(output)
        bb.emit_func_output(result)
    built = bb.get()
    for gvar, func in mod.functions.items():
        if gvar.name_hint != "main":
            built[gvar] = func
    built = relax.transform.InlinePrivateFunctions()(built)
    built = relax.transform.DeadCodeElimination(["backbone"])(built)
    built = built.with_attrs({"param_num": len(param_vars), "state_num": 0})
    return built, len(inputs), fixed_keys, [v.name for v in param_vars]


def _layer_tensors(
    bb: relax.BlockBuilder,
    layers: list[LayerWeights],
    shared: dict[str, SharedLayer],
    fixed_vars: list[relax.Var],
    param_vars: list[relax.Var],
    unfold: dict[str, np.ndarray],
) -> dict[str, tuple[list[relax.Expr], relax.Expr | None]]:
    """Per layer, the expressions of its weights and bias in the backbone (a recurrent layer's
    bias as its B: ``[bias | 0][:, unfold[name]]``)."""
    fixed, params = iter(fixed_vars), iter(param_vars)
    result: dict[str, tuple[list[relax.Expr], relax.Expr | None]] = {}
    for layer in layers:
        if layer.name in shared:
            zero = relax.const(np.zeros(1, np.float32))
            codebook = bb.emit(relax.op.concat([zero, next(params)], 0))
            weights = [_lookup(bb, codebook, next(fixed), w.shape) for w in layer.weights]
            bias = None
            if layer.bias is not None:
                bias = _lookup(bb, codebook, next(fixed), layer.bias.shape)
        else:
            weights = [bb.emit(relax.op.multiply(next(params), next(fixed))) for _ in layer.weights]
            bias = next(params) if layer.bias is not None else None
        if layer.name in unfold and bias is not None:
            zero = relax.op.zeros((layer.bias.shape[0], 1), "float32")
            padded = bb.emit(relax.op.concat([bias, zero], 1))
            indices = relax.const(unfold[layer.name].astype(np.int32))
            bias = bb.emit(relax.op.take(padded, indices, axis=1, mode="clip"))
        result[layer.name] = (weights, bias)
    return result


def _lookup(
    bb: relax.BlockBuilder, codebook: relax.Expr, indices: relax.Var, shape: tuple[int, ...]
) -> relax.Expr:
    """``codebook[indices]`` (1-D indices: the gradient of ``take`` accepts no others; in range
    by construction, ``clip`` keeps TVM's out-of-bounds warning away)."""
    taken = relax.op.take(codebook, indices, axis=0, mode="clip")
    return bb.emit(relax.op.reshape(taken, list(shape)))


def _emit_main(
    bb: relax.BlockBuilder,
    mod: tvm.IRModule,
    main: relax.Function,
    inputs: list[relax.Var],
    tensors: dict[str, tuple[list[relax.Expr], relax.Expr | None]],
) -> relax.Expr:
    """Re-emit ``main``'s bindings into ``bb`` with the layers' constants replaced."""
    fc_weight, fc_bias, lstm_args = {}, {}, {}
    for fc in find_fc_layers(main):
        weights, bias = tensors[fc.name]
        fc_weight[fc.var] = weights[0]
        if fc.bias_var is not None and bias is not None:
            fc_bias[fc.bias_var] = bias
    for lstm in find_recurrent_layers(mod):
        weights, bias = tensors[lstm.name]
        lstm_args[lstm.var] = (*weights, bias)
    env: dict[relax.Var, relax.Expr] = dict(zip(main.params, inputs, strict=True))

    def sub(expr: relax.Expr) -> relax.Expr:
        return substitute(expr, env)

    for binding in bindings(main):
        value = binding.value
        var = binding.var
        if var in fc_weight:
            new = relax.op.matmul(sub(value.args[0]), fc_weight[var])
        elif var in fc_bias:
            args = [
                fc_bias[var] if isinstance(a, tvm.ir.GenericConst) else sub(a) for a in value.args
            ]
            new = relax.op.add(*args)
        elif var in lstm_args:
            w, r, b = lstm_args[var]
            args = [sub(a) for a in value.args]
            args[1], args[2], args[3] = w, r, b
            new = relax.Call(value.op, args, value.attrs, value.ty_args)
        else:
            new = sub(value)
        env[var] = bb.emit(new, name_hint=var.name)
    return sub(main.body.body)
