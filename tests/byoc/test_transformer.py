"""Transformers through BYOC: every Linear on EIE whatever its activation shape, the rest on
the CPU (issue 22 item 1), checked against ``onnx.reference``."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from eiec.compiler import CompileOptions
from eiec.frontend.fold import fold_constants
from eiec.frontend.layers import find_onnx_layers
from eiec.frontend.load import load_model
from eiec.relax_layers.fc import find_fc_layers
from eiec.runtime.run_byoc import ByocReport as RunReport
from eiec.runtime.run_byoc import run_byoc

from .transformer_models import LINEARS, tiny_gpt


def _ids(samples: int, tokens: int = 8, vocab: int = 11) -> np.ndarray:
    return np.random.default_rng(3).integers(0, vocab, (samples, tokens), dtype=np.int64)


def test_checks_on_weights_skip_constants_the_cpu_uses() -> None:
    """The -3.4e38 mask fill and the empty shape feeding ConstantOfShape run on the CPU."""
    load_model(tiny_gpt())  # raises ModelLoadError if they were refused


def _with_eie_weights(model: onnx.ModelProto, report: RunReport) -> onnx.ModelProto:
    """The folded model with each Linear's weight and bias replaced by the compressed ones its
    offloaded function computes with (offloads in call order = the Linears in graph order)."""
    folded = fold_constants(model)
    compressed = [
        layer
        for offload in report.offloads.values()
        for layer in find_fc_layers(offload.compiled.module["main"])
    ]
    layers = find_onnx_layers(folded)
    assert [layer.node for layer in layers] == list(LINEARS)
    values: dict[str, np.ndarray] = {}
    for layer, fc in zip(layers, compressed, strict=True):
        weight = np.asarray(fc.weight)
        values[layer.weight] = weight.T if layer.weight_layout == "out_in" else weight
        if layer.bias is not None:
            values[layer.bias] = np.asarray(fc.bias_vector())
    for index, init in enumerate(folded.graph.initializer):
        if init.name in values:
            old = numpy_helper.to_array(init)
            assert values[init.name].shape == old.shape
            folded.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(values[init.name].astype(old.dtype), init.name)
            )
    return folded


@pytest.mark.slow
def test_every_linear_of_a_gpt_block_runs_on_eie() -> None:
    model = tiny_gpt()
    ids = _ids(3)
    report = run_byoc(model, ids, options=CompileOptions.of(sparsity=0.0, pes=4))
    assert report.passed, report.verify.problems
    t, v = 8, 11
    # one program per Linear, each run once per token of each sample
    assert len(report.offloads) == len(LINEARS)
    assert {row["runs"] for row in report.profile.per_function().values()} == {len(ids) * t}
    reference = ReferenceEvaluator(_with_eie_weights(model, report))
    expected = np.concatenate([reference.run(None, {"ids": row[None]})[0] for row in ids])
    got = report.outputs["logits"]
    assert got.shape == expected.shape == (3, t, v)
    # the same weights, 16-bit fixed-point activations through five layers and the CPU ops
    # between them: within 1% of the logits' range, and the argmax of almost every token kept
    error = float(np.max(np.abs(got - expected)))
    assert 0 < error < 0.01 * float(np.ptp(expected))
    assert np.mean(got.argmax(-1) == expected.argmax(-1)) >= 0.9
