"""Import a canonical ONNX model into Relax with named FC layers and constant weights.

``from_onnx(keep_params_in_input=True)`` keeps the initialisers as named function parameters, so
each ``matmul`` can be traced to its weight initialiser and its binding renamed to the layer's
name (a Gemm with ``transB=1`` imports as ``matmul(x, permute_dims(W))``). The parameters are
then bound and folded: every layer becomes ``NAME = matmul(x, const[K, M])``, optionally followed
by ``add(NAME, const)`` (the bias) and ``nn.relu``. The transposes of the weights are folded in
numpy (:class:`_TransposedConstants`) before TVM's ``FoldConstant``, which would build and run a
kernel per weight (1.5 s for AlexNet's classifier).
"""

from __future__ import annotations

import numpy as np
import onnx
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from eiec.frontend.layers import OnnxLayer
from eiec.frontend.tvm_import import relax_from_onnx
from eiec.relax_layers.exprs import constant_shape, transposed


def import_canonical(model: onnx.ModelProto, layers: list[OnnxLayer]) -> tvm.IRModule:
    """The Relax module of ``model`` whose layer bindings carry the names of ``layers``."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    mod = relax_from_onnx(model, opset=opset, keep_params_in_input=True)
    func = mod["main"]
    num_input = int(func.attrs["num_input"])
    inputs = {i.name for i in model.graph.input}
    init_names = [i.name for i in model.graph.initializer if i.name not in inputs]
    param_vars = list(func.params[num_input:])
    values = list(func.attrs["params"]) if "params" in func.attrs else []
    by_weight = {layer.weight: layer.name for layer in layers}
    names = {
        var: by_weight[init]
        for var, init in zip(param_vars, init_names, strict=True)
        if init in by_weight
    }
    mod["main"] = _LayerNamer(mod, names).visit_expr(func)
    bound = {var.name: value for var, value in zip(param_vars, values, strict=True)}
    mod = relax.transform.BindParams("main", bound)(mod)
    mod["main"] = _TransposedConstants(mod).visit_expr(mod["main"])
    mod = relax.transform.FoldConstant()(mod)
    mod["main"] = mod["main"].without_attr("params")
    return mod


@mutator
class _LayerNamer(PyExprMutator):
    """Renames each ``matmul`` whose weight is a layer's parameter to the layer's name."""

    def __init__(self, mod: tvm.IRModule, names: dict[relax.Var, str]) -> None:
        super().__init__(mod)
        self.names = names
        self.transposed: dict[relax.Var, relax.Var] = {}

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = binding.value
        if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
            if value.op.name == "relax.permute_dims" and value.args[0] in self.names:
                self.transposed[binding.var] = value.args[0]
            elif value.op.name == "relax.matmul":
                weight = self.transposed.get(value.args[1], value.args[1])
                if weight in self.names:
                    new_value = self.visit_expr(value)
                    name = self.names[weight]
                    if isinstance(binding.var, relax.DataflowVar):
                        new_var = self.builder_.emit(new_value, name)
                    else:
                        new_var = self.builder_.emit_output(new_value, name)
                    self.set_var_remap(binding.var, new_var)
                    return
        super().visit_var_binding_(binding)


def _transposed(value: tvm.runtime.Tensor) -> tvm.runtime.Tensor:
    """The transpose of the 2-D ``value``, as a new tensor (written in place, block by block)."""
    source = np.from_dlpack(value)
    result = tvm.runtime.empty(source.shape[::-1], str(source.dtype))
    transposed(source, out=np.from_dlpack(result))
    return result


@mutator
class _TransposedConstants(PyExprMutator):
    """Replaces each ``permute_dims`` of a 2-D constant (axes reversed) by the transposed
    constant where it is used, as ``FoldConstant`` would, and drops its binding."""

    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        self.folded: dict[relax.Var, relax.Expr] = {}

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = binding.value
        if (
            isinstance(value, relax.Call)
            and isinstance(value.op, tvm.ir.Op)
            and value.op.name == "relax.permute_dims"
            and len(constant_shape(value.args[0]) or ()) == 2
            and (value.attrs.axes is None or [int(a) for a in value.attrs.axes] == [1, 0])
            and isinstance(binding.var, relax.DataflowVar)
        ):
            self.folded[binding.var] = relax.const(_transposed(value.args[0].value))
            return
        super().visit_var_binding_(binding)

    def visit_dataflow_var_(self, var: relax.DataflowVar) -> relax.Expr:
        return self.folded.get(var) or super().visit_dataflow_var_(var)
