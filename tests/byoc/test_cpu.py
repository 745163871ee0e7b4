"""``eiec.byoc.cpu``: CPU builds with their matmuls scheduled compute the bits of TVM's
default build (the checks, the calibration and the CPU reference rely on it), and are cached
across processes by module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import relax, tirx

from eiec.byoc.cpu import TARGET, cpu_executable, cpu_vm, scheduled


@pytest.fixture
def building(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds made here, not loaded from eiec's cache."""
    monkeypatch.setenv("EIEC_NO_CACHE", "1")


def _fc_chain(rows: int | tirx.Var, seed: int) -> tvm.IRModule:
    """x [rows, 96] -> matmul + bias -> ReLU -> matmul [96 -> 40] + bias (constant weights)."""
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((96, 64)).astype(np.float32)
    w1 = rng.standard_normal((64, 40)).astype(np.float32)
    b0 = rng.standard_normal(64).astype(np.float32)
    b1 = rng.standard_normal(40).astype(np.float32)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([rows, 96], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            h = bb.emit(relax.op.add(relax.op.matmul(x, relax.const(w0)), relax.const(b0)))
            h = bb.emit(relax.op.nn.relu(h))
            y = bb.emit(relax.op.add(relax.op.matmul(h, relax.const(w1)), relax.const(b1)))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    return bb.get()


def _attention() -> tvm.IRModule:
    """softmax(q @ k^T / 8) @ v over [1, 4, 16, 32] heads, then a LayerNorm-like mean: batched
    activation-activation matmuls and reductions, as a transformer's CPU part has them."""
    bb = relax.BlockBuilder()
    shape = [1, 4, 16, 32]
    q, k, v = (relax.Var(name, relax.TensorType(shape, "float32")) for name in "qkv")
    with bb.function("main", [q, k, v]):
        with bb.dataflow():
            scores = bb.emit(relax.op.matmul(q, relax.op.permute_dims(k, [0, 1, 3, 2])))
            scores = bb.emit(relax.op.divide(scores, relax.const(8.0, "float32")))
            att = bb.emit(relax.op.nn.softmax(scores, axis=-1))
            out = bb.emit(relax.op.matmul(att, v))
            mean = bb.emit(relax.op.mean(out, axis=[-1], keepdims=True))
            result = bb.emit_output(relax.op.subtract(out, mean))
        bb.emit_func_output(result)
    return bb.get()


def _scheduled_names(mod: tvm.IRModule) -> set[str]:
    found = scheduled(mod, tvm.target.Target(TARGET))
    return {
        gvar.name_hint
        for gvar, func in found.functions_items()
        if isinstance(func, tirx.PrimFunc) and "tirx.is_scheduled" in func.attrs
    }


def _default(mod: tvm.IRModule, *args: np.ndarray) -> np.ndarray:
    vm = relax.VirtualMachine(tvm.compile(mod, target=TARGET), tvm.cpu())
    return vm["main"](*(tvm.runtime.tensor(a) for a in args)).numpy()


@pytest.mark.usefixtures("building")
@pytest.mark.parametrize("symbolic", [True, False])
def test_an_fc_chain_with_scheduled_matmuls_gives_the_default_builds_bits(symbolic: bool) -> None:
    rows = 37
    mod = _fc_chain(tirx.Var("rows", "int64") if symbolic else rows, seed=1)
    assert sum(name.startswith("matmul") for name in _scheduled_names(mod)) == 2
    x = np.random.default_rng(2).standard_normal((rows, 96)).astype(np.float32)
    got = cpu_vm(mod)["main"](tvm.runtime.tensor(x)).numpy()
    want = _default(mod, x)
    assert got.shape == (rows, 40)
    assert np.array_equal(got, want)  # bit for bit, not within a tolerance


@pytest.mark.usefixtures("building")
def test_attention_and_reductions_with_scheduled_matmuls_give_the_default_builds_bits() -> None:
    mod = _attention()
    assert any(name.startswith("matmul") for name in _scheduled_names(mod))
    rng = np.random.default_rng(3)
    args = [rng.standard_normal((1, 4, 16, 32)).astype(np.float32) for _ in range(3)]
    vm = relax.VirtualMachine(cpu_executable(mod), tvm.cpu())
    got = vm["main"](*(tvm.runtime.tensor(a) for a in args)).numpy()
    assert np.array_equal(got, _default(mod, *args))


def test_builds_are_cached_across_processes_by_module_constants_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("EIEC_NO_CACHE", raising=False)
    folder = tmp_path / "eiec" / "cpu"
    x = np.random.default_rng(4).standard_normal((5, 96)).astype(np.float32)
    one, other = _fc_chain(5, seed=5), _fc_chain(5, seed=6)  # the same text, other weights
    want = [_default(one, x), _default(other, x)]
    first = cpu_executable(one)
    assert len(list(folder.glob("*.so"))) == 1
    again = cpu_executable(one)  # loaded: a library, no build
    assert isinstance(again, tvm.runtime.Module)
    assert len(list(folder.glob("*.so"))) == 1
    third = cpu_executable(other)
    assert len(list(folder.glob("*.so"))) == 2
    for executable, expected in ((first, want[0]), (again, want[0]), (third, want[1])):
        vm = relax.VirtualMachine(executable, tvm.cpu())
        assert np.array_equal(vm["main"](tvm.runtime.tensor(x)).numpy(), expected)


def test_no_build_is_cached_with_eiec_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("EIEC_NO_CACHE", "1")
    mod = _fc_chain(3, seed=7)
    x = np.random.default_rng(8).standard_normal((3, 96)).astype(np.float32)
    got = cpu_vm(mod)["main"](tvm.runtime.tensor(x)).numpy()
    assert np.array_equal(got, _default(mod, x))
    assert not (tmp_path / "eiec").exists()
