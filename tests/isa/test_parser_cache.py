"""The parser is built once per grammar and cached on disk: reused, never stale, optional."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eiec.isa import parser

from .test_parser import CANONICAL


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache directory, and a fresh in-process parser before and after the test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    parser._lark.cache_clear()
    yield tmp_path / "xdg" / "eiec"
    parser._lark.cache_clear()


def _no_build(*args: object, **kwargs: object) -> None:
    raise AssertionError("the parser was built, not loaded")


def test_the_second_process_loads_the_saved_parser(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = parser.parse(CANONICAL)
    (saved,) = cache.iterdir()
    assert saved.name.startswith("isa-grammar-")
    parser._lark.cache_clear()  # as a new process would
    monkeypatch.setattr(parser.Lark, "__init__", _no_build)  # Lark.load does not call it
    assert parser.parse(CANONICAL) == program


def test_a_changed_grammar_gets_its_own_parser(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser.parse(CANONICAL)
    changed = tmp_path / "grammar.lark"
    changed.write_text(
        parser.GRAMMAR.read_text(encoding="utf-8").replace('VERSION: ".eie"', 'VERSION: ".eiv"'),
        encoding="utf-8",
    )
    monkeypatch.setattr(parser, "GRAMMAR", changed)
    parser._lark.cache_clear()
    assert parser.parse(CANONICAL.replace(".eie 1", ".eiv 1", 1)).layers
    assert len(list(cache.iterdir())) == 2


def test_a_corrupt_cache_file_is_rebuilt(cache: Path) -> None:
    program = parser.parse(CANONICAL)
    (saved,) = cache.iterdir()
    saved.write_bytes(b"not a pickle")
    parser._lark.cache_clear()
    assert parser.parse(CANONICAL) == program
    assert saved.read_bytes() != b"not a pickle"


def test_an_unwritable_cache_costs_only_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would go", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    parser._lark.cache_clear()
    try:
        assert parser.parse(CANONICAL).layers
        assert list(tmp_path.iterdir()) == [blocker]
    finally:
        parser._lark.cache_clear()


def test_a_parser_of_another_grammar_renamed_onto_the_entry_is_rebuilt(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = parser.parse(CANONICAL)
    (saved,) = cache.iterdir()
    changed = tmp_path / "grammar.lark"
    changed.write_text(
        parser.GRAMMAR.read_text(encoding="utf-8").replace('VERSION: ".eie"', 'VERSION: ".eiv"'),
        encoding="utf-8",
    )
    monkeypatch.setattr(parser, "GRAMMAR", changed)
    parser._lark.cache_clear()
    parser.parse(CANONICAL.replace(".eie 1", ".eiv 1", 1))
    (other,) = [p for p in cache.iterdir() if p != saved]
    other.replace(saved)  # the other grammar's parser under this grammar's key
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache.parent))
    parser._lark.cache_clear()
    assert parser.parse(CANONICAL) == program
