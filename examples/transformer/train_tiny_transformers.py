"""Train two tiny transformers on the Python standard library's own source, export them to ONNX.

PyTorch and transformers are not dependencies of eiec; run this in a throwaway environment:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 transformers onnx onnxscript numpy
    /tmp/torchvenv/bin/python examples/transformer/train_tiny_transformers.py

The text is every ``.py`` file of a fixed list of standard-library packages (the files of the
Python that runs this script), read as ASCII characters: a character-level vocabulary of 97
symbols (printable ASCII, newline and tab; anything else is ``?``). Files are split into train and
test by a hash of their path, so no test window comes from a file seen in training.

Files written next to this script (weights from a fixed seed; float32):

- ``gpt.onnx``: transformers' ``GPT2LMHeadModel``, 3 blocks x 128 wide, 4 heads, context 64,
  tied LM head; input ``input_ids`` int64 [1, 64], output ``logits`` [1, 64, 97]. TorchScript
  exporter (``dynamo=False``), opset 17.
- ``gpt_dynamo.onnx``: the same model through ``torch.onnx.export(..., dynamo=True)``.
- ``bert.onnx``: transformers' ``BertForSequenceClassification``, 2 layers x 128, 4 heads,
  intermediate 256: which of four packages (``email``, ``asyncio``, ``unittest``, ``xml``) a window
  of 64 characters comes from; input ``input_ids`` int64 [1, 64], output ``logits`` [1, 4].
- ``gpt_test_ids.npy`` / ``gpt_test_targets.npy``: 200 test windows [200, 64] and their
  next-character targets; ``gpt_calib_ids.npy``: 32 training windows for calibration.
- ``bert_test_ids.npy`` / ``bert_test_labels.npy``: 200 test windows and their package;
  ``bert_calib_ids.npy``: 32 training windows.
"""

from __future__ import annotations

import argparse
import hashlib
import string
import sysconfig
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

HERE = Path(__file__).resolve().parent
STDLIB = Path(sysconfig.get_paths()["stdlib"])
CONTEXT = 64
ALPHABET = "?" + string.printable.replace("\x0b", "").replace("\x0c", "").replace("\r", "")
VOCAB = len(ALPHABET)
CODE = {ch: i for i, ch in enumerate(ALPHABET)}
GPT_PACKAGES = ("json", "email", "http", "asyncio", "unittest", "xml", "logging", "importlib")
BERT_PACKAGES = ("email", "asyncio", "unittest", "xml")


def encode(text: str) -> np.ndarray:
    """Characters to codes (unknown characters are ``?``, code 0)."""
    return np.array([CODE.get(ch, 0) for ch in text], dtype=np.int64)


def package_files(package: str) -> list[Path]:
    """The package's ``.py`` files, sorted (tests folders left out)."""
    skip = {"test", "tests"}
    files = (STDLIB / package).rglob("*.py")
    return sorted(p for p in files if not skip & set(p.relative_to(STDLIB).parts[:-1]))


def is_test_file(path: Path) -> bool:
    """One file in five, chosen by a hash of its path within the standard library (a package
    with none such holds out its last file)."""
    digest = hashlib.sha256(str(path.relative_to(STDLIB)).encode()).digest()
    return digest[0] % 5 == 0


