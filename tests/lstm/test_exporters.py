"""LSTM classifiers as PyTorch's exporters write them (``exporter_graphs``): W/R/B built by
Slice/Concat/Unsqueeze, zero states built at run time, ``batch_first`` Transposes, bidirectional
and stacked layers. They import equal to onnx.reference, compile, export their compressed model,
and verify on a batch of sequences stacked along the input's batch axis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from exporter_graphs import ExporterSpec, exporter_model
from lstm_models import reference, run_relax
from test_lower import compile_lstm

from eiec.cli import main
from eiec.compiler import CompileOptions, compile_model
from eiec.errors import UnsupportedModelError
from eiec.frontend.canonicalize import fix_batch, port_batch_axes
from eiec.frontend.tvm_import import import_onnx
from eiec.runtime.reference import run_rows
from eiec.runtime.verify import verify

SPEECH = Path(__file__).resolve().parents[2] / "examples" / "speech"
SPECS = {
    "dynamo": ExporterSpec("dynamo"),
    "dynamo-batch-first": ExporterSpec("dynamo", batch_first=True),
    "torchscript-batch-first": ExporterSpec("torchscript", batch_first=True),
    "dynamo-bidirectional-2-layers": ExporterSpec("dynamo", bidirectional=True, layers=2),
    "torchscript-bidirectional-batch-first": ExporterSpec(
        "torchscript", batch_first=True, bidirectional=True
    ),
}


def batch_of(model: onnx.ModelProto, count: int, seed: int = 3) -> tuple[np.ndarray, int]:
    """``count`` random sequences stacked along the input's batch axis, and that axis."""
    _, (spec,) = fix_batch(model, "test")
    shape = list(spec.shape)
    shape[spec.batch_axis] = count
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=shape).astype(np.float32), spec.batch_axis


def one_by_one(model: onnx.ModelProto, x: np.ndarray, axis: int) -> np.ndarray:
    """onnx.reference's logits of each sequence of ``x`` (along ``axis``), stacked on axis 0."""
    return np.concatenate(
        [reference(model, {"x": np.take(x, [i], axis=axis)})[0] for i in range(x.shape[axis])]
    )


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_import_matches_onnx_reference(spec: ExporterSpec) -> None:
    model = exporter_model(spec)
    x, _ = batch_of(model, 1)
    (got,) = run_relax(import_onnx(model), {"x": x})
    np.testing.assert_allclose(got, reference(model, {"x": x})[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_compile_export_and_verify_a_batch(spec: ExporterSpec) -> None:
    model = exporter_model(spec)
    result = compile_lstm(model)
    compressed = result.compressed_model
    # The compressed weights went into the LSTM nodes' initialisers (pruned to 40% density).
    inits = {init.name: onnx.numpy_helper.to_array(init) for init in compressed.graph.initializer}
    lstms = [node for node in compressed.graph.node if node.op_type == "LSTM"]
    assert len(lstms) == spec.layers
    for node in lstms:
        w, r = inits[node.input[1]], inits[node.input[2]]
        density = (np.count_nonzero(w) + np.count_nonzero(r)) / (w.size + r.size)
        assert 0.3 < density < 0.5
    x, axis = batch_of(model, 3)
    assert axis == (0 if spec.batch_first else 1)
    report = verify(compressed, result.program, {"x": x}, original=model)
    assert report.passed, report.summary()
    assert report.samples == 3
    assert 0 < report.relative_tolerance <= 0.02
    # The emulated logits are each sequence's, in order (batch on axis 0 of the logits).
    want = one_by_one(compressed, x, axis)
    error = np.abs(report.emulator_outputs["logits"] - want)
    assert error.max() <= report.tolerance


@pytest.mark.parametrize("batch_first", [False, True])
def test_run_rows_splits_sequences_along_the_batch_axis(batch_first: bool) -> None:
    model = exporter_model(ExporterSpec("torchscript", batch_first=batch_first))
    x, axis = batch_of(model, 4)
    assert port_batch_axes(model, "test") == ({"x": axis}, {"logits": 0})
    got = run_rows(model, {"x": x})["logits"]
    np.testing.assert_allclose(got, one_by_one(model, x, axis), atol=1e-5, rtol=0)


def test_batch_axis_of_a_transposed_input() -> None:
    """An input read as [feature, seq, batch] and transposed to [seq, batch, feature] has its
    batch on axis 2."""
    model = exporter_model(ExporterSpec("dynamo", batch_first=True))
    transpose = model.graph.node[0]
    assert transpose.op_type == "Transpose"
    transpose.attribute[0].ints[:] = [1, 2, 0]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, size in zip(dims, (6, 5, 1), strict=True):
        dim.dim_value = size
    _, (spec,) = fix_batch(model, "test")
    assert spec.batch_axis == 2


def test_gather_across_a_longer_axis_is_refused() -> None:
    """A Gather along the hidden axis of [seq, 1, hidden] (one unit of every step) is not one
    time step."""
    model = exporter_model(ExporterSpec("torchscript"))
    graph = model.graph
    gather = next(node for node in graph.node if node.op_type == "Gather" and "last" in node.input)
    gather.attribute[0].i = 2
    graph.node.remove(next(node for node in graph.node if node.op_type == "Gemm"))
    del graph.output[:]
    graph.output.append(
        onnx.helper.make_tensor_value_info("y_last", onnx.TensorProto.FLOAT, [5, 1])
    )
    with pytest.raises(UnsupportedModelError, match="only one constant time step"):
        compile_lstm(model)


def test_cli_run_with_labels_on_a_batch_of_sequences(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``eiec run`` with X [T, B, F] (the batch on the LSTM's axis 1) and labels."""
    model = exporter_model(ExporterSpec("torchscript"))
    x, axis = batch_of(model, 4)
    assert axis == 1
    labels = one_by_one(model, x, axis).argmax(axis=1)
    onnx.save(model, tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    args = ["run", str(tmp_path / "m.onnx"), "-i", str(tmp_path / "x.npy"), "--labels"]
    code = main([*args, str(tmp_path / "y.npy"), "--pes", "4", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["problems"]
    assert report["samples"] == 4 and report["emulator"]["samples"] == 4
    assert report["accuracy"]["original"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm_dynamo", "lstm_bf_torchscript"])
def test_speech_example_verifies_a_batch_of_test_sequences(name: str) -> None:
    """The shipped JapaneseVowels classifiers (examples/speech) at 10% density: a batch of 6
    test sequences verifies, X in the layout of the model's input."""
    model = onnx.load(str(SPEECH / f"{name}.onnx"))
    x = np.load(SPEECH / "speech_test_x.npy")[:, :6]
    if "_bf_" in name:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    result = compile_model(model, CompileOptions.of(sparsity=0.9, calibration=x))
    report = verify(result.compressed_model, result.program, {"x": x}, original=model)
    assert report.passed, report.summary()
    assert report.samples == 6 and 0 < report.relative_tolerance <= 0.02


def test_bidirectional_step_with_padded_rows_is_refused_clearly() -> None:
    """y[-1] of a bidirectional LSTM with H = 6 on 4 PEs: two rows padded to 8 words."""
    model = exporter_model(ExporterSpec("dynamo", bidirectional=True, hidden=6))
    with pytest.raises(UnsupportedModelError, match="multiple of the PE count"):
        compile_lstm(model)
