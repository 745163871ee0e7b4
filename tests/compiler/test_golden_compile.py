"""Golden compiler tests: each model in tests/golden/compile compiles to its expected program text.

The cases, their options and the expected ``.eie`` files are written by
``tests/golden/compile/regenerate.py``; a compiler change that changes the output shows as a
diff of those files in review (regenerate, then read the diff).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import onnx
import pytest

from eiec.compiler import CompileOptions, compile_model
from eiec.isa import format_program

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "compile"
CASES = sorted(path.stem for path in GOLDEN.glob("*.onnx"))


def test_every_case_has_its_options_and_program() -> None:
    assert CASES == ["gemm_relu_gemm", "gru_head", "lstm_head", "matmul_add_flatten"]
    for name in CASES:
        assert (GOLDEN / f"{name}.options.json").is_file()
        assert (GOLDEN / f"{name}.eie").is_file()


@pytest.mark.parametrize("name", CASES)
def test_compiles_to_the_golden_program(name: str) -> None:
    options = CompileOptions.of(**json.loads((GOLDEN / f"{name}.options.json").read_text()))
    model = onnx.load(str(GOLDEN / f"{name}.onnx"))
    actual = format_program(compile_model(model, options).program)
    expected = (GOLDEN / f"{name}.eie").read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            f"{name}.eie (golden)",
            f"{name}.eie (compiled)",
        )
    )
    assert actual == expected, (
        f"{name} compiles to a different program; if the change is intended, run "
        f"tests/golden/compile/regenerate.py and review the diff:\n{diff}"
    )
