"""The training-build cache: a damaged, truncated or swapped library is rebuilt, never loaded."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

from eiec.isa.cache import load_library, store_library


@I.ir_module
class Double:
    @R.function
    def main(x: R.Tensor((2,), "float32")) -> R.Tensor((2,), "float32"):
        return R.add(x, x)


def _run(executable: object) -> np.ndarray:
    vm = relax.VirtualMachine(executable, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(np.array([1.0, 2.0], np.float32))).numpy()


def _replace(path: Path, data: bytes) -> None:
    """Give ``path`` new contents in a new file (the library loaded from it stays mapped:
    rewriting it in place would pull the pages from under the process)."""
    new = path.with_suffix(".new")
    new.write_bytes(data)
    new.replace(path)


def test_a_sound_build_loads_and_a_damaged_one_does_not(tmp_path: Path) -> None:
    path = tmp_path / "training" / "k.so"
    store_library(tvm.compile(Double, target="llvm"), path, "key-a")
    loaded = load_library(path, "key-a")
    assert loaded is not None
    np.testing.assert_array_equal(_run(loaded), [2.0, 4.0])
    assert load_library(path, "key-b") is None  # another key's entry (swapped on disk)
    data = path.read_bytes()
    _replace(path, data[: len(data) // 2])  # truncated: loading it would crash
    assert load_library(path, "key-a") is None
    _replace(path, b"\x7fELF" + bytes(100))
    assert load_library(path, "key-a") is None
    path.with_suffix(".sha256").unlink()
    _replace(path, data)  # sound again, but no stamp says what it is
    assert load_library(path, "key-a") is None


def test_a_library_of_another_user_is_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cpu" / "k.so"
    store_library(tvm.compile(Double, target="llvm"), path, "key-a")
    assert load_library(path, "key-a") is not None
    monkeypatch.setattr(os, "getuid", lambda: path.stat().st_uid + 1)
    assert load_library(path, "key-a") is None


def test_the_least_recently_used_libraries_go_beyond_the_limit(tmp_path: Path) -> None:
    folder = tmp_path / "cpu"
    executable = tvm.compile(Double, target="llvm")
    store_library(executable, folder / "a.so", "key-a")
    size = (folder / "a.so").stat().st_size
    store_library(executable, folder / "b.so", "key-b")
    os.utime(folder / "a.so", (1, 1))  # a used long ago
    store_library(executable, folder / "c.so", "key-c", limit=2 * size)
    assert sorted(p.name for p in folder.glob("*.so")) == ["b.so", "c.so"]
    assert not (folder / "a.sha256").exists()
    assert load_library(folder / "b.so", "key-b") is not None


def test_tvm_notes_are_dropped_and_other_lines_kept(capfd: pytest.CaptureFixture[str]) -> None:
    from eiec.training.tvm_engine import _without_tvm_notes

    with _without_tvm_notes():
        os.write(2, b"[13:26:45] codegen_cpu.cc:1183: Warning: Unknown pragma pragma_scope\n")
        os.write(2, b"Scope Saving: 3\nsomething else\n")
    assert capfd.readouterr().err == "something else\n"


def test_the_build_key_follows_the_schedule_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eiec.training import tvm_engine

    rules = tmp_path / "schedule_rules.py"
    rules.write_text("# a rule\n")
    monkeypatch.setattr(tvm_engine, "_BUILD_SOURCES", (rules,))
    target = tvm.target.Target("llvm")
    before = tvm_engine.build_key(Double, target)
    assert tvm_engine.build_key(Double, target) == before
    rules.write_text("# another rule\n")
    assert tvm_engine.build_key(Double, target) != before


def test_the_sources_digest_is_the_same_in_another_checkout(tmp_path: Path) -> None:
    from eiec.isa.cache import files_digest

    for checkout in ("a", "b"):
        (tmp_path / checkout).mkdir()
        (tmp_path / checkout / "rules.py").write_text("# a rule\n")
        (tmp_path / checkout / "engine.py").write_text("# an engine\n")
    a = [tmp_path / "a" / "rules.py", tmp_path / "a" / "engine.py"]
    b = [tmp_path / "b" / "engine.py", tmp_path / "b" / "rules.py"]
    assert files_digest(a) == files_digest(b)
    (tmp_path / "b" / "rules.py").write_text("# another rule\n")
    assert files_digest(a) != files_digest(b)
