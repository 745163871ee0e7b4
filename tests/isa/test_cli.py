"""``eiec check`` and ``eiec fmt``, and ``eiec.isa.load`` / ``save``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eiec.cli import main
from eiec.errors import IsaError
from eiec.isa import format_program, load, parse, save

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FC = GOLDEN / "valid" / "fc_bias_relu.eie"
LSTM = GOLDEN / "valid" / "lstm_two_steps.eie"


def test_check_valid_program(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(LSTM)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{LSTM}: ok (1 layer, 32 entries, 2 PEs, 28 instructions)\n"
    assert err == ""


def test_check_invalid_program(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.eie"
    path.write_text(
        FC.read_text(encoding="utf-8").replace("relu-writeback y", "relu-writeback x[0]")
    )
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"eiec check: error: {path}:28:5: relu-writeback x[0]: x[0] covers 3 words, layer fc has "
        "rows = 4\n"
    )


def test_check_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "absent.eie"
    assert main(["check", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"eiec check: error: {path}: cannot read the program: No such file or directory\n"
    )


def test_check_without_a_program_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["check"])
    assert caught.value.code == 2
    assert "the following arguments are required: PROG.eie" in capsys.readouterr().err


def test_fmt_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fmt", str(FC)]) == 0
    assert capsys.readouterr().out == format_program(parse(FC.read_text(encoding="utf-8")))


def test_fmt_to_file_formats_unverified_programs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "in.eie"
    # Parses but breaks a verifier rule (no halt): fmt formats, check rejects.
    source.write_text(FC.read_text(encoding="utf-8").replace("    halt\n", ""))
    out = tmp_path / "out.eie"
    assert main(["fmt", str(source), "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert out.read_text(encoding="utf-8").endswith("    relu-writeback y\n")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_fmt_syntax_error_leaves_output_untouched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "in.eie"
    source.write_text(".eie 1\n.machin\n")
    out = tmp_path / "out.eie"
    out.write_text("previous")
    assert main(["fmt", str(source), "-o", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"eiec fmt: error: {source}:2:1: unexpected '.machin'; expected '.machine'\n"
    )
    assert out.read_text() == "previous"


def test_load_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.eie"
    path.write_bytes(b".eie 1\n; caf\xe9\n")
    with pytest.raises(IsaError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: not UTF-8 text: byte 0xe9 at offset 12"


def test_save_then_load(tmp_path: Path) -> None:
    program = load(LSTM)
    path = tmp_path / "lstm.eie"
    save(program, path)
    assert load(path) == program
    assert path.read_text(encoding="utf-8") == format_program(program)


def test_console_script_smoke(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eiec.cli", "check", str(FC)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{FC}: ok (1 layer, 8 entries, 2 PEs, 5 instructions)\n"
