"""verify(): the emulator against the CPU within the derived fixed-point bound; divergence found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from eiec.emulator import EmulatorConfig
from eiec.isa.program import Program
from eiec.runtime.verify import VerifyReport, compare_values, emulate_with_bounds, verify

from .handmade import handmade_mlp

KEYS = {
    "max_abs_error_vs_compressed",
    "max_rel_error_vs_compressed",
    "tolerance",
    "max_abs_error_vs_original",
    "top1_agreement_vs_original",
    "passed",
    "diverging_layer",
    "layers",
}


def _swap_codebook(program: Program, layer: str, a: int, b: int) -> None:
    values = program.layers[layer].codebook.values
    values[[a, b]] = values[[b, a]]


@pytest.mark.parametrize(("pes", "seed"), [(1, 0), (4, 1), (7, 2), (64, 3)])
def test_handmade_program_passes_within_a_true_bound(pes: int, seed: int) -> None:
    made = handmade_mlp(pes=pes, seed=seed)
    report = verify(made.compressed, made.program, made.x, tensor_map=made.tensor_map)
    assert report.passed, report.summary()
    assert set(report.to_json()) >= KEYS
    assert report.samples == 6
    assert 0 < report.max_abs_error_vs_compressed <= report.tolerance
    assert report.worst_error_to_tolerance <= 1.0
    assert report.top1_agreement_vs_original is None  # no original given
    assert report.diverging_layer is None


def test_bound_catches_a_164_lsb_shift_of_one_layers_codebook() -> None:
    made = handmade_mlp(samples=20)
    # Every fc2 codebook entry 0.01 off (a bit above 160 LSB at 14 fraction bits): a small,
    # systematic corruption, far below what a flipped entry does.
    layer = made.program.layers["fc2"]
    values = layer.codebook.values.astype(np.int32)
    values[1:] += 164
    layer.codebook.values = values.astype(np.int16)
    report = verify(made.compressed, made.program, made.x, tensor_map=made.tensor_map)
    assert not report.passed
    assert report.diverging_layer == "fc2"


@pytest.mark.parametrize(("factor", "passed"), [(0.9, True), (1.5, False)])
def test_an_error_just_over_its_own_bound_fails(factor: float, passed: bool) -> None:
    """One CPU output moved (via its bias) to ``factor`` times its bound from the emulator's."""
    made = handmade_mlp(samples=1)
    run = emulate_with_bounds(made.program, {"input": made.x})
    got, bound = run.outputs["logits"][0].astype(np.float64), run.bounds["logits"][0]
    cpu = ReferenceEvaluator(made.compressed).run(None, {"input": made.x})[0][0]
    b2 = next(init for init in made.compressed.graph.initializer if init.name == "b2")
    bias = numpy_helper.to_array(b2).copy()
    bias[3] += got[3] - cpu[3] - factor * bound[3]  # the CPU's logit 3 := got - factor * bound
    b2.CopyFrom(numpy_helper.from_array(bias, "b2"))
    report = verify(made.compressed, made.program, made.x, tensor_map=made.tensor_map)
    assert report.passed is passed, report.summary()
    assert report.worst_error_to_tolerance == pytest.approx(factor, rel=1e-3)
    if not passed:
        assert report.problems[0].startswith("output 'logits': 1 of 10 elements exceed")
        assert report.diverging_layer == "fc2"
        assert {check.layer: check.passed for check in report.layers} == {
            "fc1": True,
            "fc2": False,
        }


@pytest.mark.parametrize("layer", ["fc1", "fc2"])
def test_corrupted_codebook_fails_and_names_the_layer(layer: str) -> None:
    made = handmade_mlp()
    _swap_codebook(made.program, layer, 3, 12)
    report = verify(made.compressed, made.program, made.x, tensor_map=made.tensor_map)
    assert not report.passed
    assert report.diverging_layer == layer
    checks = {check.layer: check.passed for check in report.layers}
    assert checks[layer] is False
    if layer == "fc2":
        assert checks["fc1"] is True
    assert any(f"first diverges from the CPU in layer '{layer}'" in p for p in report.problems)
    assert report.to_json()["passed"] is False


