"""Properties: random valid programs verify and round-trip; mutated or garbage text only ever
raises eiec's own errors, and whatever still parses prints back to itself."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import programs

from eiec.errors import EiecError
from eiec.isa import format_program, parse, verify
from eiec.isa.program import Program

VALID = sorted((Path(__file__).resolve().parents[1] / "golden" / "valid").glob("*.eie"))
TEXTS = [p.read_text(encoding="utf-8") for p in VALID]


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_valid_programs_verify_and_round_trip(program: Program) -> None:
    verify(program)
    text = format_program(program)
    again = parse(text)
    assert again == program
    assert format_program(again) == text
    verify(again)


def _survives(text: str) -> None:
    """Parse and verify ``text``: only EiecErrors may escape, and a parsed program round-trips."""
    try:
        program = parse(text, source="mutant.eie")
    except EiecError:
        return
    with contextlib.suppress(EiecError):
        verify(program)
    try:
        printed = format_program(program)
    except EiecError:
        return
    again = parse(printed)
    assert again == program
    assert format_program(again) == printed


@st.composite
def _mutants(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TEXTS))
    kind = draw(st.sampled_from(["flip", "truncate", "delete-token", "duplicate-line", "insert"]))
    if kind == "flip":
        data = bytearray(text.encode("utf-8"))
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        return data.decode("utf-8", errors="replace")
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "duplicate-line":
        lines = text.splitlines(keepends=True)
        at = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[: at + 1] + lines[at:])
    tokens = text.split(" ")
    at = draw(st.integers(0, len(tokens) - 1))
    if kind == "delete-token":
        return " ".join(tokens[:at] + tokens[at + 1 :])
    junk = draw(
        st.sampled_from(["#1", "x[0]", ",", "-", "[", "0", "-1", "ff", ".pe", "halt", "=", "\n"])
    )
    return " ".join([*tokens[:at], junk, *tokens[at:]])


@settings(max_examples=400, deadline=None)
@given(_mutants())
def test_mutated_programs_raise_only_eiec_errors(text: str) -> None:
    _survives(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_garbage_text_raises_only_eiec_errors(text: str) -> None:
    _survives(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TEXTS), st.text(alphabet=".eimnprtx0123456789abf=[],#- \n;", max_size=40))
def test_valid_prefix_with_random_tail_raises_only_eiec_errors(text: str, tail: str) -> None:
    lines = text.splitlines(keepends=True)
    _survives("".join(lines[: len(lines) // 2]) + tail)
