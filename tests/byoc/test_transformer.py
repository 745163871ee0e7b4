"""Transformers through BYOC: every Linear on EIE whatever its activation shape, the rest on
the CPU (issue 22 item 1), checked against ``onnx.reference``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from eiec.byoc import import_model, partition_for_eie, run_onnx
from eiec.byoc.attrs import is_offloaded
from eiec.byoc.profile import profile
from eiec.cli import main
from eiec.compiler import CompileOptions
from eiec.errors import InputError
from eiec.frontend.fold import fold_constants
from eiec.frontend.layers import find_onnx_layers
from eiec.frontend.linear_kinds import linear_kinds
from eiec.frontend.load import load_model
from eiec.relax_layers.fc import find_fc_layers
from eiec.runtime.run_byoc import ByocReport as RunReport
from eiec.runtime.run_byoc import _byoc_options, emulate_calls, run_byoc
from eiec.runtime.tokens import SequenceQuality, collapse_warning, perplexity_and_accuracy

from .transformer_models import LINEARS, tiny_gpt


def _ids(samples: int, tokens: int = 8, vocab: int = 11) -> np.ndarray:
    return np.random.default_rng(3).integers(0, vocab, (samples, tokens), dtype=np.int64)


def _run_args(tmp_path: Path, model: onnx.ModelProto, samples: int) -> list[str]:
    """``eiec run`` on ``model`` saved in ``tmp_path`` with ``samples`` windows of ids and their
    next-token targets (the last position ignored), at 4 PEs."""
    onnx.save(model, tmp_path / "gpt.onnx")
    ids = _ids(samples)
    targets = np.roll(ids, -1, axis=1)
    targets[:, -1] = -100
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "targets.npy", targets)
    args = ["run", str(tmp_path / "gpt.onnx"), "-i", str(tmp_path / "ids.npy"), "--pes", "4"]
    return [*args, "--labels", str(tmp_path / "targets.npy")]


def test_checks_on_weights_skip_constants_the_cpu_uses() -> None:
    """The -3.4e38 mask fill and the empty shape feeding ConstantOfShape run on the CPU."""
    load_model(tiny_gpt())  # raises ModelLoadError if they were refused


def _with_eie_weights(model: onnx.ModelProto, report: RunReport) -> onnx.ModelProto:
    """The folded model with each Linear's weight and bias replaced by the compressed ones its
    offloaded function computes with (offloads in call order = the Linears in graph order)."""
    folded = fold_constants(model)
    compressed = [
        layer
        for offload in report.offloads.values()
        for layer in find_fc_layers(offload.compiled.module["main"])
    ]
    layers = find_onnx_layers(folded)
    assert [layer.node for layer in layers] == list(LINEARS)
    values: dict[str, np.ndarray] = {}
    for layer, fc in zip(layers, compressed, strict=True):
        weight = np.asarray(fc.weight)
        values[layer.weight] = weight.T if layer.weight_layout == "out_in" else weight
        if layer.bias is not None:
            values[layer.bias] = np.asarray(fc.bias_vector())
    for index, init in enumerate(folded.graph.initializer):
        if init.name in values:
            old = numpy_helper.to_array(init)
            assert values[init.name].shape == old.shape
            folded.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(values[init.name].astype(old.dtype), init.name)
            )
    return folded


@pytest.mark.slow
def test_every_linear_of_a_gpt_block_runs_on_eie() -> None:
    model = tiny_gpt()
    ids = _ids(3)
    report = run_byoc(model, ids, options=CompileOptions.of(sparsity=0.0, pes=4))
    assert report.passed, report.verify.problems
    t, v = 8, 11
    # one program per Linear, each run once per token of each sample
    assert len(report.offloads) == len(LINEARS)
    assert {row["runs"] for row in report.profile.per_function().values()} == {len(ids) * t}
    reference = ReferenceEvaluator(_with_eie_weights(model, report))
    expected = np.concatenate([reference.run(None, {"ids": row[None]})[0] for row in ids])
    got = report.outputs["logits"]
    assert got.shape == expected.shape == (3, t, v)
    # the same weights, 16-bit fixed-point activations through five layers and the CPU ops
    # between them: within 1% of the logits' range, and the argmax of almost every token kept
    error = float(np.max(np.abs(got - expected)))
    assert 0 < error < 0.01 * float(np.ptp(expected))
    assert np.mean(got.argmax(-1) == expected.argmax(-1)) >= 0.9


def test_linear_kinds_from_the_graph() -> None:
    kinds = linear_kinds(fold_constants(tiny_gpt()))
    assert [(layer.node, kind) for layer, kind in kinds] == [
        ("qkv", "qkv"),
        ("attn_proj", "attn_out"),
        ("mlp_up", "mlp_up"),
        ("mlp_down", "mlp_down"),
        ("lm_head", "head"),
    ]


def test_perplexity_and_accuracy() -> None:
    targets = np.array([[0, 1, -100], [2, 2, 1]])  # -100: ignored, as torch's loss does
    uniform = np.zeros((2, 3, 4), np.float32)
    ppl, _ = perplexity_and_accuracy(uniform, targets)
    assert ppl == pytest.approx(4.0)
    sure = np.full((2, 3, 4), -50.0, np.float32)
    sure[0, 0, 0] = sure[0, 1, 1] = sure[1, 0, 2] = sure[1, 1, 0] = sure[1, 2, 1] = 50.0
    ppl, accuracy = perplexity_and_accuracy(sure, targets)
    assert accuracy == pytest.approx(4 / 5)
    assert ppl == pytest.approx(np.exp(100 / 5), rel=1e-6)  # one token 100 nats off


def test_collapse_warning() -> None:
    fine = SequenceQuality(10, 5.0, 5.4, 0.5, 0.49)
    assert collapse_warning(fine, None, 1.0) is None
    bad = SequenceQuality(10, 5.0, 9.0, 0.5, 0.1)
    assert "perplexity 9.000 vs 5.000" in (collapse_warning(bad, None, 1.0) or "")
    assert collapse_warning(None, (0.9, 0.86), None) is None
    assert "accuracy 80.00% vs 90.00%" in (collapse_warning(None, (0.9, 0.8), None) or "")
    assert "only 50.0%" in (collapse_warning(None, None, 0.5) or "")


@pytest.mark.slow
def test_cli_reports_per_token_figures_perplexity_and_writes_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tiny_gpt()
    args = [*_run_args(tmp_path, model, 2), "-o", str(tmp_path / "y.npy"), "--json"]
    ids, targets = np.load(tmp_path / "ids.npy"), np.load(tmp_path / "targets.npy")
    code = main([*args, "--sparsity", "0"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["problems"]
    tokens = report["tokens"]
    assert tokens["tokens"] == 8
    assert list(tokens["kinds"]) == ["qkv", "attn_out", "mlp_up", "mlp_down", "head"]
    # every Linear runs once per token: a prefill of 8 tokens is 8 decodes
    assert tokens["prefill"]["cycles"] == pytest.approx(8 * tokens["decode"]["cycles"])
    per_kind = sum(row["cycles"] for row in tokens["kinds"].values())
    assert 0 < per_kind <= tokens["decode"]["cycles"]  # the rest: codebook loads, write-backs
    assert tokens["tokens_per_s"] == pytest.approx(1e6 / tokens["decode"]["time_us"])
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (2, 8, 11)
    ppl, accuracy = perplexity_and_accuracy(y, targets)
    sequence = report["sequence"]
    assert sequence["tokens"] == 14
    assert sequence["perplexity"] == pytest.approx(ppl)
    assert sequence["accuracy"] == pytest.approx(accuracy)
    original_ppl, _ = perplexity_and_accuracy(
        np.concatenate([ReferenceEvaluator(model).run(None, {"ids": r[None]})[0] for r in ids]),
        targets,
    )
    assert sequence["original_perplexity"] == pytest.approx(original_ppl, rel=1e-4)


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "transformer"


@pytest.mark.parametrize("name", ["gpt.onnx", "gpt_dynamo.onnx"])
def test_the_example_gpt_offloads_all_13_linears(name: str) -> None:
    """Both torch exporters' graphs: each Linear becomes its own offloaded function."""
    mod = partition_for_eie(import_model(str(EXAMPLE / name)), sparsity=0.5)
    offloaded = [gvar for gvar, func in mod.functions_items() if is_offloaded(func)]
    assert len(offloaded) == 13


