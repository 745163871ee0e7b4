"""verify MODEL PROG with the model that was compiled: weights decoded from the program."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from eiec.compiler import CompileOptions, compile_model
from eiec.errors import RuntimeCheckError
from eiec.isa import load, save
from eiec.isa.program import ReluWriteback, Writeback
from eiec.runtime.verify import verify
from tests.compiler.models import mlp

LSTM = Path(__file__).resolve().parents[2] / "examples" / "lstm"


def test_the_source_model_is_the_reference_with_the_programs_weights(tmp_path: Path) -> None:
    model = mlp([16, 12, 5], seed=0)
    result = compile_model(model, CompileOptions.of(pes=4, sparsity=0.5))
    save(result.program, tmp_path / "prog.eie")
    program = load(tmp_path / "prog.eie")
    assert program.origin == result.program.origin  # the header round-trips
    x = np.random.default_rng(0).uniform(-1, 1, (5, 16)).astype(np.float32)
    report = verify(model, program, x)
    assert report.passed, report.summary()
    assert report.reference == "decoded"
    # The original comparison comes by default; a class-score output reports top-1.
    assert report.max_abs_error_vs_original > report.max_abs_error_vs_compressed
    assert report.top1_agreement_vs_original is not None
    exported = verify(result.compressed_model, program, x)
    assert exported.passed and exported.reference == "compressed"
    # The decoded weights are the program's own: no codebook-rounding term, a tighter check.
    assert report.tolerance is not None and exported.tolerance is not None
    assert report.tolerance < exported.tolerance


def test_a_program_that_drops_a_relu_fails_against_its_source_model() -> None:
    # The reference takes the program's weights, not its instructions: the graph is the model's.
    model = mlp([16, 12, 5], seed=0)
    result = compile_model(model, CompileOptions.of(pes=4, sparsity=0.5))
    program = result.program
    program.text = [
        Writeback(ins.dst) if isinstance(ins, ReluWriteback) else ins for ins in program.text
    ]
    x = np.random.default_rng(0).uniform(-1, 1, (5, 16)).astype(np.float32)
    report = verify(model, program, x)
    assert not report.passed
    assert report.problems[0].startswith("output 'output': ")
    assert report.diverging_layer == "fc0"


def test_a_model_that_is_not_the_programs_source_is_named_as_such(tmp_path: Path) -> None:
    result = compile_model(mlp([16, 12, 5], seed=0), CompileOptions.of(pes=4, sparsity=0.5))
    save(result.program, tmp_path / "prog.eie")
    other = mlp([16, 12, 5], seed=0, bias=False)
    onnx.save(other, tmp_path / "other.onnx")
    x = np.zeros((1, 16), np.float32)
    with pytest.raises(RuntimeCheckError) as caught:
        verify(tmp_path / "other.onnx", tmp_path / "prog.eie", x)
    origin = result.program.origin
    assert origin is not None
    from eiec.frontend.fingerprint import model_fingerprint

    assert str(caught.value) == (
        f"{tmp_path / 'other.onnx'} is not the model {tmp_path / 'prog.eie'} was compiled from: "
        "its graph, shapes, layer names or weights outside the EIE layers differ (fingerprint "
        f"{model_fingerprint(other)[:12]}, the program's .origin {origin.model[:12]}) (pass the "
        "ONNX model given to eiec compile, or the file its --export-onnx wrote)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm.onnx", "lstm_linear.onnx"])
def test_lstm_models_verify_against_their_source(name: str) -> None:
    model = onnx.load(LSTM / name)
    result = compile_model(model, CompileOptions.of(pes=4, sparsity=0.6))
    port = result.program.inputs[0]
    x = np.random.default_rng(2).uniform(-1, 1, port.shape).astype(np.float32)
    report = verify(model, result.program, x)
    assert report.passed, report.summary()
    assert report.reference == "decoded"
    assert report.max_abs_error_vs_original is not None


@pytest.mark.slow
def test_a_model_compiled_with_retraining_verifies_against_its_source() -> None:
    model = mlp([16, 12, 5], seed=0)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (64, 16)).astype(np.float32)
    y = rng.integers(0, 5, 64)
    options = CompileOptions.of(pes=4, sparsity=0.5, train={"x": x, "y": y}, epochs=1)
    result = compile_model(model, options)
    assert result.program.origin is not None
    assert "train={x:sha256:" in result.program.origin.options
    report = verify(model, result.program, x[:8])
    assert report.passed, report.summary()
    assert report.reference == "decoded"


def _in_dtype(model: onnx.ModelProto, elem_type: int, dtype: type) -> onnx.ModelProto:
    for init in model.graph.initializer:
        value = numpy_helper.to_array(init).astype(dtype)
        init.CopyFrom(numpy_helper.from_array(value, init.name))
    for info in [*model.graph.input, *model.graph.output]:
        info.type.tensor_type.elem_type = elem_type
    return model


def test_a_float16_model_compiles_and_is_compared_in_float16() -> None:
    model = _in_dtype(mlp([16, 12, 5], seed=0), onnx.TensorProto.FLOAT16, np.float16)
    result = compile_model(model, CompileOptions.of(pes=4, sparsity=0.5))
    x = np.random.default_rng(0).uniform(-1, 1, (4, 16)).astype(np.float16)
    report = verify(model, result.program, x)
    assert report.passed, report.summary()
    assert report.emulator_outputs["output"].dtype == np.float16
    assert report.relative_tolerance <= 0.02


def test_a_float64_model_compiles_and_is_compared_in_float64() -> None:
    model = _in_dtype(mlp([16, 12, 5], seed=0), onnx.TensorProto.DOUBLE, np.float64)
    result = compile_model(model, CompileOptions.of(pes=4, sparsity=0.5))
    x = np.random.default_rng(0).uniform(-1, 1, (4, 16))
    report = verify(model, result.program, x)
    assert report.passed, report.summary()
    # The emulator's outputs are cast to the reference's dtype (a mismatch is a problem).
    assert report.emulator_outputs["output"].dtype == np.float64
    assert report.relative_tolerance <= 0.02
