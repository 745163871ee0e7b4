"""How long `eiec run` takes on the example GPT (examples/transformer), and where the time goes
(issue 22 item 4: its 3-layer model over 200 windows of 64 tokens within a minute).

It runs what the example's README runs, ``eiec run gpt.onnx --input ids.npy --labels
targets.npy --sparsity 0.5 --prune wanda,refit --calibration calib.npy`` (``--workers N``
splits the windows as ``eiec run --workers N`` does), on the first ``--windows`` test windows
(default: all 200), through ``eiec.runtime.run_byoc.run_byoc``, and prints the machine's load
(``os.getloadavg``), the wall time and CPU time of the whole run, then the split of this
process's wall time (with ``--workers`` > 1: the first shard's; the other shards run in other
processes at the same time):

- **compile**: everything before the model's first window runs (import, partition, the
  sequential calibration of ``,refit`` with its refits, the EIE programs, the TVM build);
- **evaluation**: the rest (every window through BYOC, each offloaded call emulated with its
  error bounds, the check of every call against its compressed function on the CPU, the
  original model on the CPU, the report).

and, inside them, the phases measured by wrapping the functions named (the remainder of the
evaluation is the model's CPU ops through BYOC and the report); the last two lines (``both:``)
are TVM's builds for the CPU and their JIT compilation wherever they happen (the calibration's
twin and the CPU reference in the compile, the BYOC model, the check's compressed functions),
with how many there were: ``eiec.byoc.cpu`` keeps its builds in eiec's cache, so a rerun loads
the CPU reference, the twin and (same options) the check's functions instead of building them
(``EIEC_NO_CACHE=1`` or a fresh ``XDG_CACHE_HOME``: the figures of a first run). The report's
verdict and perplexity are printed too: speed must not change any result.

Run: ``.venv/bin/python benchmarks/bench_transformer_speed.py [--windows 200] [--workers 2]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import tvm

import eiec.byoc.calibrate
import eiec.byoc.offload
import eiec.byoc.partition
import eiec.isa.cache
import eiec.runtime.reference
import eiec.runtime.run_byoc
from eiec.compiler import CompileOptions

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "transformer"

#: (label, owner of the attribute, attribute) of each phase timed; the owner's attribute is
#: what its callers look up at call time.
PHASES: tuple[tuple[str, Any, str], ...] = (
    ("compile: sequential calibration", eiec.byoc.partition, "attach_calibration"),
    ("  of which refits (compressed weights)", eiec.byoc.calibrate, "compressed_constants"),
    ("  of which CPU twin runs", eiec.byoc.calibrate.CpuTwin, "collect"),
    ("evaluation: emulation with bounds", eiec.byoc.offload.Runner, "run"),
    ("evaluation: check vs compressed functions", eiec.runtime.run_byoc, "emulate_calls"),
    ("evaluation: original model (CPU)", eiec.runtime.reference, "run_rows"),
    ("both: TVM CPU builds (every tvm.compile)", tvm, "compile"),
    ("both: their JIT (every VM setup)", tvm.runtime.vm.VirtualMachine, "_setup_device"),
)


@contextmanager
def timed(phases: dict[str, float], first: list[float], calls: dict[str, int]) -> Iterator[None]:
    """Wrap the functions of ``PHASES`` to add their wall time to ``phases`` and count their
    calls in ``calls``; ``first`` gets the time the first emulated call started."""
    saved = []
    for label, owner, name in PHASES:
        original = getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, _timer(original, label, phases, first, calls))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _timer(
    function: Callable[..., Any],
    label: str,
    phases: dict[str, float],
    first: list[float],
    calls: dict[str, int],
) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        calls[label] = calls.get(label, 0) + 1
        if label.startswith("evaluation: emulation") and not first:
            first.append(start)
        try:
            return function(*args, **kwargs)
        finally:
            phases[label] = phases.get(label, 0.0) + time.perf_counter() - start

    return wrapper


def main() -> None:
    """Parse the options, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200, help="test windows (of 200)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    ids = np.load(EXAMPLE / "gpt_test_ids.npy")[: args.windows]
    targets = np.load(EXAMPLE / "gpt_test_targets.npy")[: args.windows]
    calibration = np.load(EXAMPLE / "gpt_calib_ids.npy")
    options = CompileOptions.of(sparsity=0.5, prune="wanda,refit", calibration=calibration)
    model = onnx.load(EXAMPLE / "gpt.onnx")
    load = os.getloadavg()
    phases: dict[str, float] = {}
    calls: dict[str, int] = {}
    first: list[float] = []
    cpu = time.process_time()
    children = os.times()
    start = time.perf_counter()
    with timed(phases, first, calls):
        report = eiec.runtime.run_byoc.run_byoc(
            model, ids, labels=targets, options=options, workers=args.workers
        )
    wall = time.perf_counter() - start
    after = os.times()
    cpu = time.process_time() - cpu + (after.children_user - children.children_user)
    cpu += after.children_system - children.children_system
    compile_s = (first[0] if first else start) - start
    print(
        f"gpt.onnx, {len(ids)} windows of {ids.shape[1]} tokens, --sparsity 0.5 --prune "
        f"wanda,refit, calibration {len(calibration)} windows, --workers {args.workers}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
    )
    print(f"wall {wall:.1f} s (CPU {cpu:.1f} s, workers' included)")
    shard = " (this process's shard)" if args.workers > 1 else ""
    print(f"  compile    {compile_s:7.1f} s")
    print(f"  evaluation {wall - compile_s:7.1f} s{shard}")
    for label, _, _ in PHASES:
        count = f" ({calls.get(label, 0)})" if label.startswith("both:") else ""
        print(f"    {label:<44} {phases.get(label, 0.0):7.1f} s{count}")
    print(f"eiec's cache of CPU builds: {'on' if eiec.isa.cache.enabled() else 'off'}")
    if report.sequence is not None:
        seq = report.sequence
        print(f"perplexity original {seq.original_perplexity:.3f}, EIE + CPU {seq.perplexity:.3f}")
    print(report.verify.summary())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
