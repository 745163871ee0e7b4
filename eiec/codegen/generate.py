"""Code generation: a compressed Relax module -> an EIE ``Program`` (:class:`LowerToEIE`).

The generator walks ``main``'s bindings in order and dispatches each call on its operator name
to a lowering in ``LOWERINGS`` (the code generator's table; the ONNX ops that import to these
Relax ops are declared in ``eiec.ops``). The key is the operator name (``relax.matmul``) or, for
a call of a module function, its ``eiec.op`` attribute (``lstm``, ``gru``). Values, the context
and the formats: :mod:`eiec.codegen.context`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from eiec.codegen import fc, lstm
from eiec.codegen.assembly import CALIBRATION_HEADROOM, FormatChoice, LayerRecord, ProgramAssembly
from eiec.codegen.context import (
    Activation,
    Lowering,
    LoweringContext,
    Value,
    on_grid,
    shape_of,
)
from eiec.codegen.streaming import WeightsMode
from eiec.errors import UnsupportedModelError
from eiec.isa.fixed import frac_for_range
from eiec.isa.program import Halt, Machine, Port, Program
from eiec.relax_layers.exprs import bindings, op_name
from eiec.relax_layers.fc import find_fc_layers
from eiec.relax_layers.lstm import ATTR_OP

#: Relax operator (or ``eiec.op`` of a called function) -> its lowering.
LOWERINGS: dict[str, Lowering] = {
    "relax.matmul": fc.lower_matmul,
    "relax.add": fc.lower_add,
    "relax.nn.relu": fc.lower_relu,
    "relax.sigmoid": fc.lower_sigmoid_tanh,
    "relax.tanh": fc.lower_sigmoid_tanh,
    "relax.reshape": fc.lower_alias,
    "relax.permute_dims": fc.lower_alias,
    "relax.flatten": fc.lower_alias,
    "relax.squeeze": fc.lower_alias,
    "relax.expand_dims": fc.lower_alias,
    "relax.astype": fc.lower_astype,
    "lstm": lstm.lower_lstm,
    "gru": lstm.lower_gru,
    "relax.take": lstm.lower_take,
}


@dataclass(frozen=True)
class PortSpec:
    """Name and batch axis of a program input or output port (None: derive from Relax)."""

    name: str
    batch_axis: int | None


@dataclass(frozen=True)
class Generated:
    """What code generation produced: the program, its assembly (fixed-point formats, layer
    records for the compression report) and the buffer each layer writes (by layer name)."""

    program: Program
    formats: dict[str, FormatChoice]
    records: dict[str, LayerRecord]
    tensor_map: dict[str, str]
    #: Layers whose weights are streamed from DRAM.
    streamed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LowerToEIE:
    """Code generation for ``machine``: ``LowerToEIE(...)(mod)`` is the :class:`Generated`
    program of ``mod["main"]``; the module is not changed.

    ``inputs`` / ``outputs`` name the ports (default: the Relax parameter names and ``y``,
    ``y1``...; batch axis 0 for a rank >= 2 tensor whose first dimension is 1).
    ``calibration`` maps each input port to samples (S x its element count).
    ``weights``: where the layers' weights live (:mod:`eiec.codegen.streaming`).
    """

    machine: Machine = field(default_factory=Machine)
    inputs: list[PortSpec] | None = None
    outputs: list[PortSpec] | None = None
    calibration: dict[str, np.ndarray] | None = None
    input_range: float = 8.0
    weights: WeightsMode = "sram"

    def __call__(self, mod: tvm.IRModule) -> Generated:
        """The program of ``mod["main"]`` (a chain of FC / LSTM layers with shared weights)."""
        func = mod["main"]
        layers = find_fc_layers(func)
        asm = ProgramAssembly(self.machine)
        lctx = LoweringContext(
            asm,
            mod,
            {layer.var: layer for layer in layers},
            {layer.bias_var: layer for layer in layers if layer.bias_var is not None},
            self.input_range,
            self.calibration is not None,
        )
        num_input = int(func.attrs["num_input"]) if "num_input" in func.attrs else len(func.params)
        params = list(func.params[:num_input])
        in_specs = self.inputs or [
            PortSpec(p.name, _default_batch_axis(shape_of(p))) for p in params
        ]
        for param, spec in zip(params, in_specs, strict=True):
            lctx.env[param] = self._input(asm, param, spec)
        _check_ops(mod, func)
        for binding in bindings(func):
            lctx.env[binding.var] = self._lower_binding(lctx, binding)
        results = _flatten([lctx.value(expr) for expr in _returned(func.body.body)])
        out_specs = self.outputs or [
            PortSpec("y" if i == 0 else f"y{i}", None) for i in range(len(results))
        ]
        for value, spec in zip(results, out_specs, strict=True):
            activation = lctx.activation(value)
            axis = spec.batch_axis
            if self.outputs is None:
                axis = _default_batch_axis(activation.shape)
            asm.outputs.append(
                Port(asm_port_name(asm, spec.name), activation.buffer, activation.shape, axis)
            )
        asm.emit(Halt())
        program = asm.program(self.weights)
        return Generated(
            program, dict(asm.formats), dict(asm.records), dict(lctx.written), list(asm.streamed)
        )

    def _input(self, asm: ProgramAssembly, param: relax.Var, spec: PortSpec) -> Activation:
        shape = shape_of(param)
        size = int(np.prod(shape, dtype=np.int64))
        samples = None
        if self.calibration is not None:
            samples = np.asarray(self.calibration[spec.name], dtype=np.float64).reshape(-1, size)
            max_abs = float(np.abs(samples).max(initial=0.0))
            choice = (
                frac_for_range(max_abs, headroom=CALIBRATION_HEADROOM),
                max_abs,
                "calibration",
            )
        else:
            choice = (frac_for_range(self.input_range), self.input_range, "input-range")
        buffer = asm.add_buffer(spec.name, size, choice)
        asm.inputs.append(Port(spec.name, buffer.name, shape, spec.batch_axis))
        bound = on_grid(np.full(size, choice[1]), buffer.frac)
        return Activation(buffer.name, shape, samples, bound)

    @staticmethod
    def _lower_binding(ctx: LoweringContext, binding: relax.VarBinding) -> Value:
        value = binding.value
        if isinstance(value, relax.Var):
            return ctx.value(value)
        if isinstance(value, relax.TupleGetItem):
            return ctx.value(value.tuple_value)[value.index]
        if isinstance(value, relax.Tuple):
            return tuple(ctx.value(f) for f in value.fields)
        return LOWERINGS[lowering_key(ctx.mod, value)](ctx, binding)


def asm_port_name(asm: ProgramAssembly, name: str) -> str:
    """Ports have their own namespace; output names only need to differ from input names."""
    taken = {p.name for p in asm.inputs} | {p.name for p in asm.outputs}
    candidate, suffix = name, 2
    while candidate in taken:
        candidate, suffix = f"{name}_{suffix}", suffix + 1
    return candidate


def _default_batch_axis(shape: tuple[int, ...]) -> int | None:
    return 0 if len(shape) >= 2 and shape[0] == 1 else None


def op_label(value: relax.Expr) -> str:
    """How an unsupported value is named in messages."""
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
        return f"call of {value.op.name_hint}"
    return type(value).__name__


def _flatten(values: list[Value]) -> list[Value]:
    """Values with tuples (a returned var bound to a tuple, e.g. an LSTM's) spliced in."""
    flat: list[Value] = []
    for value in values:
        flat.extend(_flatten(list(value)) if isinstance(value, tuple) else [value])
    return flat


def _returned(body: relax.Expr) -> list[relax.Expr]:
    return list(body.fields) if isinstance(body, relax.Tuple) else [body]


def lowering_key(mod: tvm.IRModule, value: relax.Expr) -> str | None:
    """The ``LOWERINGS`` key of a bound value: the operator name of an operator call, the
    ``eiec.op`` attribute of a called module function (e.g. ``lstm``), else None."""
    name = op_name(value)
    if name is not None:
        return name
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
        callee = mod[value.op]
        if callee.attrs is not None and ATTR_OP in callee.attrs:
            return str(callee.attrs[ATTR_OP])
    return None


def _check_ops(mod: tvm.IRModule, func: relax.Function) -> None:
    """One UnsupportedModelError listing every binding whose operator has no lowering."""
    problems = []
    for binding in bindings(func):
        value = binding.value
        if isinstance(value, relax.Var | relax.TupleGetItem | relax.Tuple):
            continue
        name = lowering_key(mod, value)
        if name not in LOWERINGS:
            what = name or op_label(value)
            problems.append(f"'{binding.var.name}' = {what}")
    if problems:
        raise UnsupportedModelError(
            f"{len(problems)} binding{'s' if len(problems) > 1 else ''} of main cannot run on "
            "EIE: " + "; ".join(problems),
            fix="EIE runs chains of FC layers (matmul by a constant, bias add, relu, reshape); "
            "offload only those with eiec.byoc.partition_for_eie(mod)",
        )
