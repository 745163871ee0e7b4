"""A PASS means the result is right: saturation and uninformative tolerances fail with a reason."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest

from eiec.emulator.bounds import Saturation
from eiec.errors import InputError
from eiec.runtime.verify import MAX_RELATIVE_TOLERANCE, VerifyReport, compare_values, verify

from .handmade import handmade_mlp


def test_an_input_beyond_its_format_fails_as_saturation_not_rounding() -> None:
    made = handmade_mlp()  # the input buffer has 14 fraction bits: |x| < 2
    x = made.x.copy()
    x[2, 5] = 3.0
    report = verify(made.compressed, made.program, x)
    assert not report.passed
    assert report.saturated_outputs > 0
    assert report.problems[0].startswith(
        f"output 'logits': {report.saturated_outputs} of 60 elements depend on words that "
        "saturated (the first at input 'input' (buffer 'input')); the first such element: "
        "index (2, "
    )
    assert report.problems[0].endswith(
        "a clamped value is not a rounding error, so they are not checked: compile with "
        "--calibration on representative inputs (its formats hold at least 1.5x the largest "
        "value the samples reach), or with an --input-range that holds every input"
    )
    # The saturated elements are not checked, so not reported as beyond their bounds too,
    # nor counted in the worst error/bound of the checked ones.
    assert not any("exceed their error bound" in p for p in report.problems)
    assert report.worst_error_to_tolerance <= 1.0
    assert verify(made.compressed, made.program, made.x).passed


def test_a_clamped_writeback_is_left_out_of_the_worst_error_to_bound() -> None:
    made = handmade_mlp()
    program = made.program
    program.buffers["logits"] = replace(program.buffers["logits"], frac=15)  # |y| < 1
    report = verify(made.compressed, program, made.x)
    assert not report.passed
    assert report.saturated_outputs > 0
    assert report.max_abs_error_vs_compressed > 0.1  # a clamped logit is far from the CPU's
    assert report.worst_error_to_tolerance <= 1.0  # the checked ones are within their bounds


def test_an_accumulator_overflow_fails_asking_for_a_wider_accumulator() -> None:
    made = handmade_mlp()
    program = made.program
    program.machine = replace(program.machine, acc_bits=17)  # narrower than the compile's
    report = verify(made.compressed, program, made.x)
    assert not report.passed
    assert report.saturated_outputs > 0
    assert report.problems[0] == (
        f"output 'logits': {report.saturated_outputs} of 60 elements depend on words that "
        "saturated (the first at instruction 2 (sparse-column-mac fc1), buffer 'accumulators "
        "of fc1'); the first such element: index (0, 0), emulator 0.00195312, CPU 0.675355; a "
        "clamped value is not a rounding error, so they are not checked: compile with a wider "
        "accumulator (--acc-bits; the paper's chip: 48)"
    )


def test_a_tolerance_beyond_two_percent_of_the_output_range_fails() -> None:
    made = handmade_mlp()
    program = made.program
    program.buffers["logits"] = replace(program.buffers["logits"], frac=2)  # rounds by 1/8
    report = verify(made.compressed, program, made.x)
    assert not report.passed
    assert report.relative_tolerance > MAX_RELATIVE_TOLERANCE
    assert report.saturated_outputs == 0
    assert report.problems == [
        f"output 'logits': the tolerance {report.tolerance:.3g} is "
        f"{report.relative_tolerance:.1%} of the output's range {report.output_range:.3g}, "
        "more than 2%, so this check cannot tell a right result from a wrong one: compile "
        "with --calibration on representative inputs (formats fitted to their ranges), or a "
        "smaller --input-range"
    ]
    assert report.to_json()["relative_tolerance"] == report.relative_tolerance


# --- the one rule: no PASS without a meaningful check (runtime.verify.untrusted) -------------


def _compare(
    got: np.ndarray, want: np.ndarray, bound: np.ndarray, first: Saturation | None = None
) -> VerifyReport:
    report = VerifyReport(samples=2, outputs=["y"])
    compare_values(report, "y", got, want, bound, axis=0, first_unbounded=first)
    return report


WANT = np.array([[0.0, 0.5, -1.0], [1.0, 0.25, 0.0]], np.float32)


@pytest.mark.parametrize(
    ("value", "text"), [(np.nan, "is NaN (1 of 6"), (np.inf, "is infinite (1 of 6")]
)
def test_a_non_finite_tolerance_fails_naming_where_the_bound_overflowed(
    value: float, text: str
) -> None:
    bound = np.full(WANT.shape, 1e-3)
    bound[1, 2] = value
    first = Saturation(7, "instruction 7 (ew-mul c[0], act[2], c[0]), buffer 'c'", 1)
    report = _compare(WANT + 1e-4, WANT, bound, first)
    assert not report.passed
    assert report.problems == [
        f"output 'y': the tolerance of element (1, 2) {text} elements): the error bound "
        "overflowed first at instruction 7 (ew-mul c[0], act[2], c[0]), buffer 'c', so these "
        "elements are not checked: compile with --calibration on representative inputs "
        "(formats fitted to their ranges); if it persists, the bound's rule for that "
        "instruction (eiec.emulator.bounds) is too loose for it"
    ]
    assert "tolerance nan" in report.summary() or "tolerance inf" in report.summary()
    json.dumps(report.to_json(), allow_nan=False)  # no NaN/Infinity in the JSON


def test_a_nan_tolerance_fails_even_where_every_element_is_right() -> None:
    # max(0.0, nan) == 0.0 and error > nan is False: the old comparison passed this.
    report = _compare(WANT, WANT, np.full(WANT.shape, np.nan))
    assert not report.passed
    assert report.to_json()["tolerance"] == "nan"


def test_a_zero_tolerance_fails() -> None:
    report = _compare(WANT, WANT, np.zeros(WANT.shape))
    assert not report.passed
    assert report.problems == [
        "output 'y': the tolerance is 0 (every element's error bound vanished), so a check "
        "would only accept an exact match: the bound has lost its terms (an all-zero run?); "
        "verify on inputs that exercise the model"
    ]


def test_non_finite_values_on_either_side_fail() -> None:
    got = WANT.copy()
    got[0, 1] = np.inf
    want = WANT.copy()
    want[1, 0] = np.nan
    report = _compare(got, want, np.full(WANT.shape, 1e-3))
    assert not report.passed
    assert report.problems[0].startswith(
        "output 'y': the emulator gives inf at index (0, 1) (1 non-finite values)"
    )
    assert report.problems[1].startswith(
        "output 'y': the CPU model gives nan at index (1, 0) (1 non-finite values), so it "
        "cannot be compared: the model overflowed its dtype"
    )


def test_a_constant_zero_reference_fails() -> None:
    zeros = np.zeros(WANT.shape, np.float32)
    report = _compare(zeros, zeros, np.full(WANT.shape, 1e-3))
    assert not report.passed
    assert "the CPU model's output is constant 0 over the batch" in report.problems[0]


def test_huge_inputs_fail_clearly_without_numpy_warnings() -> None:
    made = handmade_mlp()
    x = made.x.astype(np.float64)
    x[1, 3] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError) as error:
            verify(made.compressed, made.program, x)
        assert str(error.value) == (
            "input 'input' holds 1e+300 at index (1, 3), beyond the range of float32 "
            "(+-3.4e+38) that the model computes in, so the CPU reference cannot be computed "
            "(give inputs in the range the model was made for)"
        )
        x[1, 3] = 1e30  # float32 holds it: the input saturates its 16-bit buffer
        report = verify(made.compressed, made.program, x)
    assert not report.passed
    assert report.saturated_outputs == 10
    assert "nan" not in report.summary()
    assert report.problems[0].startswith("output 'logits': 10 of 60 elements depend on words")


def test_a_saturated_element_is_one_problem_naming_its_values() -> None:
    # A clamped element is not checked against its bound: the saturation is its one problem
    # (with where it is and both values), not also an error beyond the bound.
    got, want = np.array([[0.5, -4.0], [0.25, 1.0]]), np.array([[0.5, -4.024], [0.25, 1.0]])
    bound = np.full(got.shape, 1e-3)
    saturated = np.array([[False, True], [False, False]])
    report = VerifyReport(samples=2, outputs=["y"])
    compare_values(report, "y", got, want, bound, axis=0, saturated=saturated)
    assert not report.passed
    assert len(report.problems) == 1
    assert (
        "1 of 4 elements depend on words that saturated; the first such element: index "
        in (report.problems[0])
    )
    assert "(0, 1), emulator -4, CPU -4.024;" in report.problems[0]
    unsaturated = VerifyReport(samples=2, outputs=["y"])
    compare_values(unsaturated, "y", got, want, bound, axis=0)
    assert "exceed their error bound" in unsaturated.problems[0]
