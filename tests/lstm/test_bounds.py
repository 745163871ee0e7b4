"""The error bound through a recurrence (eiec.emulator.bounds, FIXED_POINT.md "Through
recurrences"): finite and informative over long sequences, never failing a correct emulation
(against onnx.reference and TVM's CPU build), and failing a corrupted program."""

from __future__ import annotations

import re
import warnings

import numpy as np
import onnx
import pytest
from gru_models import gru_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lstm_models import LstmSpec, lstm_model, reference

from eiec.compiler import CompileOptions, CompileResult, compile_model
from eiec.emulator import bounds
from eiec.emulator.bounds import TableFunction
from eiec.isa import format_program, load_bytes
from eiec.isa.program import Program
from eiec.runtime.verify import (
    MAX_RELATIVE_TOLERANCE,
    VerifyReport,
    compare_values,
    emulate_with_bounds,
    verify,
)

INPUTS = 12


def _model(hidden: int, steps: int, seed: int) -> onnx.ModelProto:
    """A forward LSTM(INPUTS, hidden) returning Y, PyTorch's initialisation (U(+-1/sqrt(H)))."""
    return lstm_model(
        [LstmSpec(hidden)],
        seq=steps,
        inputs=INPUTS,
        outputs=("Y",),
        seed=seed,
        scale=1.0 / np.sqrt(hidden),
    )


def _compile(
    model: onnx.ModelProto, steps: int, seed: int, *runs: np.ndarray, pes: int = 8
) -> CompileResult:
    """Compiled with formats calibrated on 8 other sequences and the ``runs`` to come."""
    others = np.random.default_rng(seed + 100).normal(size=(steps, 8, INPUTS))
    calibration = np.concatenate([others, *runs], axis=1).astype(np.float32)
    return compile_model(model, CompileOptions.of(pes=pes, sparsity=0.6, calibration=calibration))


def _sequence(steps: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(steps, 1, INPUTS)).astype(np.float32)


@pytest.fixture(scope="module")
def speech_like() -> tuple[CompileResult, np.ndarray]:
    """LSTM(12, 32) over 29 frames (a JapaneseVowels-sized recurrence)."""
    x = _sequence(29, seed=4)
    return _compile(_model(32, 29, seed=3), 29, 3, x), x


def test_the_bound_stays_finite_and_informative_over_29_steps(
    speech_like: tuple[CompileResult, np.ndarray],
) -> None:
    # The worst case of every step compounded to NaN here (verify then PASSED, unchecked).
    result, x = speech_like
    report = verify(result.compressed_model, result.program, {"X": x})
    assert report.passed, report.summary()
    assert np.isfinite(report.tolerance) and report.tolerance > 0
    assert report.relative_tolerance <= MAX_RELATIVE_TOLERANCE
    assert report.worst_error_to_tolerance < 1


def test_the_check_is_centred_on_the_known_roundings() -> None:
    # Y is an ew-mul's result: its error is largely the roundings the probe knows with their
    # signs (k; inputs of +-12 leave h 10 fraction bits), the rest within 6 spreads of them.
    # The emulator's result mirrored about the reference is as far from it (within
    # |k| + 6 s') but its roundings have the wrong sign: the centred check fails it.
    x = 4 * _sequence(29, seed=3)
    result = _compile(_model(32, 29, seed=3), 29, 3, x)
    run = emulate_with_bounds(result.program, {"X": x})
    (want,) = reference(result.compressed_model, {"X": x})
    got, bound, centre = run.outputs["Y"].astype(np.float64), run.bounds["Y"], run.centres["Y"]
    width = bound - np.abs(centre)
    assert (np.abs(got - want - centre) <= width).all()
    mirrored = 2 * want - got
    assert (np.abs(mirrored - want) <= bound).all()  # the symmetric tolerance would pass it
    for values, passed in ((got, True), (mirrored, False)):
        report = VerifyReport(samples=1, outputs=["Y"])
        compare_values(report, "Y", values, want, bound, 1, centre=centre)
        assert (not report.problems) is passed, report.problems
        assert (report.worst_error_to_tolerance < 1) is passed
    assert "outside" in report.problems[0] and "known roundings" in report.problems[0]