def test_the_example_models_linear_kinds() -> None:
    block = ["qkv", "attn_out", "mlp_up", "mlp_down"]
    for name in ("gpt.onnx", "gpt_dynamo.onnx"):
        kinds = [kind for _, kind in linear_kinds(fold_constants(onnx.load(EXAMPLE / name)))]
        assert kinds == block * 3 + ["head"]
    bert = linear_kinds(fold_constants(onnx.load(EXAMPLE / "bert.onnx")))
    # three separate Q, K, V Linears per layer; the pooler and the classifier are the head
    assert [kind for _, kind in bert] == (["qkv"] * 3 + block[1:]) * 2 + ["head", "head"]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_samples_spread_over_two_workers_give_the_report_of_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture, engine: str
) -> None:
    # Issue 22 item 4: a data set spread over the engines eiec sweep has (this process runs the
    # first shard; a spawned worker of the local pool, or a task on a local Ray, the second):
    # results identical to one process.
    if engine == "ray":
        ray = pytest.importorskip("ray")
    args = [*_run_args(tmp_path, tiny_gpt(seed=1), 5), "--sparsity", "0.5", "--json"]
    reports, outputs = [], []
    for workers in ("1", "2"):
        out = tmp_path / f"y{workers}.npy"
        code = main([*args, "--workers", workers, "--engine", engine, "-o", str(out)])
        reports.append(json.loads(capsys.readouterr().out))
        assert code == 0, reports[-1]["problems"]
        outputs.append(np.load(out))
    assert np.array_equal(outputs[0], outputs[1])
    assert reports[0] == reports[1]
    if engine == "ray":
        assert not ray.is_initialized()  # the local Ray started for the run is shut down
    assert reports[0]["samples"] == 5 and reports[0]["emulator"]["total"]["calls"] > 0


