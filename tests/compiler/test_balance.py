"""Load-balance-aware pruning (ESE, --balance) and the machine as compile options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from eiec.cli import main
from eiec.compiler import CompileOptions, compile_model
from eiec.errors import MachineError
from eiec.isa import load
from eiec.passes.prune_weights import per_pe_counts, prune_balanced, prune_magnitude, row_owners

from .models import gemm_model

LSTM = Path(__file__).resolve().parents[2] / "examples" / "lstm" / "lstm.onnx"


def _skewed(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Weights whose rows on PE 0 (of 4) are three times larger: magnitude pruning keeps them."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(rows, cols)).astype(np.float32)
    w[0::4] *= 3
    return w


def test_balanced_pruning_gives_every_pe_the_same_density() -> None:
    w = _skewed(16, 40)
    owners = row_owners(w, 4)
    plain = per_pe_counts(prune_magnitude(w, 0.75), owners, 4)
    even = per_pe_counts(prune_balanced(w, 0.75, owners), owners, 4)
    assert plain.sum() == even.sum() == 160
    assert plain[0] > 2 * plain[1:].max()  # PE 0 keeps most of its large weights
    assert even.tolist() == [40, 40, 40, 40]
    # Within each PE, still by magnitude: PE 1 keeps its 40 largest weights.
    mine = np.abs(w[1::4]).ravel()
    kept = np.abs(prune_balanced(w, 0.75, owners)[1::4]).ravel()
    assert np.sort(kept[kept > 0]).tolist() == np.sort(mine)[-40:].tolist()


def test_lstm_rows_belong_to_the_pe_of_their_unit() -> None:
    # (D, 4H, K) with H = 3 on 2 PEs: gate row g*H + u on PE u mod 2.
    assert row_owners(np.zeros((2, 12, 5)), 2, hidden=3).tolist() == [0, 1, 0] * 8
    # A GRU's (D, 3H, K) with H = 4: three gates of units 0..3 per direction.
    assert row_owners(np.zeros((1, 12, 5)), 2, hidden=4).tolist() == [0, 1, 0, 1] * 3


def test_compile_with_balance_reports_per_pe_counts() -> None:
    model = gemm_model(_skewed(16, 40).T.copy(), None, trans_b=0)
    plain = compile_model(model, CompileOptions.of(pes=4, sparsity=0.75))
    even = compile_model(model, CompileOptions.of(pes=4, sparsity=0.75, balance=True))
    (before,), (after,) = plain.report.pruning, even.report.pruning
    assert (before.pe_max_before, before.pe_mean_before) == (160, 160.0)
    assert before.pe_max_after > 1.5 * before.pe_mean_after
    assert (after.pe_max_after, after.pe_mean_after) == (40, 40.0)
    # 4 local rows per PE: no padding, so the stored entries are the kept weights.
    layer = next(iter(even.program.layers.values()))
    assert layer.entries_per_pe.tolist() == [40] * 4
    assert even.report.to_json()["pruning"][0]["pe_max_after"] == 40


@pytest.mark.slow
def test_lstm_compiles_balanced() -> None:
    result = compile_model(str(LSTM), CompileOptions.of(pes=2, sparsity=0.5, balance=True))
    (stats,) = result.report.pruning
    assert stats.pe_max_after == stats.pe_mean_after


def test_machine_options_reach_the_program(tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(gemm_model(_skewed(16, 40).T.copy(), None, trans_b=0), str(model))
    (tmp_path / "m.toml").write_text('preset = "eie-28nm"\nptr_bits = 32\n')
    out = tmp_path / "o.eie"
    args = ["compile", str(model), "-o", str(out), "--machine", str(tmp_path / "m.toml")]
    assert main([*args, "--alu-stages", "6", "--pes", "8", "--balance", "-q"]) == 0
    machine = load(out).machine
    assert (machine.pes, machine.clock_mhz, machine.ptr_bits, machine.alu_stages) == (
        8,
        1200.0,
        32,
        6,
    )
    assert main(["compile", str(model), "-o", str(out), "--ptr-bits", "10"]) == 1
    assert capsys.readouterr().err == (
        "eiec compile: error: the machine options: machine: ptr_bits must be a multiple of 4 "
        "in 8..32, got 10 (see eiec machines --fields)\n"
    )
    assert main(["compile", str(model), "-o", str(out), "--machine", "eie-7nm"]) == 1
    assert capsys.readouterr().err == (
        "eiec compile: error: unknown machine 'eie-7nm' (give a preset (eie-45nm, eie-sim, "
        "eie-28nm) or a .toml machine file)\n"
    )


def test_compile_options_of_routes_machine_fields() -> None:
    options = CompileOptions.of(pes=16, ptr_bits=32, sparsity=0.5)
    assert (options.machine.pes, options.machine.ptr_bits, options.sparsity) == (16, 32, 0.5)
    with pytest.raises(MachineError) as error:
        CompileOptions.of(pes=0)
    assert str(error.value) == (
        "CompileOptions: machine: pes must be in 1..4096, got 0 (see eiec machines --fields)"
    )
