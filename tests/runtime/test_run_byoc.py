"""``eiec run`` on models with ops EIE does not run before or between its layers (BYOC path)."""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax

import eiec
from eiec.byoc import run_onnx
from eiec.byoc.cpu import cpu_vm
from eiec.byoc.offload import register, registered
from eiec.byoc.profile import CallRecord, profile
from eiec.cli import main
from eiec.runtime import run_byoc
from eiec.runtime.run_byoc import ByocReport, check_calls, emulate_calls
from eiec.runtime.verify import VerifyReport

from .test_cli import VERIFY_KEYS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "byoc"


def small_cnn() -> onnx.ModelProto:
    spec = importlib.util.spec_from_file_location("small_cnn", EXAMPLES / "small_cnn.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.small_cnn()


def sigmoid_between(seed: int = 0) -> onnx.ModelProto:
    """x [N, 12] -> Gemm -> Softplus (CPU) -> Gemm -> Softmax: two EIE programs."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.uniform(-0.5, 0.5, (16, 12)).astype(np.float32), "w0"),
        numpy_helper.from_array(rng.uniform(-0.5, 0.5, (6, 16)).astype(np.float32), "w1"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w0"], ["h"], transB=1, name="fc0"),
            helper.make_node("Softplus", ["h"], ["s"], name="sig"),
            helper.make_node("Gemm", ["s", "w1"], ["logits"], transB=1, name="fc1"),
            helper.make_node("Softmax", ["logits"], ["p"], name="softmax"),
        ],
        "sigmoid_between",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 12])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 6])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.slow
def test_cli_runs_a_cnn_with_conv_on_the_cpu_and_fc_on_eie(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    x = np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.array([3, 7]))
    args = ["run", str(tmp_path / "cnn.onnx"), "-i", str(tmp_path / "x.npy"), "--pes", "16"]
    code = main([*args, "--labels", str(tmp_path / "y.npy"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["problems"]
    assert set(report) >= VERIFY_KEYS | {"path", "compile", "emulator", "accuracy"}
    assert report["path"] == "byoc" and report["verify_scope"] == "offloaded_calls"
    assert report["samples"] == 2 and report["outputs"] == ["probabilities"]
    assert 0 < report["max_abs_error_vs_compressed"] <= report["tolerance"]
    assert report["top1_agreement_vs_original"] is not None
    (symbol,) = report["compile"]  # the two Gemm layers are one EIE program
    assert [layer["name"] for layer in report["compile"][symbol]["layers"]] == ["fc0", "fc1"]
    assert [(row["symbol"], row["layer"]) for row in report["emulator"]["layers"]] == [
        (symbol, "fc0"),
        (symbol, "fc1"),
    ]
    assert report["emulator"]["functions"][symbol]["calls"] == 2
    assert report["emulator"]["per_inference"]["cycles"] > 0
    assert report["accuracy"]["compressed"] is None
    assert 0.0 <= report["accuracy"]["emulator"] <= 1.0


def test_ops_between_layers_make_two_checked_programs() -> None:
    x = np.random.default_rng(2).uniform(-1, 1, (3, 12)).astype(np.float32)
    report = eiec.run(sigmoid_between(), x, options=eiec.CompileOptions.of(pes=4, sparsity=0.5))
    assert isinstance(report, ByocReport)
    assert report.passed, report.summary()
    assert report.to_json()["calibration"] == "inputs"  # eiec.run calibrates on its inputs
    assert len(report.offloads) == 2
    assert [row["calls"] for row in report.profile.per_function().values()] == [3, 3]
    assert report.outputs["p"].shape == (3, 6)
    np.testing.assert_allclose(report.outputs["p"].sum(axis=1), 1.0, rtol=1e-5)
    text = report.summary()
    assert "BYOC: 2 function(s) offloaded to EIE" in text
    assert "vs compressed functions (each EIE call, same inputs)" in text


def test_a_corrupted_offloaded_program_fails_the_check_naming_it() -> None:
    x = np.random.default_rng(3).uniform(-1, 1, (2, 12)).astype(np.float32)
    good = eiec.run(sigmoid_between(seed=4), x, options=eiec.CompileOptions.of(pes=4))
    assert isinstance(good, ByocReport) and good.passed
    offload = next(iter(good.offloads.values()))
    program = offload.program
    layer = program.layers[next(iter(program.layers))]
    values = layer.codebook.values.copy()
    values[[3, 12]] = values[[12, 3]]
    bad_layer = dataclasses.replace(
        layer, codebook=dataclasses.replace(layer.codebook, values=values)
    )
    bad_program = dataclasses.replace(program, layers={**program.layers, layer.name: bad_layer})
    bad = dataclasses.replace(offload, symbol="eie_test_corrupted", program=bad_program)
    register(bad)
    assert registered("eie_test_corrupted") is bad
    calls = [
        CallRecord("eie_test_corrupted", 1, 0, 0.0, 0.0, (), inputs=(x[i : i + 1],))
        for i in range(2)
    ]
    report = VerifyReport(samples=2, outputs=["p"], scope="offloaded_calls")
    check_calls(report, calls)
    assert not report.passed
    assert report.problems[0].startswith("output 'eie_test_corrupted/")
    assert "exceed their error bound" in report.problems[0]


def test_emulator_settings_are_refused_on_the_byoc_path(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    onnx.save(sigmoid_between(), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.zeros((1, 12), np.float32))
    code = main(["run", str(tmp_path / "m.onnx"), "-i", str(tmp_path / "x.npy"), "--arith",
                 "float32"])  # fmt: skip
    assert code == 1
    assert capsys.readouterr().err == (
        "eiec run: error: eiec run: emulator settings (arith, FIFO depth, clock) apply to "
        "models EIE runs whole or with a CPU tail; this model runs through BYOC, whose programs "
        "run in fixed16 on the machine they were compiled for (keep --arith fixed16 "
        "(config=None); set the FIFO depth as a compile option)\n"
    )


def test_the_compressed_functions_are_built_once_per_process_in_one_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = np.random.default_rng(5).uniform(-1, 1, (3, 12)).astype(np.float32)
    with profile(keep_inputs=True) as recorder:
        run_onnx(sigmoid_between(seed=6), x, pes=4, calibration=x[:, None])
    calls = list(recorder.calls)
    built: list[tvm.IRModule] = []

    def counting(mod: tvm.IRModule) -> relax.VirtualMachine:
        built.append(mod)
        return cpu_vm(mod)

    monkeypatch.setattr(run_byoc, "cpu_vm", counting)
    monkeypatch.setattr(run_byoc, "_VMS", OrderedDict())
    first = emulate_calls(calls, 3)
    symbols = [check.symbol for check in first]
    assert len(symbols) == 2
    assert len(built) == 1  # both functions, one build
    assert sorted(gvar.name_hint for gvar in built[0].get_global_vars()) == sorted(symbols)
    again = emulate_calls(calls, 3)
    assert len(built) == 1  # reused
    for one, other in zip(first, again, strict=True):
        assert one.cpu.keys() == other.cpu.keys()
        assert all(np.array_equal(one.cpu[k], other.cpu[k]) for k in one.cpu)
    # A function compiled again (another compile result under the same symbol) is rebuilt.
    offload = registered(symbols[0])
    assert offload is not None and offload.compiled is not None
    register(dataclasses.replace(offload, compiled=dataclasses.replace(offload.compiled)))
    try:
        emulate_calls(calls, 3)
    finally:
        register(offload)
    assert len(built) == 2
    assert [gvar.name_hint for gvar in built[1].get_global_vars()] == [symbols[0]]


def test_the_rows_of_all_calls_in_one_run_equal_each_row_alone_built_alone() -> None:
    x = np.random.default_rng(7).uniform(-1, 1, (5, 12)).astype(np.float32)
    with profile(keep_inputs=True) as recorder:
        run_onnx(sigmoid_between(seed=8), x, pes=4, calibration=x[:, None])
    symbol = recorder.calls[0].symbol
    offload = registered(symbol)
    assert offload is not None and offload.rows
    # Calls of 1, 3 and 2 rows (with a leading batch axis, as the VM passes them).
    calls = [(x[None, :1],), (x[None, 1:4],), (x[None, 4:],)]
    other = registered(recorder.calls[-1].symbol)
    assert other is not None and other.symbol != symbol
    # Built with the other function in one module, run on all rows at once.
    function = run_byoc._cpu_functions([offload, other])[symbol]
    (together,) = run_byoc._run_rows(function, offload, calls)
    # Built alone, run row by row.
    single = cpu_vm(run_byoc._cpu_module(offload))["main"]
    alone = [single(tvm.runtime.tensor(x[i : i + 1])).numpy() for i in range(5)]
    assert together.shape == (5, alone[0].shape[-1])
    assert np.array_equal(together, np.concatenate(alone))  # bit for bit


def test_a_run_collects_garbage_less_often_and_restores_the_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, int, int]] = []
    real = run_byoc.run_onnx

    def spying(*args: object, **kwargs: object) -> object:
        seen.append(gc.get_threshold())
        return real(*args, **kwargs)

    monkeypatch.setattr(run_byoc, "run_onnx", spying)
    before = gc.get_threshold()
    x = np.random.default_rng(9).uniform(-1, 1, (2, 12)).astype(np.float32)
    run_byoc.run_samples(sigmoid_between(seed=10), {"x": x}, eiec.CompileOptions.of(pes=4))
    assert seen == [(max(run_byoc.GC_THRESHOLD, before[0]), *before[1:])]
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), run_byoc.rarer_collections(50_000):
        assert gc.get_threshold()[0] == max(50_000, before[0])
        raise RuntimeError  # restored on the way out of an error too
    assert gc.get_threshold() == before
