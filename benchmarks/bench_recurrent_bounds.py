"""The error bound through LSTM recurrences (issue 19): tolerance / output range over long runs.

    .venv/bin/python benchmarks/bench_recurrent_bounds.py [--hidden 64 128 256] [--steps 30 100]
    .venv/bin/python benchmarks/bench_recurrent_bounds.py --random 40

For each hidden size and sequence length: a forward LSTM(12, H) returning Y (every step's h),
PyTorch's initialisation (U(+-1/sqrt(H))) with the recurrent and input weights scaled by
``--gain``, compiled at 60% sparsity on 64 PEs with formats calibrated on 8 sequences plus the
one verified (normal inputs). ``eiec verify`` (TVM's CPU build of the compressed model) then
checks one sequence: the table gives the tolerance (largest per-element bound) as a fraction of
the output's range, the worst error/tolerance ratio (< 1: every element within its bound), the
verdict, and the mean worst-case bound over the last step (vacuous: it is what the probe's
worst case alone would give) beside the mean tolerance.

``--random N`` instead draws N random LSTMs (hidden 4..128, 2..100 steps, gain 0.5..3, inputs
scaled 0.3..3), each run on a varying, a constant and a zero sequence against
``onnx.reference``: per run the largest error/tolerance ratio where the worst case ``e`` is the
tolerance (``err/e``) and where the statistical bound (the known roundings ``k`` plus 6 spreads
``s'`` of the rest) is (``err/tol``: ``|err|/(|k|+6s')``), the same centred on ``k`` as verify
checks them (FIXED_POINT.md, "The centred check": ``|err-k|/(e-|k|)`` and ``|err-k|/6s'``),
the root mean square of ``(err-k)/s'`` over the run's elements where the statistical bound is
the tolerance (how well ``s'`` estimates the spread of the rest), and tolerance/range; then the
distribution of each over all runs (every ratio must stay below 1: a correct emulation within
its bound). ``--gains`` and ``--hidden-sizes`` change the draws'
choices; ``--gru`` draws GRUs instead (``linear_before_reset`` 0 or 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "lstm"))  # lstm_models

from gru_models import gru_spec  # noqa: E402
from lstm_models import LstmSpec, lstm_model, reference  # noqa: E402

from eiec.compiler import CompileOptions, compile_model  # noqa: E402
from eiec.emulator.bounds import ErrorBounds  # noqa: E402
from eiec.emulator.emulator import Emulator  # noqa: E402
from eiec.isa.program import Buffer  # noqa: E402
from eiec.runtime.verify import verify  # noqa: E402

INPUTS = 12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--steps", type=int, nargs="+", default=[30, 100])
    parser.add_argument("--gain", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--random", type=int, default=0, metavar="N")
    parser.add_argument("--gains", type=float, nargs="+", default=[0.5, 1.0, 2.0, 3.0])
    parser.add_argument("--hidden-sizes", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--gru", action="store_true", help="--random draws GRUs")
    args = parser.parse_args()
    if args.random:
        random_lstms(args.random, args.seed, args.gains, args.hidden_sizes, args.gru)
        return
    print(
        f"{'hidden':>6s} {'steps':>5s} {'tolerance':>10s} {'range':>7s} {'tol/range':>9s} "
        f"{'err/tol':>7s} {'verdict':>7s} {'mean tol':>9s} {'mean worst':>10s} {'seconds':>7s}"
    )
    for hidden in args.hidden:
        for steps in args.steps:
            start = time.perf_counter()
            rng = np.random.default_rng(args.seed + hidden + steps)
            model = lstm_model(
                [LstmSpec(hidden)],
                seq=steps,
                inputs=INPUTS,
                outputs=("Y",),
                seed=args.seed,
                scale=args.gain / np.sqrt(hidden),
            )
            x = rng.normal(size=(steps, 1, INPUTS)).astype(np.float32)
            result = compile_model(model, _options(rng, x))
            report = verify(result.compressed_model, result.program, {"X": x})
            probe = ErrorBounds(result.program)
            Emulator(result.program, probes=(probe,)).run({"X": x})
            last = result.program.outputs[0].buffer
            last_row = slice(-hidden, None)  # the last step's h (pitch == hidden here)
            print(
                f"{hidden:6d} {steps:5d} {report.tolerance:10.3g} {report.output_range:7.3f} "
                f"{report.relative_tolerance:9.3%} {report.worst_error_to_tolerance:7.3f} "
                f"{'PASSED' if report.passed else 'FAILED':>7s} "
                f"{probe.tolerance(last)[last_row].mean():9.2e} "
                f"{probe.words[last][last_row].mean():10.2e} "
                f"{time.perf_counter() - start:7.1f}",
                flush=True,
            )


def _options(rng: np.random.Generator, *runs: np.ndarray) -> CompileOptions:
    """60% sparsity, 64 PEs, formats calibrated on 8 normal sequences and ``runs``."""
    steps = runs[0].shape[0]
    calibration = np.concatenate([rng.normal(size=(steps, 8, INPUTS)), *runs], axis=1)
    return CompileOptions.of(pes=64, sparsity=0.6, calibration=calibration.astype(np.float32))


def _grid(words: np.ndarray, buffer: Buffer, shape: tuple[int, ...]) -> np.ndarray:
    """A buffer's words without row padding, in an output's shape."""
    return words.reshape(buffer.rows, buffer.pitch)[:, : buffer.cols].reshape(shape)


def random_lstms(
    count: int, seed: int, gains: list[float], sizes: list[int], gru: bool = False
) -> None:
    """The ``--random`` sweep (module docstring)."""
    rng = np.random.default_rng(seed)
    print(
        f"{'hidden':>6s} {'steps':>5s} {'gain':>4s} {'input':>8s} {'err/e':>6s} "
        f"{'err/tol':>7s} {'|err-k|/(e-|k|)':>15s} {'|err-k|/6s':>10s} {'rms/s':>6s} "
        f"{'tol/range':>9s}"
    )
    ratios: list[list[float]] = []
    for _ in range(count):
        hidden = int(rng.choice(sizes))
        steps = int(rng.integers(2, 101))
        gain = float(rng.choice(gains))
        model_seed = int(rng.integers(2**16))
        spec = gru_spec(hidden, linear_before_reset=int(rng.integers(2))) if gru else None
        model = lstm_model(
            [spec or LstmSpec(hidden)],
            seq=steps,
            inputs=INPUTS,
            outputs=("Y",),
            seed=model_seed,
            scale=gain / np.sqrt(hidden),
        )
        varying = rng.normal(size=(steps, 1, INPUTS)) * rng.choice([0.3, 1.0, 3.0])
        constant = np.repeat(varying[:1], steps, axis=0)
        runs = {"varying": varying, "constant": constant, "zero": np.zeros_like(varying)}
        result = compile_model(model, _options(rng, varying, constant))
        port = result.program.outputs[0]
        buffer = result.program.buffers[port.buffer]
        for name, x in runs.items():
            x = x.astype(np.float32)
            probe = ErrorBounds(result.program)
            got = Emulator(result.program, probes=(probe,)).run({"X": x}).outputs["Y"]
            (want,) = reference(result.compressed_model, {"X": x})
            worst = _grid(probe.words[port.buffer], buffer, want.shape)
            # The statistical bound: the known roundings plus 6 spreads of the rest.
            statistical = _grid(probe.tolerance(port.buffer), buffer, want.shape)
            centre = _grid(probe.centre(port.buffer), buffer, want.shape)
            checked = ~_grid(probe.saturated[port.buffer], buffer, want.shape)
            error = got.astype(np.float64) - want
            binds = checked & (statistical < worst)
            tiny = np.finfo(np.float64).tiny
            off = np.abs(error - centre) / np.maximum(statistical - np.abs(centre), tiny)
            ratios.append(
                [
                    float((np.abs(error) / worst)[checked & ~binds].max(initial=0.0)),
                    float((np.abs(error) / statistical)[binds].max(initial=0.0)),
                    float(off[checked & ~binds].max(initial=0.0)),
                    float(off[binds].max(initial=0.0)),
                    float(np.sqrt(np.mean((6 * off[binds]) ** 2))) if binds.any() else 0.0,
                ]
            )
            span = float(np.ptp(want)) or float("nan")
            print(
                f"{hidden:6d} {steps:5d} {gain:4.1f} {name:>8s} {ratios[-1][0]:6.3f} "
                f"{ratios[-1][1]:7.3f} {ratios[-1][2]:15.3f} {ratios[-1][3]:10.3f} "
                f"{ratios[-1][4]:6.3f} {np.minimum(worst, statistical).max() / span:9.3%}",
                flush=True,
            )
    table = np.array(ratios)
    print(f"{len(ratios)} runs; of each ratio: max, quantiles 50/90/99%, runs above 0.5/0.8/0.9")
    labels = ("err/e", "err/tol", "|err-k|/(e-|k|)", "|err-k|/6s'", "rms/s'")
    for column, label in enumerate(labels):
        values = table[:, column]
        quantiles = " ".join(f"{q:.3f}" for q in np.quantile(values, [0.5, 0.9, 0.99]))
        above = "/".join(str(int((values > limit).sum())) for limit in (0.5, 0.8, 0.9))
        print(f"{label:>15s}: max {values.max():.3f}, quantiles {quantiles}, above {above}")


if __name__ == "__main__":
    main()
