"""The CLI's promises: Ctrl-C anywhere exits 130 with outputs intact and no temporary files,
``-q`` prints nothing on success, ``python -m eiec`` works, tables fit 80 columns without
cutting a value, and a missing model is refused before TVM is imported."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from rich.console import Console
from rich.table import Table

from eiec.cli import main
from eiec.console import print_table
from eiec.emulator import Emulator, EmulatorConfig
from eiec.errors import UsageError
from eiec.isa import save
from tests.compiler.models import mlp
from tests.runtime.handmade import handmade_mlp

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits" / "digits_mlp.onnx"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    made = handmade_mlp(pes=4, samples=2)
    onnx.save(made.compressed, folder / "c.onnx")
    save(made.program, folder / "p.eie")
    np.save(folder / "x.npy", made.x)
    onnx.save(mlp([8, 6, 4], seed=1), folder / "m.onnx")
    return folder


def _leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def test_interrupt_while_writing_keeps_the_old_output(
    files: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = files / "f.eie"
    out.write_text("previous")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    assert main(["fmt", str(files / "p.eie"), "-o", str(out)]) == 130
    assert capsys.readouterr().err == "eiec fmt: interrupted\n"
    assert out.read_text() == "previous" and _leftovers(files) == []


def test_interrupt_surfacing_as_another_exception(
    files: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A native library may turn the KeyboardInterrupt of a SIGINT into its own error."""

    def native(*args: object, **kwargs: object) -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            raise RuntimeError("an error raised from a C++ callback") from None

    monkeypatch.setattr("eiec.commands.check.load", native)
    assert main(["check", str(files / "p.eie")]) == 130
    assert capsys.readouterr().err == "eiec check: interrupted\n"


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 1.0])  # the digits compile takes about 1.5 s
def test_ctrl_c_during_a_real_compile(tmp_path: Path, delay: float) -> None:
    out = tmp_path / "prog.eie"
    out.write_text("previous")
    process = subprocess.Popen(
        [sys.executable, "-m", "eiec", "compile", str(DIGITS), "-o", str(out), "-q"],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:  # finished before the signal
        pytest.skip("compile finished first")
    # TVM may log a C++ warning (a BlockBuilder left mid-block) before the line.
    assert process.returncode == 130 and "Traceback" not in err
    assert err.endswith("eiec compile: interrupted\n")
    assert out.read_text() == "previous" and _leftovers(tmp_path) == []


def test_quiet_prints_nothing(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prog, x = str(files / "p.eie"), str(files / "x.npy")
    for argv in (
        ["check", prog, "-q"],
        ["emulate", prog, "-i", x, "-q"],
        ["verify", str(files / "c.onnx"), prog, "-i", x, "-q"],
        ["compile", str(files / "m.onnx"), "-o", str(files / "o.eie"), "--pes", "2", "-q"],
    ):
        assert main(argv) == 0
        assert capsys.readouterr() == ("", ""), argv


def test_python_dash_m_eiec_refuses_a_missing_model_without_tvm(tmp_path: Path) -> None:
    code = (
        "import runpy, sys; sys.argv = ['eiec', 'compile', 'none.onnx', '-o', 'p.eie']\n"
        "try:\n    runpy.run_module('eiec', run_name='__main__')\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code == 1, exit_.code\n"
        "    assert 'tvm' not in sys.modules, 'tvm imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "eiec compile: error: none.onnx: model file not found (give the path of an .onnx file)\n"
    )


def _at(width: int, renderable: object) -> str:
    buffer = io.StringIO()
    print_table(renderable, Console(width=width, file=buffer))
    return buffer.getvalue()


def test_emulator_tables_fit_80_columns_uncut(files: Path) -> None:
    made = handmade_mlp(pes=4, samples=1)
    stats = Emulator(made.program, EmulatorConfig()).run({"input": made.x[:1]}).stats
    narrow = _at(80, stats.render())
    assert "…" not in narrow and max(map(len, narrow.splitlines())) <= 80
    assert "not shown" not in narrow
    for mac in stats.layers:
        assert f"{mac.cycles:,}" in narrow


def test_a_table_too_wide_drops_columns_and_says_which() -> None:
    table = Table(title="wide")
    for index in range(12):
        table.add_column(f"column{index}", no_wrap=True)
    table.add_row(*[f"{10**9 + index:,}" for index in range(12)])
    text = _at(80, table)
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    kept = [index for index in range(12) if f"{10**9 + index:,}" in text]
    assert kept == list(range(len(kept))) and 1 <= len(kept) < 12
    dropped = ", ".join(f"column{index}" for index in range(len(kept), 12))
    assert f"not shown at 80 columns: {dropped} (see --json)" in " ".join(text.split())


def test_options_without_effect_get_their_defaults_once_the_rule_holds() -> None:
    from eiec.cli import build_parser
    from eiec.commands.context import check_context

    args = build_parser().parse_args(["compile", "m.onnx", "-o", "p.eie", "--train", "t.npz"])
    check_context(args)
    assert (args.epochs, args.seed, args.max_accuracy_drop, args.input_range) == (10, 0, 0.5, None)
    args = build_parser().parse_args(["compile", "m.onnx", "-o", "p.eie", "--epochs", "3"])
    with pytest.raises(UsageError, match="--epochs has no effect without --train"):
        check_context(args)
