"""The named bad inputs of the corpus (tests/reliability/corpus.py), each with its full message,
and the fast part of the corpus: every case clean (no traceback, no input overwritten, nothing
nonsensical accepted, nothing left behind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eiec.cli import main

from .corpus import Case, build_fixtures, cases, run_case
from .corpus_io import io_cases

CASES = cases()
NAMED = [case for case in CASES if case.message is not None and not case.slow]
#: The fast cases that never import TVM: paths, options, arrays and programs (the first ten
#: mutated programs here; the corpus script runs them all).
FAST = [
    case for case in CASES
    if not case.slow and case.argv and case.argv[0] in ("check", "fmt", "emulate")
    and not any(f"mutated program {n}" in case.name for n in range(10, 100))
]  # fmt: skip


#: The input/output cases (corpus_io) run in this process before any TVM import: paths,
#: options without effect, machine files and fields (their processes run in the script).
IO_FAST = [case for case in io_cases() if not case.slow and case.call is None]
#: The other input/output cases: API calls and the caches here, a process each for closed
#: pipes, full disks, ``ulimit -f``, FIFOs and SIGTERM (marked slow).
IO_CALLS = [case for case in io_cases() if case.call is not None]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus")
    build_fixtures(path)
    return path


def test_the_corpus_has_every_category_and_command() -> None:
    assert len(CASES) >= 300
    assert {c.category for c in CASES} >= {
        "path", "overwrite", "option", "model", "dtype", "size", "capacity", "array", "program",
        "byoc",
    }  # fmt: skip
    commands = {c.argv[0] for c in CASES if c.argv}
    assert commands >= {"compile", "emulate", "verify", "run", "check", "fmt"}


@pytest.mark.parametrize("case", NAMED, ids=[c.name for c in NAMED])
def test_named_case_message(case: Case, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(case.args(folder))
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == case.code
    expected = case.message.replace("{d}", str(folder))
    if code == 2:  # argparse: the usage, then the message
        assert err.splitlines()[-1] == expected
    else:
        assert err == expected + "\n"


@pytest.mark.parametrize("case", FAST, ids=[c.name for c in FAST])
def test_fast_case_is_clean(case: Case, folder: Path) -> None:
    outcome = run_case(case, folder)
    assert outcome.verdict == "clean", (outcome.detail, outcome.err)


@pytest.mark.parametrize("case", IO_FAST, ids=[c.name for c in IO_FAST])
def test_io_case_is_clean(case: Case, folder: Path) -> None:
    outcome = run_case(case, folder)
    assert outcome.verdict == "clean", (outcome.detail, outcome.err)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.slow)
        if case.slow or case.category in ("stdout", "blocking input", "signal")
        else case
        for case in IO_CALLS
    ],
    ids=[c.name for c in IO_CALLS],
)
def test_io_call_is_clean(case: Case, folder: Path) -> None:
    outcome = run_case(case, folder)
    assert outcome.verdict == "clean", (outcome.detail, outcome.err)
