"""LSTM models compiled to EIE: compression, program structure, and the emulated result against
the compressed model on the CPU within the fixed-point error bound (eiec.emulator.bounds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from lstm_models import LstmSpec, lstm_model, random_input, reference

from eiec.codegen.tables import GATE_FRAC, GATE_VALUE_FRAC
from eiec.compiler import CompileOptions, CompileResult, compile_model
from eiec.errors import UnsupportedModelError
from eiec.isa.program import (
    BroadcastActivation,
    EwCopy,
    EwLut,
    LoadCodebook,
    One,
    SparseColumnMac,
    View,
)
from eiec.isa.verifier import verify as verify_program
from eiec.relax_layers.lstm import find_recurrent_layers
from eiec.runtime.verify import emulate_with_bounds, verify

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "lstm"
PES = 4


def compile_lstm(model: onnx.ModelProto, **options: object) -> CompileResult:
    result = compile_model(model, CompileOptions.of(pes=PES, sparsity=0.6, **options))
    verify_program(result.program)
    return result


def assert_emulation_within_bounds(
    result: CompileResult, feeds: dict[str, np.ndarray], batch_axis: int = 1
) -> None:
    """Every sample of ``feeds`` (stacked along ``batch_axis``): each output element of the
    emulated program is within its propagated fixed-point bound of the compressed model run
    by onnx.reference (centred as verify checks it)."""
    (name,) = feeds
    (port,) = result.program.inputs
    expected = reference(result.compressed_model, feeds)
    outputs = [o.name for o in result.compressed_model.graph.output]
    for index in range(feeds[name].shape[batch_axis]):
        sample = np.take(feeds[name], [index], axis=batch_axis)
        run = emulate_with_bounds(result.program, {port.name: sample})
        assert run.stats.saturations == 0
        for output, want in zip(outputs, expected, strict=True):
            out_port = next(p for p in result.program.outputs if p.name == output)
            want = np.take(want, [index], axis=out_port.batch_axis)
            # As verify checks: within the bound less |centre| of the centre (the known
            # signed roundings where the statistical bound is the tolerance).
            centre = run.centres[output]
            off = np.abs(run.outputs[output].astype(np.float64) - want - centre)
            assert np.all(off <= run.bounds[output] - np.abs(centre)), (output, off.max())


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_single_layer_matches_compressed_model(direction: str) -> None:
    # 7 hidden units on 4 PEs: the gate rows are padded to Hp = 8.
    spec = LstmSpec(7, direction, initial_h=True, initial_c=True)
    model = lstm_model([spec], seq=4, inputs=5)
    result = compile_lstm(model)
    assert_emulation_within_bounds(result, random_input(model))


def test_program_runs_one_mac_per_step_with_gates_on_the_units_pe() -> None:
    model = lstm_model([LstmSpec(7, "bidirectional")], seq=3, inputs=5, outputs=("Y_c",))
    program = compile_lstm(model).program
    forward, backward = program.layers["lstm0.forward"], program.layers["lstm0.backward"]
    # Rows g * 8 + u (Hp = 8): gate g of unit u is on PE u mod 4 for all four gates.
    assert (forward.rows, forward.cols) == (32, 5 + 7 + 1)
    for layer in (forward, backward):
        for pe in range(PES):
            local = layer.local_rows(pe)
            assert local == 8
    macs = [i.layer for i in program.text if isinstance(i, SparseColumnMac)]
    assert macs == ["lstm0.forward"] * 3 + ["lstm0.backward"] * 3
    loads = [i.layer for i in program.text if isinstance(i, LoadCodebook)]
    assert loads == ["lstm0.forward", "lstm0.backward"]
    broadcasts = [i for i in program.text if isinstance(i, BroadcastActivation)]
    # [x_t; h_{t-1}; 1]: the backward direction starts at the last step from h0[1].
    assert broadcasts[0].sources == (View("X", 0), View("lstm0.h0", 0), One())
    assert broadcasts[1].sources == (View("X", 1), View("lstm0.y", 0), One())
    assert broadcasts[3].sources == (View("X", 2), View("lstm0.h0", 1), One())
    assert broadcasts[4].sources == (View("X", 1), View("lstm0.y", 5), One())
    luts = [i for i in program.text if isinstance(i, EwLut)]
    assert len(luts) == 5 * 6
    assert program.buffers["lstm0.gates"].frac == GATE_FRAC
    assert program.buffers["lstm0.act"].frac == GATE_VALUE_FRAC
    # Y_h is not an output: no copy of the last step.
    assert not any(isinstance(i, EwCopy) for i in program.text)
    assert [p.name for p in program.outputs] == ["Y_c"]


@pytest.mark.slow
def test_two_layers_with_gemm_head_compile_to_one_program() -> None:
    layers = [LstmSpec(6, "bidirectional"), LstmSpec(5, initial_h=True)]
    model = lstm_model(layers, seq=4, inputs=5, outputs=(), head=3)
    result = compile_lstm(model)
    assert set(result.program.layers) == {
        "lstm0.forward",
        "lstm0.backward",
        "lstm1",
        "head_W",
    }
    assert result.layer_names == ["head_W", "lstm0", "lstm1"]
    # Layer 2 reads both directions of layer 1's output at step t: two rows of lstm0.y.
    first = next(
        i
        for i in result.program.text
        if isinstance(i, BroadcastActivation) and View("lstm1.h0", 0) in i.sources
    )
    assert first.sources[:2] == (View("lstm0.y", 0), View("lstm0.y", 1))
    feeds = random_input(model)
    assert_emulation_within_bounds(result, feeds)
    report = verify(result.compressed_model, result.program, feeds, original=model)
    assert report.passed, report.summary()


def test_batch_of_sequences() -> None:
    model = lstm_model([LstmSpec(5, runtime_zero_states=True)], seq=3, batch=3, inputs=4)
    result = compile_lstm(model)
    (port,) = result.program.inputs
    assert port.shape == (3, 1, 4) and port.batch_axis == 1
    assert {p.name: p.batch_axis for p in result.program.outputs} == {"Y": 2, "Y_h": 1, "Y_c": 1}
    feeds = random_input(model)
    assert feeds["X"].shape == (3, 3, 4)
    assert_emulation_within_bounds(result, feeds)


def test_compression_of_lstm_layers() -> None:
    model = lstm_model([LstmSpec(8, "bidirectional")], seq=2, inputs=6)
    result = compile_lstm(model)
    (layer,) = find_recurrent_layers(result.module)
    weights = np.concatenate([layer.w, layer.r], axis=2)
    assert np.count_nonzero(weights) == round(0.4 * weights.size)
    # One codebook for W, R and the combined bias of both directions.
    bias = layer.b[:, :32] + layer.b[:, 32:]
    values = np.unique(np.concatenate([weights[weights != 0], bias[bias != 0]]))
    assert values.size <= 15
    assert not layer.b[:, 32:].any()
    program = result.program
    np.testing.assert_array_equal(
        program.layers["lstm0.forward"].codebook.values,
        program.layers["lstm0.backward"].codebook.values,
    )
    # The exported model carries the same W, R, B.
    inits = {
        i.name: onnx.numpy_helper.to_array(i) for i in result.compressed_model.graph.initializer
    }
    np.testing.assert_array_equal(inits["l0_W"], layer.w)
    np.testing.assert_array_equal(inits["l0_R"], layer.r)
    np.testing.assert_array_equal(inits["l0_B"], layer.b)
    rows = {row.name: row for row in result.report.layers}
    for name in ("lstm0.forward", "lstm0.backward"):
        assert rows[name].shape == [32, 14]
        assert rows[name].weights == 32 * 14
        assert rows[name].has_bias
        assert rows[name].quantization_rmse > 0
    assert result.tensor_map == {"Y": "lstm0.y"}


def test_sparsity_override_by_onnx_node_name() -> None:
    model = lstm_model([LstmSpec(6), LstmSpec(6)], seq=2, inputs=6, outputs=("Y",))
    result = compile_model(
        model, CompileOptions.of(pes=PES, sparsity={"lstm1": 0.25}, default_sparsity=0.75)
    )
    density = {row.name: row.weight_density for row in result.report.layers}
    assert density == pytest.approx({"lstm0": 0.25, "lstm1": 0.75}, abs=0.01)


def test_cell_state_format_from_calibration_or_bound() -> None:
    model = lstm_model([LstmSpec(5)], seq=6, inputs=4, outputs=("Y_c",))
    unbounded = compile_lstm(model)
    assert unbounded.formats["lstm0.c"].source == "bound"
    assert unbounded.formats["lstm0.c"].max_abs == 6.0  # |c_0| + T
    rng = np.random.default_rng(3)
    calibration = rng.uniform(-1, 1, size=(6, 8, 4)).astype(np.float32)
    calibrated = compile_lstm(model, calibration=calibration)
    choice = calibrated.formats["lstm0.c"]
    assert choice.source == "calibration" and choice.max_abs < 6.0
    assert choice.frac > unbounded.formats["lstm0.c"].frac
    assert_emulation_within_bounds(calibrated, random_input(model))


def test_inputs_finer_than_the_hidden_format_are_copied() -> None:
    # Calibrated |x| < 0.25 gives x 16 fraction bits; h shares x's broadcast format, capped at 14.
    model = lstm_model([LstmSpec(4)], seq=3, inputs=4, outputs=("Y",))
    calibration = np.random.default_rng(4).uniform(-0.2, 0.2, size=(3, 5, 4))
    result = compile_lstm(model, calibration=calibration.astype(np.float32))
    program = result.program
    assert program.buffers["X"].frac > 14
    assert program.buffers["lstm0.x"].frac == program.buffers["lstm0.y"].frac == 14
    assert isinstance(program.text[0], EwCopy)
    assert_emulation_within_bounds(result, {"X": calibration[:, :1].astype(np.float32)})


def test_stats_report_each_time_step() -> None:
    model = lstm_model([LstmSpec(6, "reverse")], seq=5, inputs=4, outputs=("Y_h",))
    result = compile_lstm(model)
    run = emulate_with_bounds(result.program, random_input(model))
    steps = [(entry.layer, entry.step) for entry in run.stats.layers]
    assert steps == [("lstm0", t) for t in range(5)]
    assert all(entry.stream_length == 4 + 6 + 1 for entry in run.stats.layers)


def test_initial_state_of_another_batch_size_is_rejected() -> None:
    # Initial states given for a batch of 3 cannot run one sequence at a time.
    model = lstm_model([LstmSpec(5, initial_c=True)], seq=3, batch=3, inputs=4)
    with pytest.raises(UnsupportedModelError) as error:
        compile_model(model, CompileOptions.of(pes=PES))
    assert str(error.value).startswith(
        "<model>: 1 node cannot run on EIE: 'lstm0' (LSTM): initial_c 'l0_c0' of shape "
        "[1, 3, 5] is not for batch 1 (one initial state per sequence of the batch) ("
    )


def test_unsupported_attribute_fails_the_compile() -> None:
    model = lstm_model([LstmSpec(4, attrs={"clip": 2.0})], seq=2)
    with pytest.raises(UnsupportedModelError) as error:
        compile_model(model, CompileOptions.of(pes=PES))
    assert "'lstm0' (LSTM): attribute clip=2 is not supported" in str(error.value)


# --- PyTorch exports --------------------------------------------------------------------------


@pytest.mark.slow
def test_pytorch_lstm_linear_compiles_and_verifies() -> None:
    model = onnx.load(str(EXAMPLES / "lstm_linear.onnx"))
    result = compile_lstm(model)
    assert set(result.program.layers) == {"node_LSTM_64", "node_LSTM_125", "node_linear"}
    x = np.random.default_rng(5).uniform(-1, 1, size=(6, 1, 8)).astype(np.float32)
    report = verify(result.compressed_model, result.program, {"x": x}, original=model)
    assert report.passed, report.summary()


@pytest.mark.parametrize(("name", "seq", "inputs"), [("lstm", 5, 8), ("lstm_bidir_legacy", 4, 6)])
def test_pytorch_lstms_compile_and_match(name: str, seq: int, inputs: int) -> None:
    model = onnx.load(str(EXAMPLES / f"{name}.onnx"))
    result = compile_lstm(model)
    x = np.random.default_rng(6).uniform(-1, 1, size=(seq, 1, inputs)).astype(np.float32)
    assert_emulation_within_bounds(result, {"x": x})