def test_workers_on_a_model_eie_runs_whole_are_refused(tmp_path: Path) -> None:
    from eiec.runtime.run import run

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.uniform(-1, 1, (4, 3)).astype(np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        "fc",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        [w],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    with pytest.raises(InputError, match="BYOC"):
        run(model, rng.uniform(-1, 1, (3, 4)).astype(np.float32), workers=2)


def test_the_runs_checked_while_running_equal_a_second_emulation() -> None:
    # run_samples records each offloaded run with its error bounds (the check needs no second
    # emulation); emulating the recorded calls again gives the same check data.
    model = tiny_gpt(seed=2)
    named = {"ids": _ids(2)}
    with profile(keep_inputs=True) as recorder:
        run_onnx(model, named, **_byoc_options(CompileOptions.of(sparsity=0.5, pes=4)))
    assert all(call.checked is not None for call in recorder.calls)
    fused = emulate_calls(recorder.calls, 2)
    again = emulate_calls([dataclasses.replace(c, checked=None) for c in recorder.calls], 2)
    assert [c.symbol for c in fused] == [c.symbol for c in again] and len(fused) == len(LINEARS)
    for one, two in zip(fused, again, strict=True):
        for table in ("emulated", "cpu", "bounds", "saturated", "centres"):
            mine, theirs = getattr(one, table), getattr(two, table)
            assert mine.keys() == theirs.keys()
            assert all(np.array_equal(mine[k], theirs[k]) for k in mine), table
        assert (one.saturations, one.clamped, one.runs) == (two.saturations, two.clamped, two.runs)
        assert (one.first_saturation, one.first_unbounded) == (
            two.first_saturation,
            two.first_unbounded,
        )
