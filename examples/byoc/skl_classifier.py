"""The skl2onnx-style digits classifier (MatMul+Add+Relu layers, Softmax, ArgMax) in TVM with its
three FC layers on EIE and the Softmax/ArgMax/label lookup on the CPU.

Reads ``examples/digits/digits_skl_style.onnx`` (written by ``examples/digits/
train_digits_mlp.py``), runs the held-out digits through the partitioned model, prints the EIE
cycles per layer and the accuracy next to the CPU-only model's. The activation formats come from
``calib_x.npy`` (64 training images).

Usage: ``python examples/byoc/skl_classifier.py [--pes 64] [--sparsity 0.9] [--samples 100]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import tvm
from tvm import relax

import eiec.byoc
from eiec.frontend.tvm_import import relax_from_onnx
from eiec.runtime.reference import tvm_compatible

DIGITS = Path(__file__).resolve().parents[1] / "digits"


def run(vm: relax.VirtualMachine, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of the model for a batch."""
    label, probabilities = vm["main"](tvm.runtime.tensor(x))
    return label.numpy(), probabilities.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pes", type=int, default=64)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()

    model = tvm_compatible(onnx.load(DIGITS / "digits_skl_style.onnx"))
    mod = relax_from_onnx(model, keep_params_in_input=False)  # Gather as a bounds-safe take
    x = np.load(DIGITS / "test_x.npy")[: args.samples]
    y = np.load(DIGITS / "test_y.npy")[: args.samples]

    calibration = np.load(DIGITS / "calib_x.npy")[:, None, :]  # 64 samples of [1, 64]
    partitioned = eiec.byoc.partition_for_eie(
        mod, pes=args.pes, sparsity=args.sparsity, calibration=calibration
    )
    vm = relax.VirtualMachine(
        tvm.compile(eiec.byoc.RunCodegen()(partitioned), target="llvm"), tvm.cpu()
    )
    with eiec.byoc.profile() as prof:
        labels, _ = run(vm, x)
    cpu_labels, _ = run(relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu()), x)

    print(prof.report())
    total = prof.total()
    print(
        f"{len(x)} digits: {total['cycles'] / len(x):.0f} EIE cycles per digit, "
        f"{total['energy_pj'] / len(x) / 1e3:.2f} nJ per digit"
    )
    print(f"accuracy EIE+CPU {np.mean(labels == y):.3f}, CPU only {np.mean(cpu_labels == y):.3f}")


if __name__ == "__main__":
    main()
