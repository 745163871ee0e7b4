"""Loaded programs are cached by path, text and code: reused, never stale, optional, bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eiec import isa
from eiec.emulator import Emulator, load_image, run_batch
from eiec.emulator import image as image_module
from eiec.emulator.layers import LayerTables
from eiec.errors import IsaError
from eiec.isa import cache
from eiec.isa.builder import fc_program, random_codes
from tests.emulator.programs import big_machine


@pytest.fixture
def programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache; returns the folder of its program entries."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EIEC_NO_CACHE", raising=False)
    return tmp_path / "xdg" / "eiec" / image_module.KIND


def _program_file(tmp_path: Path, seed: int = 0, name: str = "p.eie") -> Path:
    rng = np.random.default_rng(seed)
    codes = random_codes(rng, 24, 16, 0.3)
    path = tmp_path / name
    codebook = np.arange(16, dtype=np.int16) - 8
    codebook[0] = 0
    program = fc_program([codes], [codebook], [6], [10, 8], machine=big_machine(4))
    isa.save(program, path)
    return path


def _no_parse(*args: object, **kwargs: object) -> None:
    raise AssertionError("the program was parsed, not loaded from the cache")


def _no_build(*args: object, **kwargs: object) -> None:
    raise AssertionError("the layer tables were built, not taken from the image")


def test_the_second_load_reads_the_cache(
    programs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _program_file(tmp_path)
    parsed = isa.load(path)
    first = load_image(path)
    (entry,) = programs.iterdir()
    assert entry.suffix == ".pickle"
    monkeypatch.setattr(isa, "load_bytes", _no_parse)
    second = load_image(path)
    assert second.program == first.program == parsed
    x = {"x": np.linspace(-1, 1, 16).reshape(1, 16)}
    direct = Emulator(parsed).run(x)
    cached = Emulator(second.program, tables=second.tables).run(x)
    np.testing.assert_array_equal(cached.outputs["y"], direct.outputs["y"])
    assert cached.stats == direct.stats


def test_a_changed_file_is_loaded_anew(programs: Path, tmp_path: Path) -> None:
    path = _program_file(tmp_path, seed=0)
    before = load_image(path)
    _program_file(tmp_path, seed=1)
    after = load_image(path)
    assert after.program == isa.load(path) != before.program
    assert len(list(programs.iterdir())) == 2


def test_each_path_keeps_its_own_source(programs: Path, tmp_path: Path) -> None:
    one = _program_file(tmp_path, name="one.eie")
    two = tmp_path / "two.eie"
    two.write_bytes(one.read_bytes())
    assert load_image(one).program.source == str(one)
    assert load_image(two).program.source == str(two)


def test_a_corrupt_entry_is_rebuilt(programs: Path, tmp_path: Path) -> None:
    path = _program_file(tmp_path)
    first = load_image(path)
    (entry,) = programs.iterdir()
    entry.write_bytes(b"not a pickle")
    assert load_image(path).program == first.program
    assert entry.read_bytes() != b"not a pickle"


def test_no_cache_writes_nothing(
    programs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EIEC_NO_CACHE", "1")
    path = _program_file(tmp_path)
    assert load_image(path).program == isa.load(path)
    assert not programs.exists()


def test_an_unwritable_cache_costs_only_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache directory would go", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path = _program_file(tmp_path)
    assert load_image(path).program == isa.load(path)


def test_a_bad_file_fails_as_isa_load_does(programs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.eie"
    bad.write_text(".machine pes=four\n", encoding="utf-8")
    for path in (bad, tmp_path / "missing.eie"):
        with pytest.raises(IsaError) as expected:
            isa.load(path)
        with pytest.raises(IsaError) as got:
            load_image(path)
        assert str(got.value) == str(expected.value)
    assert not programs.exists()


def test_the_oldest_entries_go_beyond_the_limit(programs: Path) -> None:
    for number in range(5):
        cache.write_pickle(image_module.KIND, f"entry{number}", bytes(1000), limit=3500)
    kept = sorted(path.stem for path in programs.iterdir())
    assert kept == ["entry2", "entry3", "entry4"]
    assert cache.read_pickle(image_module.KIND, "entry4") == bytes(1000)
    assert cache.read_pickle(image_module.KIND, "entry0") is None


def test_a_batch_runs_on_the_given_tables(
    programs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _program_file(tmp_path)
    xs = np.random.default_rng(3).uniform(-1, 1, (5, 16))
    expected = run_batch(isa.load(path), {"x": xs})
    image = load_image(path)
    monkeypatch.setattr(LayerTables, "build", _no_build)
    got = run_batch(image.program, {"x": xs}, tables=image.tables)
    np.testing.assert_array_equal(got.outputs["y"], expected.outputs["y"])
    assert got.runs == expected.runs


def test_entries_swapped_on_disk_are_not_taken_for_each_other(
    programs: Path, tmp_path: Path
) -> None:
    first, second = _program_file(tmp_path, 0, "a.eie"), _program_file(tmp_path, 1, "b.eie")
    load_image(first)
    (entry_a,) = programs.iterdir()
    load_image(second)
    (entry_b,) = [p for p in programs.iterdir() if p != entry_a]
    swap = tmp_path / "swap"
    entry_a.rename(swap)
    entry_b.rename(entry_a)
    swap.rename(entry_b)
    for path in (first, second):
        assert load_image(path).program == isa.load(path)
