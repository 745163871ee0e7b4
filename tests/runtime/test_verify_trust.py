"""A PASS means the result is right: saturation and uninformative tolerances fail with a reason."""

from __future__ import annotations

from dataclasses import replace

from eiec.runtime.verify import MAX_RELATIVE_TOLERANCE, verify

from .handmade import handmade_mlp


def test_an_input_beyond_its_format_fails_as_saturation_not_rounding() -> None:
    made = handmade_mlp()  # the input buffer has 14 fraction bits: |x| < 2
    x = made.x.copy()
    x[2, 5] = 3.0
    report = verify(made.compressed, made.program, x)
    assert not report.passed
    assert report.saturated_outputs > 0
    assert report.problems[0] == (
        f"output 'logits': {report.saturated_outputs} of 60 elements depend on words that "
        "saturated (the first at input 'input' (buffer 'input')); a clamped value is not a "
        "rounding error, so they are not checked: compile with --calibration on "
        "representative inputs, or with an --input-range that holds every input"
    )
    assert verify(made.compressed, made.program, made.x).passed


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
