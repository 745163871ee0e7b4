"""A small CNN whose convolutions run on the CPU (TVM, llvm) and whose classifier runs on EIE.

The model is built here with ``onnx.helper`` and random weights (seeded): two Conv+ReLU+MaxPool
stages on a 1x28x28 image, Flatten, then a 392-256-10 classifier (Gemm+ReLU, Gemm) and Softmax.
``eiec.byoc.partition_for_eie`` offloads the two Gemm layers as one EIE program; the standard
TVM flow builds the rest. Prints the partitioned module's functions, the EIE profile (cycles,
time, energy per offloaded function and per layer), and the gap to the CPU-only model.

Usage: ``python examples/byoc/small_cnn.py [--pes 64] [--sparsity 0.9] [--batch 2]
[--save-onnx cnn.onnx --save-input images.npy]``; the last two write the model and the input
batch (for ``eiec run cnn.onnx --input images.npy``) and stop.
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

import eiec.byoc

SEED = 0


def small_cnn(seed: int = SEED) -> onnx.ModelProto:
    """Conv(1->4, 3x3) ReLU MaxPool(2) Conv(4->8, 3x3) ReLU MaxPool(2) Flatten Gemm ReLU Gemm
    Softmax on a [N, 1, 28, 28] input."""
    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        fan_in = int(np.prod(shape[1:]))
        return numpy_helper.from_array(
            (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), name
        )

    def bias(name: str, size: int) -> onnx.TensorProto:
        return numpy_helper.from_array((0.05 * rng.standard_normal(size)).astype(np.float32), name)

    inits = [
        weight("c1_w", 4, 1, 3, 3), bias("c1_b", 4),
        weight("c2_w", 8, 4, 3, 3), bias("c2_b", 8),
        weight("fc1_w", 256, 392), bias("fc1_b", 256),
        weight("fc2_w", 10, 256), bias("fc2_b", 10),
    ]  # fmt: skip
    node = helper.make_node
    nodes = [
        node("Conv", ["image", "c1_w", "c1_b"], ["c1"], pads=[1, 1, 1, 1]),
        node("Relu", ["c1"], ["r1"]),
        node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Conv", ["p1", "c2_w", "c2_b"], ["c2"], pads=[1, 1, 1, 1]),
        node("Relu", ["c2"], ["r2"]),
        node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Flatten", ["p2"], ["flat"]),
        node("Gemm", ["flat", "fc1_w", "fc1_b"], ["fc1"], transB=1),
        node("Relu", ["fc1"], ["h1"]),
        node("Gemm", ["h1", "fc2_w", "fc2_b"], ["logits"], transB=1),
        node("Softmax", ["logits"], ["probabilities"]),
    ]
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pes", type=int, default=64)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--save-onnx", metavar="OUT.onnx", help="write the model and stop")
    parser.add_argument("--save-input", metavar="OUT.npy", help="write the input batch and stop")
    args = parser.parse_args()
    image = np.random.default_rng(SEED + 1).random((args.batch, 1, 28, 28), dtype=np.float32)
    if args.save_onnx or args.save_input:
        from eiec.fileio import save_npy_atomic, write_atomic

        if args.save_onnx:
            write_atomic(args.save_onnx, small_cnn().SerializeToString())
        if args.save_input:
            save_npy_atomic(args.save_input, image)
        return

    mod = from_onnx(small_cnn(), shape_dict={"image": [args.batch, 1, 28, 28]},
                    keep_params_in_input=False)  # fmt: skip

    # The five lines of the integration.
    partitioned = eiec.byoc.partition_for_eie(mod, pes=args.pes, sparsity=args.sparsity)
    built = eiec.byoc.RunCodegen()(partitioned)
    vm = relax.VirtualMachine(tvm.compile(built, target="llvm"), tvm.cpu())
    with eiec.byoc.profile() as prof:
        eie = vm["main"](tvm.runtime.tensor(image)).numpy()

    cpu_vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    cpu = cpu_vm["main"](tvm.runtime.tensor(image)).numpy()

    print("functions:", ", ".join(gv.name_hint for gv in partitioned.get_global_vars()))
    print(prof.report())
    print(f"EIE+CPU probabilities:\n{np.round(eie, 4)}")
    print(f"CPU-only probabilities:\n{np.round(cpu, 4)}")
    print(f"max |difference| {np.abs(eie - cpu).max():.4f} (pruning to sparsity "
          f"{args.sparsity} and 4-bit weight sharing change the classifier; "
          f"same top-1: {np.array_equal(eie.argmax(1), cpu.argmax(1))})")  # fmt: skip


if __name__ == "__main__":
    main()