def test_a_bound_that_overflows_fails_naming_the_instruction(
    speech_like: tuple[CompileResult, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sigmoid rule whose slope is NaN (as 0 * inf gives): the bound must not be 0 or pass.
    result, x = speech_like
    broken = TableFunction(0.0, 1.0, lambda lo, hi: np.full_like(lo, np.nan))
    monkeypatch.setitem(bounds.TABLE_SHAPES, "sigmoid", broken)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = verify(result.compressed_model, result.program, {"X": x})
    assert not report.passed
    assert report.tolerance == np.inf
    assert len(report.problems) == 1
    assert report.problems[0].startswith(
        "output 'Y': the tolerance of element (0, 0, 0, 0) is infinite (928 of 928 elements): "
        "the error bound overflowed first at instruction 4 (ew-lut lstm0.act[0], "
        "lstm0.gates[0], sigmoid), buffer 'lstm0.act', so these elements are not checked"
    )


def _corrupted(program: Program, pattern: str, replace: str) -> Program:
    """The program re-read from its text with one header line edited."""
    text = format_program(program)
    edited, count = re.subn(pattern, replace, text, count=1, flags=re.MULTILINE)
    assert count == 1, pattern
    return load_bytes(edited.encode(), "corrupted.eie")


def _sigmoid_sample_at_zero(program: Program) -> tuple[str, str]:
    """The .table sigmoid line with its sample at x = 0 (0.5 = 8192) moved to 0.53."""
    table = program.tables["sigmoid"]
    index = round(-table.lo * 2.0**-table.step_log2)
    values = table.values.astype(int).tolist()
    assert values[index] == 8192
    values[index] = 8684
    line = (
        f".table sigmoid fn=sigmoid lo={table.lo:g} step_log2={table.step_log2} "
        f"frac={table.frac} values=[{', '.join(map(str, values))}]"
    )
    return r"^\.table sigmoid .*$", line


@pytest.mark.parametrize(
    "corruption",
    ["sigmoid table entry", "tanh table format", "codebook format"],
)
def test_a_corrupted_lstm_program_fails(
    speech_like: tuple[CompileResult, np.ndarray], corruption: str
) -> None:
    result, x = speech_like
    program = result.program
    frac = program.layers["lstm0"].codebook.frac
    edit = {
        "sigmoid table entry": _sigmoid_sample_at_zero(program),
        # tanh values read with one fraction bit less: twice as large.
        "tanh table format": (r"^(\.table tanh .*frac=)14", r"\g<1>13"),
        # The gate weights read with one fraction bit less: twice as large.
        "codebook format": (rf"^\.codebook frac={frac} ", f".codebook frac={frac - 1} "),
    }[corruption]
    broken = _corrupted(program, *edit)
    report = verify(result.compressed_model, broken, {"X": x})
    assert not report.passed
    assert any("exceed their error bound" in p for p in report.problems), report.summary()


# --- property: random LSTMs and sequences ---------------------------------------------------


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hidden=st.sampled_from([4, 16, 40, 64]),
    steps=st.integers(2, 40),
    seed=st.integers(0, 2**16),
    gain=st.sampled_from([1.0, 2.0, 3.0]),
    cell=st.sampled_from(["LSTM", "GRU", "GRU linear_before_reset"]),
)
def test_random_recurrences_are_within_their_bound_of_onnx_reference(
    hidden: int, steps: int, seed: int, gain: float, cell: str
) -> None:
    # gain 2, 3: recurrent weights 2-3x PyTorch's initial scale, nearer a trained layer's.
    spec = (
        LstmSpec(hidden)
        if cell == "LSTM"
        else gru_spec(hidden, linear_before_reset=int(cell.endswith("reset")))
    )
    model = lstm_model(
        [spec],
        seq=steps,
        inputs=INPUTS,
        outputs=("Y",),
        seed=seed,
        scale=gain / np.sqrt(hidden),
    )
    varying = _sequence(steps, seed + 1)
    constant = np.repeat(varying[:1], steps, axis=0)  # errors that repeat step after step
    result = _compile(model, steps, seed, varying, constant)
    for x in (varying, constant):
        run = emulate_with_bounds(result.program, {"X": x})
        (want,) = reference(result.compressed_model, {"X": x})
        assert run.stats.saturations == 0
        bound, centre = run.bounds["Y"], run.centres["Y"]
        assert np.isfinite(bound).all() and (bound > 0).all()
        # As verify checks: within bound - |centre| of the known roundings (the centre).
        off = np.abs(run.outputs["Y"].astype(np.float64) - want - centre)
        assert (off <= bound - np.abs(centre)).all(), float((off / bound).max())


@pytest.mark.slow
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hidden=st.sampled_from([16, 64]), steps=st.integers(10, 40), seed=st.integers(0, 2**16))
def test_random_lstms_verify_against_tvm(hidden: int, steps: int, seed: int) -> None:
    x = _sequence(steps, seed + 1)
    result = _compile(_model(hidden, steps, seed), steps, seed, x)
    report = verify(result.compressed_model, result.program, {"X": x})
    assert not any("exceed" in p for p in report.problems), report.summary()
    assert np.isfinite(report.tolerance) and report.tolerance > 0
