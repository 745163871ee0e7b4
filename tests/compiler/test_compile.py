"""compile_model end to end: lowering checked by decoding the program, errors by full message,
and the emulator against the compressed model within the fixed-point tolerance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from eiec.compiler import CompileOptions, compile_model
from eiec.errors import CapacityError, ModelLoadError, UnsupportedModelError
from eiec.isa import csc, format_program
from eiec.isa.fixed import dequantize
from eiec.relax_layers.fc import find_fc_layers

from .models import gemm_model, mlp

FIXTURE = Path(__file__).resolve().parents[3] / "shared/fixtures/alexnet_fc8_eie.npz"


def _check_lowering(result) -> None:
    """Each layer's CSC decodes to the compressed weights (bias as the last column)."""
    fcs = {fc.name: fc for fc in find_fc_layers(result.module["main"])}
    assert list(result.program.layers) == list(fcs)
    for name, layer in result.program.layers.items():
        fc = fcs[name]
        expected = fc.weight.T.astype(np.float64)
        if fc.bias is not None:
            expected = np.concatenate([expected, fc.bias_vector()[:, None]], axis=1)
        codes = csc.decode(layer.ptr, layer.v, layer.z, layer.rows)
        assert codes.shape == expected.shape
        np.testing.assert_array_equal(codes != 0, expected != 0)
        values = dequantize(layer.codebook.values, layer.codebook.frac)[codes]
        np.testing.assert_allclose(values, expected, rtol=0, atol=2.0 ** -(layer.codebook.frac + 1))
        # The codebook is ascending after the zero entry, and every entry is used.
        cb = layer.codebook.values
        assert cb[0] == 0 and np.all(np.diff(cb[1:].astype(int)) >= 0)


@pytest.mark.parametrize("style", ["pytorch", "sklearn"])
@pytest.mark.parametrize("bias", [True, False])
def test_mlp_lowering_decodes_to_compressed_weights(style: str, bias: bool) -> None:
    result = compile_model(mlp([20, 16, 5], style=style, bias=bias), CompileOptions.of(pes=4))
    _check_lowering(result)
    program = result.program
    assert [p.shape for p in program.inputs] == [(1, 20)]
    assert [p.batch_axis for p in program.inputs + program.outputs] == [0, 0]
    mnemonics = [type(i).__name__ for i in program.text]
    assert mnemonics == [
        "LoadCodebook", "BroadcastActivation", "SparseColumnMac", "ReluWriteback",
        "LoadCodebook", "BroadcastActivation", "SparseColumnMac", "Writeback", "Halt",
    ]  # fmt: skip
    for report in result.report.layers:
        assert report.weight_density == pytest.approx(0.1, abs=0.01)
    assert result.layer_names == (["fc0", "fc1"] if style == "pytorch" else ["MatMul0", "MatMul1"])
    assert result.tensor_map == {"r0": "fc0.out" if style == "pytorch" else "MatMul0.out",
                                 "h1": program.outputs[0].buffer}  # fmt: skip


def test_already_sparse_model_at_sparsity_zero_keeps_its_zeros() -> None:
    model = mlp([32, 24, 8], density=0.3, seed=2)
    result = compile_model(model, CompileOptions.of(pes=2, sparsity=0.0))
    _check_lowering(result)
    for init in ("fc0.weight", "fc1.weight"):
        original = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == init))
        exported = numpy_helper.to_array(
            next(i for i in result.compressed_model.graph.initializer if i.name == init)
        )
        np.testing.assert_array_equal(exported != 0, original != 0)


@pytest.mark.parametrize("pes", [1, 256])
def test_one_and_256_pes(pes: int) -> None:
    result = compile_model(mlp([300, 64, 10], seed=1), CompileOptions.of(pes=pes, sparsity=0.8))
    _check_lowering(result)
    assert all(layer.pes == pes for layer in result.program.layers.values())
    padding = sum(layer.padding_entries for layer in result.program.layers.values())
    assert result.report.total.padding_entries == padding
    if pes == 1:
        assert padding > 0  # 64 local rows at 20% density leave gaps of more than 15 zeros


def test_compile_twice_gives_the_same_text() -> None:
    model = mlp([40, 30, 6], seed=4)
    options = CompileOptions.of(pes=8, sparsity={"fc0": 0.7}, default_sparsity=0.5, bits=3)
    first = format_program(compile_model(model, options).program)
    assert first == format_program(compile_model(model, options).program)