def corpus(packages: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per package: (train codes, test codes), each the concatenation of its files."""
    out = {}
    for package in packages:
        files = package_files(package)
        held_out = [p for p in files if is_test_file(p)] or files[-1:]
        train, test = [], []
        for path in files:
            codes = encode(path.read_text(encoding="utf-8", errors="replace"))
            (test if path in held_out else train).append(codes)
        out[package] = (np.concatenate(train), np.concatenate(test))
    return out


def windows(codes: np.ndarray, count: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random windows of ``length`` codes."""
    starts = rng.integers(0, len(codes) - length, size=count)
    return np.stack([codes[s : s + length] for s in starts])


class LogitsOnly(nn.Module):
    """A transformers model whose forward takes input_ids and returns only the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # An explicit all-ones mask: transformers then builds the causal mask without the
        # packed-sequence detection (aten::diff, which the TorchScript exporter lacks).
        mask = torch.ones_like(input_ids)
        return self.model(input_ids=input_ids, attention_mask=mask).logits


def export(model: nn.Module, path: Path, dynamo: bool) -> None:
    """Export with one [1, 64] int64 input, static shapes."""
    wrapped = LogitsOnly(model).eval()
    example = torch.zeros(1, CONTEXT, dtype=torch.int64)
    torch.onnx.export(
        wrapped,
        (example,),
        str(path),
        input_names=["input_ids"],
        output_names=["logits"],
        opset_version=17 if not dynamo else 18,
        dynamo=dynamo,
        external_data=False,
    )
    print(f"wrote {path.name} ({path.stat().st_size / 1e6:.1f} MB)")


def train_gpt(steps: int, rng: np.random.Generator) -> None:
    data = corpus(GPT_PACKAGES)
    train = np.concatenate([tr for tr, _ in data.values()])
    test = np.concatenate([te for _, te in data.values()])
    print(f"GPT: {len(train)} training and {len(test)} test characters")
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=CONTEXT, n_embd=128, n_layer=3, n_head=4,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
        attn_implementation="eager",
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    model.config.use_cache = False
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    model.train()
    for step in range(steps):
        batch = torch.from_numpy(windows(train, 32, CONTEXT + 1, rng))
        logits = model(input_ids=batch[:, :-1]).logits
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"  step {step}: loss {loss.item():.3f}")
    model.eval()
    test_windows = windows(test, 200, CONTEXT + 1, rng)
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(test_windows[:, :-1])).logits
        targets = torch.from_numpy(test_windows[:, 1:])
        nll = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        accuracy = (logits.argmax(-1) == targets).float().mean()
    print(f"GPT test: perplexity {np.exp(nll.item()):.3f}, next-char accuracy {accuracy:.4f}")
    np.save(HERE / "gpt_test_ids.npy", test_windows[:, :-1])
    np.save(HERE / "gpt_test_targets.npy", test_windows[:, 1:])
    np.save(HERE / "gpt_calib_ids.npy", windows(train, 32, CONTEXT, rng))
    export(model, HERE / "gpt.onnx", dynamo=False)
    export(model, HERE / "gpt_dynamo.onnx", dynamo=True)


def train_bert(steps: int, rng: np.random.Generator) -> None:
    data = corpus(BERT_PACKAGES)
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=256, max_position_embeddings=CONTEXT, num_labels=len(BERT_PACKAGES),
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="eager",
    )  # fmt: skip
    model = BertForSequenceClassification(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1e-3, total_steps=steps)

    def sample(split: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, len(BERT_PACKAGES), size=count)
        ids = np.stack([windows(data[BERT_PACKAGES[k]][split], 1, CONTEXT, rng)[0] for k in labels])
        return ids, labels

    model.train()
    for step in range(steps):
        ids, labels = sample(0, 32)
        logits = model(input_ids=torch.from_numpy(ids)).logits
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(labels))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"  step {step}: loss {loss.item():.3f}")
    model.eval()
    ids, labels = sample(1, 200)
    with torch.no_grad():
        predicted = model(input_ids=torch.from_numpy(ids)).logits.argmax(-1).numpy()
    print(f"BERT test accuracy {(predicted == labels).mean():.4f}")
    np.save(HERE / "bert_test_ids.npy", ids)
    np.save(HERE / "bert_test_labels.npy", labels)
    np.save(HERE / "bert_calib_ids.npy", sample(0, 32)[0])
    export(model, HERE / "bert.onnx", dynamo=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpt-steps", type=int, default=600)
    parser.add_argument("--bert-steps", type=int, default=400)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    train_gpt(args.gpt_steps, np.random.default_rng(0))
    train_bert(args.bert_steps, np.random.default_rng(1))


if __name__ == "__main__":
    main()
