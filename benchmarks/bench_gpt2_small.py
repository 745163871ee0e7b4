"""Emulator speed on a GPT-2-small-sized stack: tokens per second, single-sample and batched.

    .venv/bin/python benchmarks/bench_gpt2_small.py [--tokens 3] [--batch 16,64] [--blocks 12]

The stack is built here, not downloaded: 12 blocks of the four Linears of GPT-2 small (fused
QKV 768x2304, attention output 768x768, MLP up 768x3072, MLP down 3072x768, each with a bias
broadcast as ``#1``), random masks at 50% weight density, uniform 4-bit codes 1..15 over a
15-value codebook, one EIE program per Linear (``eiec.isa.builder.fc_program``) on the paper's
64-PE chip. A token runs through the 48 programs in order; between them the host does what the
CPU does in a transformer (a stand-in for attention: the first 768 of the QKV outputs; residual
adds; GELU; a LayerNorm), so every Linear sees dense, realistic activations.

It prints the EIE cycles per token, the emulator's wall time per token single-sample
(``Emulator.run`` per program, after one warm-up token) and in batches (``run_batch``, the
batch's tokens in lockstep), tokens/s and simulated cycles/s, how many MACs computed their
timing (a MAC broadcasting the same columns as an earlier one of its layer reuses its cost),
and a cProfile of the single-sample runs (where the time goes). Both paths give the same
outputs and cycles (checked here).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import numpy as np

from eiec.emulator import Emulator
from eiec.emulator.batch import run_batch
from eiec.isa.builder import fc_program, random_codes
from eiec.isa.program import Machine, Program

#: GPT-2 small's Linears of one block: (name, inputs, outputs).
LINEARS = (
    ("qkv", 768, 2304),
    ("attn_out", 768, 768),
    ("mlp_up", 768, 3072),
    ("mlp_down", 3072, 768),
)
DENSITY = 0.5
#: Fraction bits: activations (inputs and outputs, +-16), codebook words (+-0.5).
ACT_FRAC, CODE_FRAC = 11, 16


def linear_program(rng: np.random.Generator, name: str, inputs: int, outputs: int) -> Program:
    """One Linear (bias as the last column) at ``DENSITY``, 4-bit shared weights."""
    codes = random_codes(rng, outputs, inputs + 1, DENSITY)
    scale = 1.0 / np.sqrt(DENSITY * inputs)  # outputs of about unit variance
    values = np.sort(rng.standard_normal(15)) * scale
    book = np.concatenate(([0], np.round(values * 2**CODE_FRAC))).astype(np.int16)
    return fc_program(
        [codes],
        [book],
        [CODE_FRAC],
        [ACT_FRAC, ACT_FRAC],
        machine=Machine(),
        bias=True,
        relu=False,
        layer_names=[name],
    )


def build_stack(blocks: int, seed: int = 0) -> list[Program]:
    """The ``blocks`` x 4 programs, in execution order."""
    rng = np.random.default_rng(seed)
    return [
        linear_program(rng, f"b{block}_{name}", inputs, outputs)
        for block in range(blocks)
        for name, inputs, outputs in LINEARS
    ]


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def _norm(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / (centred.std(axis=-1, keepdims=True) + 1e-5)


def forward(run, programs: list[Program], x: np.ndarray) -> tuple[np.ndarray, int]:
    """The stack on ``x`` (tokens x 768) with ``run(index, inputs) -> (outputs, cycles)``
    running program ``index``; the last hidden state and the EIE cycles."""
    cycles = 0

    def linear(index: int, value: np.ndarray) -> np.ndarray:
        nonlocal cycles
        out, spent = run(index, value.astype(np.float32))
        cycles += spent
        return out

    for first in range(0, len(programs), 4):
        qkv = linear(first, _norm(x))
        x = x + linear(first + 1, qkv[:, :768])
        x = x + linear(first + 3, _gelu(linear(first + 2, _norm(x))))
        x = _norm(x)
    return x, cycles


def single(emulators: list[Emulator]):
    """``run`` for :func:`forward`: each token alone through ``Emulator.run``."""

    def run(index: int, x: np.ndarray) -> tuple[np.ndarray, int]:
        outs, cycles = [], 0
        for row in x:
            result = emulators[index].run({"x": row[None]})
            outs.append(result.outputs["y"])
            cycles += result.stats.cycles
        return np.concatenate(outs), cycles

    return run


def batched(emulators: list[Emulator]):
    """``run`` for :func:`forward`: the tokens in lockstep through ``run_batch``."""

    def run(index: int, x: np.ndarray) -> tuple[np.ndarray, int]:
        emulator = emulators[index]
        result = run_batch(emulator.program, {"x": x}, tables=emulator.tables)
        return result.outputs["y"], result.stats.cycles

    return run


def _patterns(emulators: list[Emulator]) -> int:
    """MAC cost patterns the layers' tables hold."""
    return sum(len(tables.costs) for e in emulators for tables in e.tables.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=3, help="tokens run single-sample")
    parser.add_argument("--batch", default="16,64", help="batch sizes (tokens in lockstep)")
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--profile", type=int, default=20, help="cProfile entries shown")
    args = parser.parse_args()

    start = time.perf_counter()
    programs = build_stack(args.blocks)
    emulators = [Emulator(program) for program in programs]
    setup = time.perf_counter() - start
    entries = sum(int((layer.v != 0).sum()) for p in programs for layer in p.layers.values())
    print(
        f"stack: {args.blocks} blocks x {len(LINEARS)} Linears, {entries / 1e6:.1f} M stored "
        f"weights at {DENSITY:.0%} density, 4-bit codes, {programs[0].machine.pes} PEs; built in "
        f"{setup:.1f} s (programs and layer tables)"
    )
    rng = np.random.default_rng(1)
    largest = max([args.tokens, *(int(b) for b in args.batch.split(","))])
    tokens = rng.standard_normal((largest, 768))

    run = single(emulators)
    forward(run, programs, tokens[:1])  # warm-up (first-touch of the tables)
    patterns = _patterns(emulators)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    reference, cycles = forward(run, programs, tokens[: args.tokens])
    profiler.disable()
    wall = time.perf_counter() - start
    per_token = cycles / args.tokens
    print(
        f"single-sample: {args.tokens} tokens in {wall:.2f} s = {args.tokens / wall:.2f} "
        f"tokens/s; {per_token / 1e6:.3f} M cycles per token on the chip; "
        f"{cycles / wall / 1e6:.2f} M simulated cycles/s"
    )
    print(
        f"  MAC timings computed for {_patterns(emulators) - patterns} new broadcast patterns "
        f"of {args.tokens * len(programs)} MACs (the others broadcast a pattern seen before: "
        "its cost is reused, eiec.emulator.cycles.mac_costs)"
    )
    for size in (int(b) for b in args.batch.split(",")):
        start = time.perf_counter()
        out, batch_cycles = forward(batched(emulators), programs, tokens[:size])
        wall = time.perf_counter() - start
        shared = min(size, args.tokens)
        same = np.array_equal(out[:shared], reference[:shared])
        print(
            f"batch of {size}: {wall:.2f} s = {size / wall:.2f} tokens/s; "
            f"{batch_cycles / wall / 1e6:.2f} M simulated cycles/s; "
            f"{batch_cycles / size / 1e6:.3f} M cycles per token; outputs of the first "
            f"{shared} token(s) {'identical to' if same else 'DIFFERENT from'} single-sample"
        )
        if not same:
            raise SystemExit("batched outputs differ from single-sample ones")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.profile)
    body = text.getvalue()
    print("profile of the single-sample runs (cProfile, by own time):")
    print(body[body.index("   ncalls") :].rstrip())


if __name__ == "__main__":
    main()