def test_layer_that_does_not_fit_the_sram() -> None:
    options = CompileOptions.of(pes=2, sparsity=0.0, spmat_sram=4096, weights="sram")
    with pytest.raises(CapacityError) as info:
        compile_model(mlp([128, 64, 4], seed=5), options)
    assert str(info.value) == (
        "layer fc0: does not fit the sparse-matrix SRAM: PE 0 needs 4128 bytes (4128 for this "
        "layer, 0 for the layers before it), 4096 bytes available per PE (use --pes 3 or more, "
        "raise --spmat-sram to 4128, or prune more (a higher --sparsity))"
    )


def test_pointer_sram_capacity_message() -> None:
    options = CompileOptions.of(pes=4, ptr_sram=256, weights="sram")
    with pytest.raises(CapacityError) as info:
        compile_model(mlp([100, 40, 8], seed=5), options)
    assert str(info.value) == (
        "layer fc1: does not fit the pointer SRAM: every PE needs 288 bytes of column pointers "
        "(84 for this layer's 42 pointers, 204 for the layers before it), 256 bytes available "
        "per PE (raise --ptr-sram to 288 (more PEs do not help: each PE holds a pointer per "
        "column), or compile the layers as separate programs)"
    )


def _unsupported_model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    nodes = [
        helper.make_node("Conv", ["x", "k"], ["c"], name="conv1"),
        helper.make_node("Flatten", ["c"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "W"], ["m"], name="mm"),
        helper.make_node("Softplus", ["m"], ["s"]),
        helper.make_node("Cast", ["s"], ["y"], name="cast", to=TensorProto.INT32),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 3])],
        [w, numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "k")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_unsupported_ops_are_listed_in_one_error() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        compile_model(_unsupported_model())
    assert str(info.value) == (
        "<model>: 3 nodes cannot run on EIE: 'conv1' (Conv): op Conv is not supported; "
        "Softplus -> 's': op Softplus is not supported; 'cast' (Cast): attribute to=INT32 is not "
        "supported (only FLOAT) (EIE runs chains of fully-connected layers (Gemm, MatMul+Add, "
        "Relu, Flatten/Reshape to a vector, Identity, Dropout, Cast to float); for a model that "
        "mixes them with other operators, offload the FC layers with "
        "eiec.byoc.partition_for_eie(mod) and let TVM run the rest (eiec run does this))"
    )


def test_a_transformer_is_refused_in_one_line_pointing_to_eiec_run() -> None:
    model = Path(__file__).resolve().parents[2] / "examples" / "transformer" / "gpt.onnx"
    with pytest.raises(UnsupportedModelError) as info:
        compile_model(model)
    assert str(info.value) == (
        f"{model}: 116 nodes of 11 op types cannot run on EIE (Gather, Add, LayerNormalization, "
        "Reshape, Gemm and 6 more): the model computes on the CPU around its FC layers, and "
        "eiec compile only builds programs EIE runs alone (use eiec run MODEL INPUTS.npy "
        "instead, which offloads the FC layers to EIE through BYOC and runs the other "
        "operators on TVM's CPU)"
    )


def test_model_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        compile_model(tmp_path / "missing.onnx")
    assert (
        str(info.value)
        == f"{tmp_path / 'missing.onnx'}: model file not found (give the path of an .onnx file)"
    )
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\x00 definitely not protobuf")
    with pytest.raises(ModelLoadError, match=r"junk.onnx: not an ONNX model: "):
        compile_model(junk)
    bad = mlp([4, 2])
    bad.graph.node[0].input[1] = "nowhere"
    path = tmp_path / "bad.onnx"
    onnx.save(bad, path)
    with pytest.raises(ModelLoadError, match=r"bad.onnx: invalid ONNX model: .*nowhere"):
        compile_model(path)


def _emulate(program, x: np.ndarray) -> np.ndarray:
    from eiec.emulator import Emulator

    port = program.inputs[0]
    return (
        Emulator(program).run({port.name: x.reshape(port.shape)}).outputs[program.outputs[0].name]
    )


GEMM_VARIANTS = [
    dict(trans_b=1),
    dict(trans_b=0, alpha=0.5),
    dict(trans_b=1, alpha=2.0, beta=0.25),
    dict(trans_a=1, trans_b=0, beta=-1.0),
    dict(trans_a=1, trans_b=1, bias=False),
]


