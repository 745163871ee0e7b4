"""LSTM layers offloaded by OffloadRecurrent: the EIE result equals the CPU's within bounds."""

from __future__ import annotations

import numpy as np
import tvm
from onnx import numpy_helper
from tvm import relax

import eiec.byoc
from eiec.byoc import offloaded_symbols
from eiec.byoc.offload import registered
from eiec.byoc.profile import profile
from eiec.frontend.tvm_import import import_onnx
from eiec.runtime.run_byoc import compare_calls, emulate_calls
from eiec.runtime.verify import VerifyReport, emulate_with_bounds

from .flow import cpu_vm, eie_build, row_bounds
from .models import lstm_onnx


def outputs(vm: relax.VirtualMachine, x: np.ndarray) -> list[np.ndarray]:
    result = vm["main"](tvm.runtime.tensor(x))
    return [t.numpy() for t in result] if isinstance(result, tvm.ir.Array) else [result.numpy()]


def test_lstm_matches_cpu_within_bounds() -> None:
    mod = import_onnx(lstm_onnx(seq=3, inputs=6, hidden=8, seed=20))
    x = np.random.default_rng(21).uniform(-1, 1, (3, 1, 6)).astype(np.float32)
    built, vm = eie_build(mod)
    (symbol,) = offloaded_symbols(built)
    offload = registered(symbol)
    assert offload is not None and not offload.rows  # the whole sequence in one run
    eie, cpu = outputs(vm, x)[0], outputs(cpu_vm(mod), x)[0]
    port = offload.program.inputs[0]
    bounds = emulate_with_bounds(offload.program, {port.name: x}).bounds[offload.outputs[0]]
    assert np.all(np.abs(eie - cpu) <= bounds.reshape(eie.shape) + 1e-6)
    assert np.abs(cpu).max() > 0.05


def test_the_call_check_is_centred_on_the_known_roundings() -> None:
    # eiec run's check of an offloaded LSTM, as verify's: each element's error within its
    # bound less |centre| of its centre (the roundings the probe knows with their signs).
    mod = import_onnx(lstm_onnx(seq=3, inputs=6, hidden=8, seed=20))
    x = np.random.default_rng(21).uniform(-1, 1, (3, 1, 6)).astype(np.float32)
    _, vm = eie_build(mod)
    with profile(keep_inputs=True) as recorder:
        outputs(vm, x)
    (check,) = emulate_calls(recorder.calls, 1)
    assert check.emulated is not None
    report = VerifyReport(samples=1, outputs=[])
    compare_calls(report, [check])
    assert not report.problems, report.problems
    ratios = []
    for name, centre in check.centres.items():
        assert np.abs(centre).max() > 0  # the output's own roundings are known
        off = np.abs(check.emulated[name].astype(np.float64) - check.cpu[name] - centre)
        ratios.append((off / (check.bounds[name] - np.abs(centre))).max())
    assert report.worst_error_to_tolerance == max(ratios)


def test_lstm_and_fc_head_are_separate_programs() -> None:
    model = lstm_onnx(seq=2, inputs=4, hidden=6, seed=22, head=3)
    mod = import_onnx(model)
    x = np.random.default_rng(23).uniform(-1, 1, (2, 1, 4)).astype(np.float32)
    built, vm = eie_build(mod)
    lstm, head = (registered(symbol) for symbol in offloaded_symbols(built))
    assert not lstm.rows and head.rows
    with eiec.byoc.profile() as prof:
        eie = outputs(vm, x)
    cpu = outputs(cpu_vm(mod), x)
    assert [call.symbol for call in prof.calls] == offloaded_symbols(built)

    # The head's error: its own bound on the CPU's last hidden state, plus the LSTM program's
    # bound on Y_h carried through the head's weights.
    y_h = emulate_with_bounds(lstm.program, {lstm.program.inputs[0].name: x})
    e_h = y_h.bounds[lstm.outputs[1]].reshape(1, -1)
    last = cpu[0][-1].reshape(1, -1)  # Y of the last step is Y_h
    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    bound = row_bounds(head.symbol, last) + e_h @ np.abs(weights["Wh"]).T
    assert np.all(np.abs(eie[1] - cpu[1]) <= bound + 1e-6)


def test_lstm_over_capacity_stays_on_the_host() -> None:
    # [x; h; 1] is 11 columns: 24 bytes of pointers per PE, over a 20-byte pointer SRAM; the
    # head's 7 columns fit. The LSTM call left in main makes MergeCompositeFunctions fail, so
    # partitioning falls back to one program per layer.
    mod = import_onnx(lstm_onnx(seq=2, inputs=4, hidden=6, seed=22, head=3))
    built, vm = eie_build(mod, ptr_sram=20)
    (symbol,) = offloaded_symbols(built)
    assert registered(symbol).rows
    x = np.random.default_rng(24).uniform(-1, 1, (2, 1, 4)).astype(np.float32)
    eie, cpu = outputs(vm, x), outputs(cpu_vm(mod), x)
    np.testing.assert_array_equal(eie[0], cpu[0])  # Y computed on the host
    last = cpu[0][-1].reshape(1, -1)
    assert np.all(np.abs(eie[1] - cpu[1]) <= row_bounds(symbol, last) + 1e-6)
