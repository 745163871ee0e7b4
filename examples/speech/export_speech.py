"""Train a small spoken-vowel classifier on JapaneseVowels and export it the ways users do.

PyTorch and aeon are not dependencies of eiec; run this in the torch environment:

    /work/torchenv/bin/python examples/speech/export_speech.py

Data: aeon's JapaneseVowels (shipped in its wheel, no download): 9 speakers, 270 training and
370 test utterances, 12 LPC cepstrum coefficients per frame, 7 to 29 frames. Each utterance is
standardised with the training set's per-coefficient mean and deviation and zero-padded at the
front to 29 frames (so the last step, which the classifier reads, is always the last real frame).

Models: ``nn.LSTM(12, 64)`` (or ``nn.GRU(12, 64)``) then ``nn.Linear(64, 9)`` on the last step
(``head(y[-1])``; ``head(y[:, -1])`` with ``batch_first=True``), trained with Adam for
``EPOCHS`` epochs from a fixed seed, exported with a batch of 1 by both torch exporters:

- ``{lstm,gru}_dynamo.onnx``: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript:
  W/R/B partly built from the initialisers by Slice/Concat/Unsqueeze).
- ``{lstm,gru}_torchscript.onnx``: ``dynamo=False`` (zero initial states built at run time by
  Shape/Gather/Concat/Expand).
- ``{lstm,gru}_bf_{dynamo,torchscript}.onnx``: the same weights in a ``batch_first=True`` module
  (a Transpose before and after the recurrent layer; X is [batch, 29, 12]).

Data files (float32 x, int64 labels 0..8; x in the ONNX LSTM layout [T=29, B, 12], the batch on
axis 1; transpose to [B, 29, 12] for the batch_first models):

- ``speech_train.npz`` (``x``, ``y``: 270 sequences), for ``eiec compile --train``;
- ``speech_test.npz`` (``x``, ``y``: 370 sequences), and the same as ``speech_test_x.npy`` /
  ``speech_test_y.npy`` for ``eiec run/verify/emulate X --labels Y``.

``accuracy.json`` records each dense model's test accuracy (PyTorch, float32).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from aeon.datasets import load_japanese_vowels
from torch import nn

HERE = Path(__file__).resolve().parent
FRAMES, FEATURES, HIDDEN, CLASSES = 29, 12, 64, 9
EPOCHS, BATCH, SEED = 60, 16, 0


class Classifier(nn.Module):
    """A recurrent layer (LSTM or GRU) and a linear classifier on its last step."""

    def __init__(self, kind: str, batch_first: bool = False) -> None:
        super().__init__()
        layer = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = layer(FEATURES, HIDDEN, batch_first=batch_first)
        self.head = nn.Linear(HIDDEN, CLASSES)
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)
        return self.head(y[:, -1] if self.batch_first else y[-1])


def load(split: str, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> tuple:
    """(x [T, B, F] standardised and front-padded, y, mean, std) of one split."""
    series, labels = load_japanese_vowels(split=split)
    if mean is None or std is None:
        frames = np.concatenate([s.T for s in series])
        mean, std = frames.mean(axis=0), frames.std(axis=0)
    x = np.zeros((FRAMES, len(series), FEATURES), dtype=np.float32)
    for b, s in enumerate(series):
        length = s.shape[1]
        x[FRAMES - length :, b] = ((s.T - mean) / std).astype(np.float32)
    y = np.asarray(labels).astype(np.int64) - 1
    return x, y, mean, std


def train(kind: str, x: np.ndarray, y: np.ndarray) -> Classifier:
    """A sequence-first classifier trained on (x [T, B, F], y)."""
    torch.manual_seed(SEED)
    model = Classifier(kind)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        model.train()
        for batch in torch.randperm(ys.shape[0], generator=generator).split(BATCH):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(xs[:, batch]), ys[batch])
            loss.backward()
            optimiser.step()
    return model.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def export(model: nn.Module, name: str, dynamo: bool, batch_first: bool) -> None:
    """Write ``name`` next to this script (batch 1, static shapes)."""
    shape = (1, FRAMES, FEATURES) if batch_first else (FRAMES, 1, FEATURES)
    path = HERE / name
    kwargs = {"external_data": False} if dynamo else {}
    torch.onnx.export(
        model,
        (torch.zeros(shape),),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        dynamo=dynamo,
        **kwargs,
    )
    print(f"wrote {name} ({path.stat().st_size} bytes)")


def main() -> None:
    train_x, train_y, mean, std = load("train")
    test_x, test_y, _, _ = load("test", mean, std)
    np.savez(HERE / "speech_train.npz", x=train_x, y=train_y)
    np.savez(HERE / "speech_test.npz", x=test_x, y=test_y)
    np.save(HERE / "speech_test_x.npy", test_x)
    np.save(HERE / "speech_test_y.npy", test_y)
    print(f"data: train {train_x.shape}, test {test_x.shape} ([T, B, F])")
    results = {}
    for kind in ("lstm", "gru"):
        model = train(kind, train_x, train_y)
        bf = Classifier(kind, batch_first=True)
        bf.load_state_dict(model.state_dict())
        bf.eval()
        acc = accuracy(model, test_x, test_y)
        acc_bf = accuracy(bf, test_x.transpose(1, 0, 2).copy(), test_y)
        assert acc == acc_bf, (acc, acc_bf)
        results[kind] = {"test_accuracy": acc, "train_accuracy": accuracy(model, train_x, train_y)}
        print(f"{kind}: test accuracy {acc:.2%}")
        for dynamo in (True, False):
            exporter = "dynamo" if dynamo else "torchscript"
            export(model, f"{kind}_{exporter}.onnx", dynamo, batch_first=False)
            export(bf, f"{kind}_bf_{exporter}.onnx", dynamo, batch_first=True)
    (HERE / "accuracy.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