@pytest.mark.parametrize(
    "variant", GEMM_VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items())
)
def test_gemm_attribute_variants_match_the_compressed_model(variant: dict) -> None:
    variant = dict(variant)
    rng = np.random.default_rng(7)
    k, m = 12, 5
    w = rng.standard_normal((m, k) if variant.get("trans_b") else (k, m))
    c = rng.standard_normal(m) if variant.pop("bias", True) else None
    model = gemm_model(w, c, **variant)
    result = compile_model(model, CompileOptions.of(pes=2, sparsity=0.5))
    _check_lowering(result)
    x = rng.uniform(-1, 1, (k, 1) if variant.get("trans_a") else (1, k)).astype(np.float32)
    cpu = ReferenceEvaluator(result.compressed_model).run(None, {"x": x})[0]
    # The compressed model computes alpha * A' B' + beta * C with the shared weights.
    fc = find_fc_layers(result.module["main"])[0]
    expected = x.reshape(1, k) @ fc.weight + (0 if fc.bias is None else fc.bias)
    np.testing.assert_allclose(cpu, expected, rtol=1e-5, atol=1e-5)
    from eiec.runtime.verify import verify

    report = verify(result.compressed_model, result.program, x, tensor_map=result.tensor_map)
    assert report.passed, report.to_json()


@pytest.mark.parametrize("style", ["pytorch", "sklearn"])
def test_emulator_matches_compressed_model_with_calibration(style: str) -> None:
    from eiec.runtime.verify import verify

    rng = np.random.default_rng(11)
    model = mlp([64, 48, 32, 10], style=style, seed=3)
    calibration = rng.standard_normal((32, 64)).astype(np.float32)
    result = compile_model(model, CompileOptions.of(pes=8, sparsity=0.7, calibration=calibration))
    assert {f.source for f in result.formats.values() if f.kind == "buffer"} == {"calibration"}
    x = rng.standard_normal((6, 64)).astype(np.float32)
    report = verify(result.compressed_model, result.program, x, tensor_map=result.tensor_map)
    assert report.passed, report.to_json()
    batch_cpu = ReferenceEvaluator(result.compressed_model).run(None, {"input": x})[0]
    emulated = np.concatenate([_emulate(result.program, row) for row in x])
    scale = np.abs(batch_cpu).max()
    assert np.abs(emulated - batch_cpu).max() < 0.01 * scale


def test_analytic_formats_never_saturate_within_the_input_range() -> None:
    # Both weights lie half an LSB below a codebook word (14 fraction bits), so each rounds up;
    # 6 * (w0 + w1) = 15.99939 fits 11 fraction bits (up to 15.99951), but the machine computes
    # 6 * (24577 + 19113) / 2**14 = 32767.5 / 2**11: a bound from the unrounded weights saturates.
    from eiec.emulator import Emulator

    w = np.array([[24576.5, 19112.5]], dtype=np.float32) / 2**14
    result = compile_model(
        gemm_model(w, None, trans_b=1), CompileOptions.of(pes=1, sparsity=0.0, input_range=6.0)
    )
    assert result.formats["gemm.out"].source == "bound"
    for x in ([6.0, 6.0], [-6.0, -6.0], [6.0, -6.0]):
        run = Emulator(result.program).run({"x": np.array([x])})
        assert run.stats.saturations == 0, x
        # FIXED_POINT.md's bound: codebook rounding (2**-15 per |x_j|) + writeback rounding.
        out_frac = result.program.buffers[result.program.outputs[0].buffer].frac
        assert abs(run.outputs["y"][0, 0] - w[0] @ x) <= 12 * 2.0**-15 + 2.0 ** -(out_frac + 1)


@pytest.mark.fixture
@pytest.mark.skipif(not FIXTURE.exists(), reason="AlexNet FC8 fixture absent")
def test_alexnet_fc8_recompiles_to_the_same_codes() -> None:
    data = np.load(FIXTURE)
    codebook, codes, bias_codes = data["codebook"], data["codes"], data["bias_codes"]
    model = gemm_model(codebook[codes], codebook[bias_codes], trans_b=1)
    result = compile_model(model, CompileOptions.of(pes=64, sparsity=0.0))
    layer = result.program.layers["gemm"]
    decoded = csc.decode(layer.ptr, layer.v, layer.z, layer.rows)
    np.testing.assert_array_equal(decoded[:, :-1], codes)
    np.testing.assert_array_equal(decoded[:, -1], bias_codes)
    assert result.report.layers[0].quantization_rmse == 0.0
    np.testing.assert_allclose(
        dequantize(layer.codebook.values, layer.codebook.frac), codebook, atol=2.0**-20
    )
