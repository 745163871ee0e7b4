"""The standard TVM flow with EIE offload equals the CPU-only module within fixed-point bounds."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from onnx import numpy_helper
from tvm import relax

import eiec.byoc
from eiec.byoc import offloaded_symbols
from eiec.byoc.attrs import ATTR_CALIBRATION, ATTR_OPTIONS, ATTR_REFERENCE, is_offloaded
from eiec.byoc.calibrate import CpuTwin
from eiec.byoc.codegen import compile_function, compressed_function, inline_function
from eiec.byoc.options import make_options
from eiec.byoc.partition import options_to_json
from eiec.relax_layers.fc import find_fc_layers

from .flow import cpu_vm, eie_build, row_bounds, run
from .models import mlp_onnx, to_relax


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("gemm", [True, False], ids=["gemm_transB", "matmul_add"])
def test_mlp_matches_cpu(gemm: bool) -> None:
    mod = to_relax(mlp_onnx([12, 24, 16, 6], seed=3, gemm=gemm, batch=3))
    x = np.random.default_rng(4).uniform(-1, 1, (3, 12)).astype(np.float32)
    built, vm = eie_build(mod)
    (symbol,) = offloaded_symbols(built)  # three layers, one EIE program
    eie, cpu = run(vm, x), run(cpu_vm(mod), x)
    assert np.all(np.abs(eie - cpu) <= row_bounds(symbol, x) + 1e-6)
    assert not np.array_equal(eie, np.zeros_like(eie))


def test_mixed_model_with_host_ops_between_eie_layers() -> None:
    # FC -> Sigmoid (host) -> FC -> Softmax (host): two EIE programs.
    model = mlp_onnx([10, 20, 5], seed=5, between="Sigmoid", tail="Softmax")
    mod = to_relax(model)
    x = np.random.default_rng(6).uniform(-1, 1, (1, 10)).astype(np.float32)
    built, vm = eie_build(mod)
    first, second = offloaded_symbols(built)
    eie, cpu = run(vm, x), run(cpu_vm(mod), x)

    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    w0, b0, w1 = weights["w0"], weights["b0"], weights["w1"]
    hidden = sigmoid(x.astype(np.float64) @ w0.T + b0)
    # |error| after FC2: its own bound on the host's sigmoid output, plus the first program's
    # bound through sigmoid (Lipschitz 1/4) and W1; softmax is 1-Lipschitz in the max norm.
    e1 = row_bounds(first, x) * 0.25
    e2 = row_bounds(second, hidden.astype(np.float32)) + e1 @ np.abs(w1).T
    assert np.all(np.abs(eie - cpu) <= e2.max() + 1e-6)


def test_two_models_in_one_process_keep_their_own_weights() -> None:
    x = np.random.default_rng(7).uniform(-1, 1, (1, 8)).astype(np.float32)
    mods = [to_relax(mlp_onnx([8, 16, 4], seed=seed)) for seed in (10, 11)]
    builds = [eie_build(mod) for mod in mods]
    symbols = [offloaded_symbols(built) for built, _ in builds]
    assert symbols[0] != symbols[1]
    for mod, (_, vm), (symbol,) in zip(mods, builds, symbols, strict=True):
        eie, cpu = run(vm, x), run(cpu_vm(mod), x)
        assert np.all(np.abs(eie - cpu) <= row_bounds(symbol, x) + 1e-6)
    # The same model and options again: the same program under the same symbol.
    again, _ = eie_build(mods[0])
    assert offloaded_symbols(again) == symbols[0]
    other, _ = eie_build(mods[0], pes=8)
    assert offloaded_symbols(other) != symbols[0]


def test_profile_reports_every_offloaded_call_per_layer() -> None:
    mod = to_relax(mlp_onnx([10, 20, 5], seed=5, between="Sigmoid", tail="Softmax"))
    built, vm = eie_build(mod)
    x = np.random.default_rng(6).uniform(-1, 1, (1, 10)).astype(np.float32)
    with eiec.byoc.profile() as prof:
        run(vm, x)
        run(vm, x)
    data = prof.to_json()
    assert [call["symbol"] for call in data["calls"]] == offloaded_symbols(built) * 2
    assert all(call["cycles"] > 0 and call["energy_pj"] > 0 for call in data["calls"])
    total = data["total"]
    assert total["calls"] == 4
    assert total["cycles"] == sum(call["cycles"] for call in data["calls"])
    for call in data["calls"]:
        assert len(call["layers"]) == 1
        assert call["layers"][0]["cycles"] <= call["cycles"]
    report = prof.report()
    assert report.splitlines()[-1].split()[:3] == ["total", "4", str(total["cycles"])]
    # Outside the block nothing is recorded.
    run(vm, x)
    assert len(prof.calls) == 4


def test_merged_layers_over_capacity_become_separate_programs() -> None:
    mod = to_relax(mlp_onnx([64, 64, 64], seed=8))
    # One PE whose pointer SRAM holds one 65-column layer but not two.
    built, vm = eie_build(mod, pes=1, ptr_sram=160)
    assert len(offloaded_symbols(built)) == 2
    x = np.random.default_rng(9).uniform(-1, 1, (1, 64)).astype(np.float32)
    assert np.abs(run(vm, x) - run(cpu_vm(mod), x)).max() < 0.5


def test_calibration_reaches_offloaded_functions_after_host_ops() -> None:
    # Inputs far beyond the assumed +-8 saturate without calibration. The second offloaded
    # function takes a host-computed tensor (Neg), so partition_for_eie computes each
    # function's calibration inputs from samples of the model's input.
    model = mlp_onnx([6, 12, 4], seed=14, between="Neg")
    mod = to_relax(model)
    samples = np.random.default_rng(15).uniform(-40, 40, (8, 1, 6)).astype(np.float32)
    x = samples[3]
    cpu = run(cpu_vm(mod), x)
    plain, plain_vm = eie_build(mod)
    calibrated, calibrated_vm = eie_build(mod, calibration=samples)
    assert offloaded_symbols(plain) != offloaded_symbols(calibrated)
    assert np.abs(run(plain_vm, x) - cpu).max() > 1.0  # saturated

    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    hidden = -(x.astype(np.float64) @ weights["w0"].T + weights["b0"])
    first, second = offloaded_symbols(calibrated)
    bound = (
        row_bounds(second, hidden.astype(np.float32))
        + row_bounds(first, x) @ np.abs(weights["w1"]).T
    )
    assert np.all(np.abs(run(calibrated_vm, x) - cpu) <= bound + 1e-5)


def test_refit_calibrates_each_function_on_the_compressed_functions_before_it() -> None:
    # SparseGPT's sequential calibration: with ,refit the second function's calibration inputs
    # come from the first one as EIE will run it (pruned, shared), and the dense model's
    # inputs ride beside them as the refit's target.
    mod = to_relax(mlp_onnx([6, 12, 4], seed=14, between="Neg"))
    samples = np.random.default_rng(16).uniform(-2, 2, (8, 1, 6)).astype(np.float32)
    options = {"sparsity": 0.5, "prune": "magnitude,refit"}
    dense = _offloaded_by_width(eiec.byoc.partition_for_eie(mod, calibration=samples))
    seq = _offloaded_by_width(eiec.byoc.partition_for_eie(mod, calibration=samples, **options))
    rows = samples.reshape(-1, 6)
    assert np.array_equal(_attr(seq[6], ATTR_CALIBRATION), rows)
    assert np.array_equal(_attr(seq[6], ATTR_REFERENCE), rows)
    assert ATTR_REFERENCE not in dense[12].attrs
    assert np.array_equal(_attr(seq[12], ATTR_REFERENCE), _attr(dense[12], ATTR_CALIBRATION))

    first = compressed_function(seq[6], make_options(options))
    vm = cpu_vm(tvm.IRModule({"main": first}))
    expected = np.concatenate([-run(vm, sample) for sample in samples])
    assert np.abs(_attr(seq[12], ATTR_CALIBRATION) - expected).max() < 1e-5
    assert np.abs(expected - _attr(dense[12], ATTR_CALIBRATION)).max() > 1e-3  # it differs
    # the twin's weights are those the program is compiled from
    (twin_layer,) = find_fc_layers(first)
    compiled = compile_function(seq[6].with_attr(ATTR_OPTIONS, _options_json(options)), "f")
    (program_layer,) = find_fc_layers(compiled.compiled.module["main"])
    assert np.array_equal(twin_layer.weight, program_layer.weight)
    assert np.array_equal(twin_layer.bias, program_layer.bias)


def test_the_cpu_twin_recomputes_only_what_follows_a_changed_function() -> None:
    # attach_calibration's twin is built once, cut at the offloaded calls: new weights for the
    # middle function change the last one's inputs (as the model computes them), not the
    # inputs of the functions before it, and none of it needs a new build.
    model = mlp_onnx([6, 12, 8, 4], seed=21, between="Neg")
    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    part = eiec.byoc.partition_for_eie(to_relax(model))
    by_width = _offloaded_by_width(part)
    samples = np.random.default_rng(22).uniform(-2, 2, (5, 1, 6)).astype(np.float32)
    twin = CpuTwin(part)
    assert twin.symbols == [_symbol(part, by_width[w]) for w in (6, 12, 8)]  # in call order
    dense = twin.collect([samples])
    x = samples.reshape(-1, 6).astype(np.float64)
    hidden = -(x @ weights["w0"].T + weights["b0"])
    np.testing.assert_allclose(dense[_symbol(part, by_width[12])], hidden, atol=1e-5)

    middle = _symbol(part, by_width[12])
    (layer,) = find_fc_layers(inline_function(by_width[12]))
    halved = weights["w1"].T * np.float32(0.5)  # (K, M), as Relax holds it
    twin.set_constants(middle, {layer.name: (halved, None)})
    assert twin._valid == 2  # the segments before the middle call stay computed
    last = twin.collect([samples], [_symbol(part, by_width[8])])
    expected = -(hidden @ (0.5 * weights["w1"].T) + weights["b1"])
    np.testing.assert_allclose(last[_symbol(part, by_width[8])], expected, atol=1e-5)
    again = twin.collect([samples])
    for symbol, inputs in dense.items():
        if symbol != _symbol(part, by_width[8]):
            assert np.array_equal(again[symbol], inputs)


def _symbol(mod: tvm.IRModule, func: relax.Function) -> str:
    return next(g.name_hint for g, f in mod.functions_items() if f.same_as(func))


def _offloaded_by_width(mod: tvm.IRModule) -> dict[int, relax.Function]:
    """The offloaded functions of ``mod`` by the width of their input."""
    return {
        int(func.params[0].ty.shape.values[-1]): func
        for _, func in mod.functions_items()
        if isinstance(func, relax.Function) and is_offloaded(func)
    }


def _attr(func: relax.Function, name: str) -> np.ndarray:
    return func.attrs[name].numpy()


def _options_json(options: dict) -> str:
    return options_to_json(make_options(options))
