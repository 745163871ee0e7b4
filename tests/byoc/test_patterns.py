"""The eie patterns: priorities, both weight layouts, and what they refuse."""

from __future__ import annotations

import pytest
import tvm
from tvm import relax
from tvm.relax.backend.pattern_registry import get_patterns_with_prefix

from eiec.byoc import Capacity, eie_patterns, layer_refusal
from eiec.isa.program import Machine

from .models import mlp_onnx, relax_dense, to_relax


def composites(mod: tvm.IRModule) -> list[str]:
    """Composite names of the functions FuseOpsByPattern created, in module order."""
    return sorted(
        str(func.attrs["Composite"])
        for _, func in mod.functions_items()
        if isinstance(func, relax.Function) and func.attrs and "Composite" in func.attrs
    )


def fuse(mod: tvm.IRModule, capacity: Capacity | None = None) -> tvm.IRModule:
    return relax.transform.FuseOpsByPattern(eie_patterns(capacity or Capacity()))(mod)


def test_registry_order_is_the_fusion_order() -> None:
    import eiec.byoc

    eiec.byoc.ensure_registered()
    registered = [p.name for p in get_patterns_with_prefix("eie")]
    assert registered == [p.name for p in eie_patterns()]
    assert registered[0] == "eie.dense_bias_relu"


@pytest.mark.parametrize("gemm", [True, False], ids=["gemm_transB", "matmul_add"])
def test_biggest_pattern_wins_in_either_layout(gemm: bool) -> None:
    mod = to_relax(mlp_onnx([8, 16, 12, 4], seed=1, gemm=gemm))
    assert composites(fuse(mod)) == ["eie.dense_bias", "eie.dense_bias_relu", "eie.dense_bias_relu"]


def test_dense_without_bias_with_relu() -> None:
    # Remove the biases: MatMul -> Relu -> MatMul.
    model = mlp_onnx([8, 16, 4], seed=2, gemm=False)
    nodes = [n for n in model.graph.node if n.op_type != "Add"]
    nodes[1].input[0] = "mm0"
    nodes[2].input[0] = "act0"
    nodes[-1].output[0] = "fc1"
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    mod = to_relax(model)
    assert composites(fuse(mod)) == ["eie.dense", "eie.dense_relu"]


@pytest.mark.parametrize("dtype", ["float16", "int32"])
def test_refuses_other_dtypes(dtype: str) -> None:
    assert composites(fuse(relax_dense(8, 4, dtype=dtype))) == []


def test_refuses_a_weight_that_is_not_constant() -> None:
    assert composites(fuse(relax_dense(8, 4, weight_param=True))) == []


def test_refuses_a_constant_input() -> None:
    # The layer on the constant stays on the host; the one on x is offloaded.
    fused = fuse(relax_dense(8, 4, const_input=True))
    assert composites(fused) == ["eie.dense"]


def test_refuses_layers_over_capacity() -> None:
    small = Capacity(machine=Machine(pes=1, act_sram=64), density=0.1)
    assert composites(fuse(relax_dense(8, 4), small)) == ["eie.dense_bias_relu"]
    assert composites(fuse(relax_dense(40, 4), small)) == []


def test_layer_refusal_messages() -> None:
    chip = Capacity()
    assert layer_refusal(4096, 9217, chip) is None
    assert layer_refusal(4096, 20000, chip) == (
        "20000 columns need 40002 bytes of pointers per PE, over the 32768-byte pointer SRAM"
    )
    one_pe = Capacity(machine=Machine(pes=1, act_sram=1 << 20), density=0.5)
    assert layer_refusal(1024, 1024, one_pe) == (
        "1024x1024 weights at density 0.5 need about 524288 entries per PE, over the "
        "131072-byte sparse-matrix SRAM"
    )
    assert layer_refusal(600, 600, Capacity(machine=Machine(pes=1))) == (
        "input and output vectors (600 + 600 words) need 2400 bytes per PE, over the "
        "2048-byte activation SRAM"
    )
