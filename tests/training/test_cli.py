"""``eiec compile --train`` from the command line: options, report, quiet, errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from eiec.cli import main
from tests.training.models import Digits

pytestmark = pytest.mark.slow


def test_compile_train_writes_the_stages_and_is_quiet_with_q(
    digits: Digits, tmp_path, capsys
) -> None:
    model = tmp_path / "dense.onnx"
    onnx.save(digits.model, model)
    data = tmp_path / "data.npz"
    np.savez(data, x=digits.train_x[:600], y=digits.train_y[:600])
    args = ["compile", str(model), "-o", str(tmp_path / "p.eie"), "--train", str(data)]
    args += ["--epochs", "2", "--pes", "4", "--sparsity", "0.8"]
    assert main([*args, "--report-json", str(tmp_path / "r.json"), "-q"]) == 0
    assert capsys.readouterr().out == ""
    training = json.loads((tmp_path / "r.json").read_text())["training"]
    assert [s["stage"] for s in training["stages"]][-1] == "emulated"
    assert training["objective"] == "cross_entropy"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Training (tvm" in out and "fine-tuned" in out and "emulated" in out


def test_sparsity_auto_needs_training_data(digits: Digits, tmp_path, capsys) -> None:
    model = tmp_path / "dense.onnx"
    onnx.save(digits.model, model)
    code = main(["compile", str(model), "-o", str(tmp_path / "p.eie"), "--sparsity", "auto"])
    assert code == 2
    assert capsys.readouterr().err == (
        "eiec compile: error: --sparsity auto has no effect without --train (auto picks each "
        "layer's sparsity by training: add --train DATA.npz, or give --sparsity S)\n"
    )


def test_epochs_out_of_range_is_a_usage_error(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["compile", "m.onnx", "-o", str(tmp_path / "p.eie"), "--epochs", "-1"])
    assert exit_.value.code == 2
    assert "--epochs" in capsys.readouterr().err


def test_validation_data_is_measured_and_all_of_data_trains(
    digits: Digits, tmp_path, capsys
) -> None:
    model = tmp_path / "dense.onnx"
    onnx.save(digits.model, model)
    data, validation = tmp_path / "data.npz", tmp_path / "val.npz"
    np.savez(data, x=digits.train_x[:400], y=digits.train_y[:400])
    np.savez(validation, x=digits.test_x[:150], y=digits.test_y[:150])
    args = ["compile", str(model), "-o", str(tmp_path / "p.eie"), "--train", str(data)]
    args += ["--epochs", "1", "--pes", "4", "--sparsity", "0.8", "-q"]
    report = tmp_path / "r.json"
    assert main([*args, "--validation", str(validation), "--report-json", str(report)]) == 0
    training = json.loads(report.read_text())["training"]
    assert (training["samples"], training["held_out_samples"]) == (400, 150)
    assert main([*args, "--report-json", str(report)]) == 0  # without: 20% of DATA held out
    training = json.loads(report.read_text())["training"]
    assert (training["samples"], training["held_out_samples"]) == (320, 80)
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, x=digits.test_x[:150])
    assert main([*args, "--validation", str(unlabelled)]) == 1
    assert capsys.readouterr().err == (
        f"eiec compile: error: {unlabelled}: {data} has labels (y) but {unlabelled} has none "
        "(give labels in both files, or in neither)\n"
    )


def test_validation_needs_training_data(digits: Digits, tmp_path, capsys) -> None:
    model = tmp_path / "dense.onnx"
    onnx.save(digits.model, model)
    validation = tmp_path / "val.npz"
    np.savez(validation, x=digits.test_x[:150], y=digits.test_y[:150])
    args = ["compile", str(model), "-o", str(tmp_path / "p.eie"), "--validation", str(validation)]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "eiec compile: error: --validation has no effect without --train (add --train "
        "DATA.npz, or leave out --validation)\n"
    )
