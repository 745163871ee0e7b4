"""Training LSTM models with the heads people write, several sequences per step.

Every head of :mod:`tests.training.seq_models` trains (no traceback: ``y[-1]``'s scalar Gather
used to fail TVM's take gradient), at the requested batch, and the batched training graph
computes the model: its held-out figures before training are those of ONNX's reference
evaluator on the same samples.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from eiec.frontend.read import read_onnx
from eiec.frontend.tvm_import import import_onnx
from eiec.training.compress import Trainer, TrainOptions, train_compress
from eiec.training.data import TrainingData
from tests.training.seq_models import HEADS, lstm_classifier, sequence_data

pytestmark = pytest.mark.slow

SEQ, INPUTS = 4, 3
#: Heads ``eiec compile`` runs on EIE (the others train through the Python API: EIE has no
#: Slice, ReduceMean or per-step MatMul on a sequence).
ON_EIE = ("gather_last", "h_n")


def _module(model: onnx.ModelProto, head: str) -> object:
    return read_onnx(model).module if head in ON_EIE else import_onnx(model)


def _data(head: str, count: int = 40) -> TrainingData:
    x, y = sequence_data(count, seq=SEQ, inputs=INPUTS)
    batch_first = np.ascontiguousarray(np.moveaxis(x, 1, 0))
    return TrainingData(batch_first, None if head == "sequence" else y)


@pytest.mark.parametrize("head", HEADS)
def test_every_head_trains_batched_and_computes_the_model(head: str) -> None:
    model = lstm_classifier(head, seq=SEQ, inputs=INPUTS)
    data = _data(head)
    options = TrainOptions(epochs=1, sequence_batch=8)
    trainer = Trainer(_module(model, head), data, 1, options)
    assert trainer.masked.backbone.batch == 8
    held = trainer.held_out
    reference = ReferenceEvaluator(model)
    outputs = np.stack([reference.run(None, {"X": sample[:, None, :]})[0] for sample in held.x])
    per_sample = outputs.reshape(len(held), -1)
    dense = trainer.evaluate_layers(trainer.layers, "dense")
    if head == "sequence":  # distillation: the targets are the model's outputs
        np.testing.assert_allclose(held.teacher, per_sample, rtol=1e-4, atol=1e-5)
        assert dense.loss < 1e-12
    else:
        expected = trainer.score("reference", per_sample)
        assert dense.accuracy == expected.accuracy
        assert dense.loss == pytest.approx(expected.loss, rel=1e-5)
    _, report = train_compress(trainer.mod, data, 1, {"lstm0": 0.5}, 4, options, trainer=trainer)
    assert report.batch == 8
    assert [s.stage for s in report.stages] == [
        "dense",
        "pruned",
        "retrained",
        "shared",
        "fine-tuned",
    ]
    assert all(np.isfinite(s.loss) for s in report.stages)
    assert report.densities["lstm0"] == pytest.approx(0.5, abs=0.02)


def test_batched_predictions_equal_one_sequence_at_a_time() -> None:
    model = lstm_classifier("gather_last", seq=SEQ, inputs=INPUTS)
    module = read_onnx(model).module
    data = _data("gather_last", 21)
    one = Trainer(module, data, 1, TrainOptions(sequence_batch=1))
    many = Trainer(module, data, 1, TrainOptions(sequence_batch=8))
    assert (one.masked.backbone.batch, many.masked.backbone.batch) == (1, 8)
    for trainer in (one, many):
        trainer.masked.set_params(trainer.dense_params)
        trainer.evaluate_layers(trainer.layers, "dense")  # sets the masks
    # 21 samples: two full batches of 8 and a padded one
    np.testing.assert_allclose(
        many._predict(many.masked, data.x), one._predict(one.masked, data.x), rtol=1e-5, atol=1e-6
    )


def test_a_head_tvm_cannot_differentiate_is_a_clear_error() -> None:
    """A strided Slice (every other step) has no gradient eiec or TVM registers."""
    from eiec.errors import CompileError

    model = lstm_classifier("mean", seq=SEQ, inputs=INPUTS)
    graph = model.graph
    mean = next(i for i, n in enumerate(graph.node) if n.op_type == "ReduceMean")
    graph.node[mean].input[0] = "ys_even"
    for name, value in (("s0", 0), ("s1", SEQ), ("sa", 0), ("st", 2)):
        graph.initializer.append(onnx.numpy_helper.from_array(np.array([value], np.int64), name))
    slice_node = onnx.helper.make_node("Slice", ["ys", "s0", "s1", "sa", "st"], ["ys_even"])
    graph.node.insert(mean, slice_node)
    with pytest.raises(CompileError) as error:
        Trainer(import_onnx(model), _data("mean"), 1, TrainOptions(epochs=1))
    assert str(error.value) == (
        "TVM cannot build the training graph of this model: training needs the gradient of a "
        "strided_slice over several axes or with a stride (axes [0], strides [2]); eiec "
        "registers only one-axis, unit-stride slices (train a model whose slices take one "
        "contiguous range of one axis) (compile without --train, or report the model)"
    )


def test_the_exported_two_layer_lstm_trains_from_the_command_line(tmp_path) -> None:
    """examples/lstm/lstm_linear.onnx (PyTorch's ``head(y[-1])`` over two LSTM layers, a
    Transpose + Reshape between them) once crashed ``--train`` with an AssertionError in TVM;
    it trains 8 sequences per step, balanced over 8 PEs."""
    import json
    from pathlib import Path

    from eiec.cli import main

    model = Path(__file__).resolve().parents[2] / "examples" / "lstm" / "lstm_linear.onnx"
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.normal(size=(6, 40, 8)).astype(np.float32), y=rng.integers(0, 4, 40))
    report = tmp_path / "r.json"
    args = ["compile", str(model), "-o", str(tmp_path / "p.eie"), "--train", str(data)]
    args += ["--epochs", "1", "--pes", "8", "--sparsity", "0.75", "--balance", "-q"]
    assert main([*args, "--report-json", str(report)]) == 0
    training = json.loads(report.read_text())["training"]
    assert training["batch"] == 8
    assert training["distill"] == 0.5  # labels, recurrent layers: distilled by default
    assert [s["stage"] for s in training["stages"]][-1] == "emulated"
    lstm = [b for b in training["balance"] if b["layer"] != "node_linear"]
    assert len(lstm) == 2 and all(b["max_after"] == b["mean_after"] for b in lstm)
