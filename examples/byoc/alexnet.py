"""AlexNet (the BVLC structure shipped with onnx) with random weights: convolutions on the CPU,
FC6-FC8 on EIE.

``onnx/backend/test/data/light/light_bvlc_alexnet.onnx`` holds the graph only: every weight is a
``ConstantOfShape`` of a shape given as a graph input. This script puts seeded random weights of
BVLC AlexNet's shapes in their place (He-scaled, so activations keep their magnitude), imports
the model into Relax, offloads the FC layers, runs one random image and prints the EIE profile.
FC6 (9216 -> 4096), FC7 and FC8 do not fit one program's pointer SRAM together at 64 PEs, so
each is its own program (``partition_for_eie``'s fallback).

Usage: ``python examples/byoc/alexnet.py [--pes 64] [--sparsity 0.91]`` (about a minute on
two cores: compiling FC6 prunes and clusters 38 M weights).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnx
import tvm
from onnx import helper, numpy_helper
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

import eiec.byoc

LIGHT = Path(onnx.__file__).parent / "backend/test/data/light/light_bvlc_alexnet.onnx"
#: BVLC AlexNet's weight shapes (conv: out, in / group, kh, kw; fc: out, in).
SHAPES = {
    "conv1_w_0": (96, 3, 11, 11), "conv2_w_0": (256, 48, 5, 5), "conv3_w_0": (384, 256, 3, 3),
    "conv4_w_0": (384, 192, 3, 3), "conv5_w_0": (256, 192, 3, 3),
    "fc6_w_0": (4096, 9216), "fc7_w_0": (4096, 4096), "fc8_w_0": (1000, 4096),
}  # fmt: skip


def alexnet(seed: int = 0) -> onnx.ModelProto:
    """The light AlexNet with seeded random weights as initialisers."""
    model = onnx.load(LIGHT)
    rng = np.random.default_rng(seed)
    inits = []
    for name, shape in SHAPES.items():
        fan_in = int(np.prod(shape[1:]))
        weight = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        inits.append(numpy_helper.from_array(weight, name))
        bias = name.replace("_w_", "_b_")
        inits.append(numpy_helper.from_array(np.zeros(shape[0], np.float32), bias))
    inits.append(numpy_helper.from_array(np.array([1, 9216], np.int64), "OC2_DUMMY_1"))
    graph = model.graph
    nodes = [n for n in graph.node if n.op_type != "ConstantOfShape"]
    data = [i for i in graph.input if i.name == "data_0"]
    new_graph = helper.make_graph(nodes, graph.name, data, list(graph.output), inits)
    return helper.make_model(new_graph, opset_imports=list(model.opset_import))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pes", type=int, default=64)
    parser.add_argument("--sparsity", type=float, default=0.91)
    args = parser.parse_args()

    start = time.perf_counter()
    mod = from_onnx(alexnet(), keep_params_in_input=False)
    partitioned = eiec.byoc.partition_for_eie(mod, pes=args.pes, sparsity=args.sparsity)
    built = eiec.byoc.RunCodegen()(partitioned)
    vm = relax.VirtualMachine(tvm.compile(built, target="llvm"), tvm.cpu())
    print(f"built in {time.perf_counter() - start:.1f} s")
    image = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    start = time.perf_counter()
    with eiec.byoc.profile() as prof:
        probabilities = vm["main"](tvm.runtime.tensor(image)).numpy()
    print(f"ran in {time.perf_counter() - start:.1f} s; top-5 classes "
          f"{np.argsort(probabilities[0])[::-1][:5].tolist()}")  # fmt: skip
    print(prof.report())


if __name__ == "__main__":
    main()
