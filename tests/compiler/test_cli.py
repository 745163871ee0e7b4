"""``eiec compile``: outputs written, report JSON keys, sparsity parsing, errors exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from eiec.cli import main
from eiec.commands.options import parse_sparsity
from eiec.errors import CompileError
from eiec.isa import load

from .models import mlp

KEYS = {
    "name", "shape", "weight_density", "padding_entries", "stored_bytes", "dense_bytes",
    "compression_ratio", "huffman_bytes", "huffman_compression_ratio",
}  # fmt: skip


def test_compile_writes_program_model_and_report(tmp_path: Path, capsys) -> None:
    model = tmp_path / "mlp.onnx"
    onnx.save(mlp([24, 16, 4], seed=9), model)
    prog, out, report = tmp_path / "p.eie", tmp_path / "c.onnx", tmp_path / "r.json"
    code = main([
        "compile", str(model), "-o", str(prog), "--pes", "4", "--sparsity", "fc0=0.5,*=0.75",
        "--bits", "3", "--export-onnx", str(out), "--report-json", str(report),
    ])  # fmt: skip
    assert code == 0
    program = load(prog)
    assert program.machine.pes == 4 and list(program.layers) == ["fc0", "fc1"]
    data = json.loads(report.read_text())
    assert [layer["name"] for layer in data["layers"]] == ["fc0", "fc1"]
    assert all(set(layer) >= KEYS for layer in data["layers"]) and set(data["total"]) >= KEYS
    assert data["layers"][0]["weight_density"] == 0.5
    assert data["layers"][1]["weight_density"] == 0.25
    compressed = onnx.load(out)
    # The exported model keeps the batch dimension and runs a batch.
    x = __import__("numpy").ones((3, 24), dtype="float32")
    assert ReferenceEvaluator(compressed).run(None, {"input": x})[0].shape == (3, 4)
    assert "fc0" in capsys.readouterr().out


def test_compile_errors_exit_1(tmp_path: Path, capsys) -> None:
    assert main(["compile", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "p.eie")]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"eiec compile: error: {tmp_path / 'none.onnx'}: model file not found (give the path "
        "of an .onnx file)\n"
    )
    assert not (tmp_path / "p.eie").exists()


def test_parse_sparsity() -> None:
    assert parse_sparsity("0.8") == (0.8, 0.9)
    assert parse_sparsity("fc1=0.5, /fc2/Gemm=0.7") == ({"fc1": 0.5, "/fc2/Gemm": 0.7}, 0.9)
    assert parse_sparsity("fc1=0.5,*=0.6") == ({"fc1": 0.5}, 0.6)
    with pytest.raises(CompileError) as info:
        parse_sparsity("fc1=2")
    assert str(info.value) == "--sparsity fc1=2: '2' is not a number in [0, 1]"


def test_a_layer_that_does_not_fit_is_streamed_with_a_note(tmp_path: Path, capsys) -> None:
    model, prog, report = tmp_path / "mlp.onnx", tmp_path / "p.eie", tmp_path / "r.json"
    onnx.save(mlp([256, 128, 10], seed=1), model)
    small = ["--pes", "4", "--spmat-sram", "2048", "--sparsity", "0.5"]
    code = main(["compile", str(model), "-o", str(prog), *small, "--report-json", str(report)])
    assert code == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eiec compile: note: streaming fc0 in ")
    program = load(prog)
    assert program.layers["fc0"].chunks is not None and program.layers["fc1"].chunks is None
    (streamed,) = json.loads(report.read_text())["streaming"]
    assert streamed["layer"] == "fc0" and streamed["cycles"] >= streamed["transfer_cycles"]
    assert "weights" not in program.origin.options  # auto, the default, is not recorded
    code = main(["compile", str(model), "-o", str(prog), *small, "--weights", "sram", "-q"])
    assert code == 1
    assert "layer fc0: does not fit the sparse-matrix SRAM" in capsys.readouterr().err
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).normal(size=(1, 256)).astype(np.float32))
    assert (
        main(["compile", str(model), "-o", str(prog), *small[:2], "--weights", "dram", "-q"]) == 0
    )
    assert all(layer.chunks is not None for layer in load(prog).layers.values())
    capsys.readouterr()
    assert main(["emulate", str(prog), "-i", str(x), "--json", "--dram-gbps", "0.5"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["dram_bytes"] > 0 and stats["dram_stall_cycles"] > 0
    assert [t["memory_bound"] for t in stats["layer_totals"]] == [True, True]
    assert stats["cycles"] >= stats["dram_bytes"] / (0.5 * 1000 / 800)
