"""A tiny GPT-2-style decoder built with onnx.helper, in the forms torch's exporters write.

One block and a tied head over ids [1, T]: token + position embeddings (Gather), LayerNorm, a
fused QKV Gemm on the activations flattened to [T, H] (weight [H, 3H], not transposed, as
transformers' Conv1D exports), one attention head (activation-activation MatMuls, a causal mask
applied with Where and a -3.4e38 fill made by ConstantOfShape of an empty shape, Softmax), the
output projection as Gemm with ``transB=1``, a residual Add, LayerNorm, the MLP as MatMul + Add
on [1, T, H] (up, GELU with Tanh on the CPU, down), and the LM head as MatMul with the transposed
token embedding (tied). Five Linears: QKV, output projection, MLP up, MLP down, head.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The Linears of :func:`tiny_gpt` (node names), in graph order.
LINEARS = ("qkv", "attn_proj", "mlp_up", "mlp_down", "lm_head")


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def tiny_gpt(seed: int = 0, tokens: int = 8, hidden: int = 16, vocab: int = 11) -> onnx.ModelProto:
    """The model of the module docstring, with random weights (``seed``)."""
    rng = np.random.default_rng(seed)
    t, h, v = tokens, hidden, vocab

    def w(*shape: int, scale: float = 0.3) -> np.ndarray:
        return rng.normal(0.0, scale, shape).astype(np.float32)

    mask = np.tril(np.ones((t, t), dtype=bool))
    inits = [
        _const("wte", w(v, h, scale=0.5)),
        _const("wpe", w(t, h, scale=0.2)),
        _const("positions", np.arange(t, dtype=np.int64)[None]),
        _const("ln_g", np.ones(h, np.float32)),
        _const("ln_b", np.zeros(h, np.float32)),
        _const("flat", np.array([-1, h], np.int64)),
        _const("seq3", np.array([1, t, 3 * h], np.int64)),
        _const("seq", np.array([1, t, h], np.int64)),
        _const("w_qkv", w(h, 3 * h)),
        _const("b_qkv", w(3 * h, scale=0.1)),
        _const("split", np.array([h, h, h], np.int64)),
        _const("scale", np.array(1.0 / np.sqrt(h), np.float32)),
        _const("mask", mask[None]),
        _const("empty", np.zeros(0, np.int64)),
        _const("w_proj", w(h, h)),  # [out, in]: Gemm transB=1
        _const("b_proj", w(h, scale=0.1)),
        _const("w_up", w(h, 4 * h)),
        _const("b_up", w(4 * h, scale=0.1)),
        _const("w_down", w(4 * h, h)),
        _const("b_down", w(h, scale=0.1)),
        _const("half", np.array(0.5, np.float32)),
        _const("one", np.array(1.0, np.float32)),
        _const("c_gelu", np.array(0.044715, np.float32)),
        _const("c_sqrt", np.array(np.sqrt(2 / np.pi), np.float32)),
        _const("three", np.array(3.0, np.float32)),
    ]
    n = helper.make_node
    nodes = [
        n("Gather", ["wte", "ids"], ["tok"], name="wte_lookup"),
        n("Gather", ["wpe", "positions"], ["pos"], name="wpe_lookup"),
        n("Add", ["tok", "pos"], ["x0"], name="embed_add"),
        n("LayerNormalization", ["x0", "ln_g", "ln_b"], ["ln1"], axis=-1, name="ln1"),
        n("Reshape", ["ln1", "flat"], ["ln1_2d"], name="flat1"),
        n("Gemm", ["ln1_2d", "w_qkv", "b_qkv"], ["qkv_2d"], name="qkv"),
        n("Reshape", ["qkv_2d", "seq3"], ["qkv3"], name="unflat1"),
        n("Split", ["qkv3", "split"], ["q", "k", "v"], axis=2, name="split_qkv"),
        n("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="k_t"),
        n("MatMul", ["q", "kt"], ["scores0"], name="qk"),
        n("Mul", ["scores0", "scale"], ["scores1"], name="scale_scores"),
        n(
            "ConstantOfShape",
            ["empty"],
            ["neg"],
            value=numpy_helper.from_array(np.array([-3.4028234663852886e38], np.float32)),
            name="mask_fill",
        ),
        n("Where", ["mask", "scores1", "neg"], ["scores"], name="causal"),
        n("Softmax", ["scores"], ["probs"], axis=-1, name="softmax"),
        n("MatMul", ["probs", "v"], ["attn"], name="pv"),
        n("Reshape", ["attn", "flat"], ["attn_2d"], name="flat2"),
        n("Gemm", ["attn_2d", "w_proj", "b_proj"], ["proj_2d"], transB=1, name="attn_proj"),
        n("Reshape", ["proj_2d", "seq"], ["proj"], name="unflat2"),
        n("Add", ["x0", "proj"], ["x1"], name="residual1"),
        n("LayerNormalization", ["x1", "ln_g", "ln_b"], ["ln2"], axis=-1, name="ln2"),
        n("MatMul", ["ln2", "w_up"], ["up0"], name="mlp_up"),
        n("Add", ["up0", "b_up"], ["up"], name="mlp_up_bias"),
        # GELU (tanh form), on the CPU
        n("Pow", ["up", "three"], ["u3"], name="gelu_pow"),
        n("Mul", ["u3", "c_gelu"], ["u3c"], name="gelu_mul0"),
        n("Add", ["up", "u3c"], ["inner0"], name="gelu_add0"),
        n("Mul", ["inner0", "c_sqrt"], ["inner"], name="gelu_mul1"),
        n("Tanh", ["inner"], ["th"], name="gelu_tanh"),
        n("Add", ["th", "one"], ["th1"], name="gelu_add1"),
        n("Mul", ["up", "th1"], ["uh"], name="gelu_mul2"),
        n("Mul", ["uh", "half"], ["act"], name="gelu_mul3"),
        n("MatMul", ["act", "w_down"], ["down0"], name="mlp_down"),
        n("Add", ["down0", "b_down"], ["down"], name="mlp_down_bias"),
        n("Add", ["x1", "down"], ["x2"], name="residual2"),
        n("LayerNormalization", ["x2", "ln_g", "ln_b"], ["ln_f"], axis=-1, name="ln_f"),
        n("Transpose", ["wte"], ["wte_t"], perm=[1, 0], name="tie"),
        n("MatMul", ["ln_f", "wte_t"], ["logits"], name="lm_head"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_gpt",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, t])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, t, v])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model