def test_divergence_found_without_tensor_map_when_buffers_are_named_like_tensors() -> None:
    made = handmade_mlp()
    _swap_codebook(made.program, "fc1", 2, 9)
    report = verify(made.compressed, made.program, made.x)
    assert report.diverging_layer == "fc1"


def test_float32_mode_passes_with_a_smaller_bound() -> None:
    """float32 mode still decodes the 16-bit codebook, but inputs and writebacks do not round."""
    made = handmade_mlp()
    fixed = verify(made.compressed, made.program, made.x)
    real = verify(made.compressed, made.program, made.x, config=EmulatorConfig(arith="float32"))
    assert real.passed, real.summary()
    assert real.arith == "float32"
    assert real.tolerance < fixed.tolerance


def test_original_model_error_and_top1_agreement() -> None:
    made = handmade_mlp(samples=30)
    original = onnx.ModelProto()
    original.CopyFrom(made.compressed)
    rng = np.random.default_rng(5)
    for init in original.graph.initializer:
        value = numpy_helper.to_array(init)
        noisy = value + rng.normal(0, 0.02, value.shape).astype(np.float32)
        init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
    report = verify(made.compressed, made.program, made.x, original=original, classifier=True)
    assert report.passed
    assert report.max_abs_error_vs_original > report.max_abs_error_vs_compressed
    assert 0.5 <= report.top1_agreement_vs_original <= 1.0
    same = verify(made.compressed, made.program, made.x, original=made.compressed)
    assert same.top1_agreement_vs_original is None  # not a classifier by default


def test_shape_mismatch_is_reported_before_values() -> None:
    made = handmade_mlp()
    model = onnx.ModelProto()
    model.CopyFrom(made.compressed)
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info("relu1", 1, [1, 32]))
    report = verify(model, made.program, made.x)
    assert not report.passed
    assert report.problems[0] == (
        "output 'relu1': emulator gives float32[6, 10], the CPU model float32[6, 32]"
    )
    assert report.max_abs_error_vs_compressed is None


def test_compiled_digits_model_passes_and_a_corrupted_second_layer_is_named(
    digits_dir: Path, digits_x: np.ndarray
) -> None:
    from eiec.compiler import CompileOptions, compile_model

    options = CompileOptions.of(pes=16, calibration=np.load(digits_dir / "calib_x.npy"))
    compiled = compile_model(digits_dir / "digits_mlp.onnx", options)
    x = digits_x[:10]
    args = (compiled.compressed_model, compiled.program, x)
    good = verify(*args, original=digits_dir / "digits_mlp.onnx", classifier=True)
    assert good.passed, good.summary()
    assert good.top1_agreement_vs_original is not None
    second = compiled.layer_names[1]
    _swap_codebook(compiled.program, second, 1, 14)
    bad = verify(*args, tensor_map=compiled.tensor_map)
    assert not bad.passed
    assert bad.diverging_layer == second
    # Without the compiler's tensor_map, the mapping is rebuilt from the layer names.
    assert verify(*args).diverging_layer == second


@pytest.mark.parametrize("poison", [None, "got", "bound"])
@pytest.mark.parametrize("with_centre", [False, True])
def test_comparing_with_no_saturation_mask_equals_an_all_clear_one(
    poison: str | None, with_centre: bool
) -> None:
    """``compare_values`` skips masking when nothing is saturated and every value is finite;
    the verdict, figures and problems are those of the masked path."""
    rng = np.random.default_rng(11)
    got = rng.standard_normal((3, 40)).astype(np.float32)
    want = (got + rng.normal(0, 1e-3, got.shape)).astype(np.float32)
    bound = np.full(got.shape, 2e-3)
    bound[1, 5] = 1e-9  # one element beyond its bound: a failing sample
    if poison == "got":
        got[2, 7] = np.nan
    elif poison == "bound":
        bound[0, 3] = np.inf
    centre = rng.normal(0, 1e-4, got.shape) if with_centre else None
    reports = []
    for saturated in (None, np.zeros(got.shape, bool)):
        report = VerifyReport(samples=3, outputs=["y"], scope="offloaded_calls")
        compare_values(report, "f/y", got, want, bound, 0, saturated=saturated, centre=centre)
        reports.append(report.to_json())
    assert reports[0] == reports[1]
    assert reports[0]["failing_samples"] >= 1 and reports[0]["problems"]
