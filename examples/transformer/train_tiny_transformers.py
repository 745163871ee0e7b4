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
  intermediate 256: what the middle character (position 32) of a window of 64 characters of the
  same packages as the GPT's is part of, as Python's ``tokenize`` sees it: code (0), a comment
  (1), a one-line string literal (2) or a triple-quoted string (3, docstrings mostly); the
  windows are drawn class-balanced, centred on a non-blank character; input ``input_ids`` int64
  [1, 64], output ``logits`` [1, 4].
- ``gpt_test_ids.npy`` / ``gpt_test_targets.npy``: 200 test windows [200, 64] and their
  next-character targets; ``gpt_calib_ids.npy``: 32 training windows for calibration.
- ``bert_test_ids.npy`` / ``bert_test_labels.npy``: 200 test windows and their class;
  ``bert_calib_ids.npy``: 32 training windows.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import string
import sysconfig
import tokenize
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
#: The BERT's classes: what a character is part of (``char_classes``).
BERT_CLASSES = ("code", "comment", "string", "long string")


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
    torch.manual_seed(0)
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


def char_classes(text: str) -> np.ndarray:
    """Per character of ``text``: the index in ``BERT_CLASSES`` of the token it is part of
    (strings: f-strings too; triple-quoted when the literal starts with three quotes after its
    prefix), -1 outside tokens and for blanks; all -1 if ``tokenize`` rejects the file."""
    starts = np.cumsum([0] + [len(line) for line in text.splitlines(keepends=True)])
    classes = np.full(len(text), -1, dtype=np.int64)
    names = ("FSTRING_START", "FSTRING_END")  # Python 3.12 and later
    fstring_start, fstring_end = (getattr(tokenize, name, -1) for name in names)
    opened: list[tuple[int, str]] = []  # the f-strings being read (they nest): start, prefix
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            begin = starts[tok.start[0] - 1] + tok.start[1]
            end = starts[tok.end[0] - 1] + tok.end[1]
            if tok.type == fstring_start:
                opened.append((begin, tok.string))
                continue
            if tok.type == fstring_end and opened:
                begin, prefix = opened.pop()
                if opened:
                    continue  # a nested f-string: classified with the outer one
                kind = 3 if prefix.lstrip("rRbBfFuU")[:3] in ('"""', "'''") else 2
            elif opened:
                continue  # inside an f-string: classified at its end
            elif tok.type == tokenize.STRING:
                kind = 3 if tok.string.lstrip("rRbBfFuU")[:3] in ('"""', "'''") else 2
            elif tok.type == tokenize.COMMENT:
                kind = 1
            elif tok.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER):
                kind = 0
            else:
                continue
            classes[begin:end] = kind
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return np.full(len(text), -1, dtype=np.int64)
    blank = np.array([ch.isspace() for ch in text], dtype=bool)
    classes[blank] = -1
    return classes


def labelled_corpus(packages: tuple[str, ...]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(train, test) of (codes, character classes), each the concatenation of the packages'
    files (split as :func:`corpus` splits them)."""
    parts: tuple[list, list] = ([], [])
    for package in packages:
        files = package_files(package)
        held_out = [p for p in files if is_test_file(p)] or files[-1:]
        for path in files:
            text = path.read_text(encoding="utf-8", errors="replace")
            parts[path in held_out].append((encode(text), char_classes(text)))
    return tuple(
        (np.concatenate([c for c, _ in part]), np.concatenate([k for _, k in part]))
        for part in parts
    )  # type: ignore[return-value]


def train_bert(steps: int, rng: np.random.Generator) -> None:
    torch.manual_seed(1)
    data = labelled_corpus(GPT_PACKAGES)
    half = CONTEXT // 2
    centres = []  # per split, per class: the positions that can centre a window
    for codes, classes in data:
        inside = np.arange(len(codes))
        inside = inside[(inside >= half) & (inside + CONTEXT - half <= len(codes))]
        centres.append([inside[classes[inside] == k] for k in range(len(BERT_CLASSES))])
    counts = [[len(c) for c in split] for split in centres]
    print(f"BERT: characters per class (train, test): {counts}")
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=256, max_position_embeddings=CONTEXT, num_labels=len(BERT_CLASSES),
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="eager",
    )  # fmt: skip
    model = BertForSequenceClassification(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1e-3, total_steps=steps)

    def sample(split: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, len(BERT_CLASSES), size=count)
        codes = data[split][0]
        middles = [rng.choice(centres[split][k]) for k in labels]
        ids = np.stack([codes[m - half : m - half + CONTEXT] for m in middles])
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
    parser.add_argument("--bert-steps", type=int, default=1500)
    parser.add_argument("--only", choices=("gpt", "bert"), help="train and export one model")
    parser.add_argument("--threads", type=int, default=2, help="torch's CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only != "bert":
        train_gpt(args.gpt_steps, np.random.default_rng(0))
    if args.only != "gpt":
        train_bert(args.bert_steps, np.random.default_rng(1))


if __name__ == "__main__":
    main()
