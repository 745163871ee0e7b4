"""Compile an AlexNet-classifier-shaped model and print the time per stage and the peak memory.

The model is 9216 -> 4096 -> 4096 -> 1000 (Gemm transB=1, ReLU between, random weights), built
with onnx.helper in a temporary folder and compiled at 91% sparsity, 4-bit weights, 64 PEs.
Goal on the 2-core development machine (issue 14): <= 15 s wall and <= 3 GB peak RSS. The
program text's SHA-256 and each layer's k-means error are printed, so two versions of the
compiler can be compared on the same options.

The paper's pointer SRAM (32 KB per PE) holds 16 384 16-bit pointers per PE, fewer than the
three layers' 17 411 columns (+1 each), so the chip cannot hold the whole classifier at once;
the benchmark compiles it with a 64 KB pointer SRAM (``--ptr-sram 65536``) and says so.

Run: ``/work/venv/bin/python benchmarks/bench_compile.py``
"""

from __future__ import annotations

import hashlib
import itertools
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZES = (9216, 4096, 4096, 1000)


def build(path: Path, seed: int = 0) -> None:
    """Write the AlexNet-classifier-shaped ONNX model to ``path``."""
    rng = np.random.default_rng(seed)
    nodes, inits, current = [], [], "input"
    for i, (k, m) in enumerate(itertools.pairwise(SIZES)):
        name = f"fc{6 + i}"
        w = rng.standard_normal((m, k), dtype=np.float32) * np.float32(1 / np.sqrt(k))
        b = rng.standard_normal(m, dtype=np.float32) * np.float32(0.01)
        inits += [
            numpy_helper.from_array(w, f"{name}.weight"),
            numpy_helper.from_array(b, f"{name}.bias"),
        ]
        out = f"{name}_out"
        nodes.append(
            helper.make_node(
                "Gemm",
                [current, f"{name}.weight", f"{name}.bias"],
                [out],
                name=f"/{name}/Gemm",
                transB=1,
            )
        )
        current = out
        if i < len(SIZES) - 2:
            nodes.append(
                helper.make_node("Relu", [current], [f"{name}_relu"], name=f"/relu{6 + i}/Relu")
            )
            current = f"{name}_relu"
    graph = helper.make_graph(
        nodes,
        "alexnet_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", SIZES[0]])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["batch", SIZES[-1]])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def main() -> int:
    from eiec.compiler import CompileOptions, compile_model
    from eiec.isa import format_program

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "alexnet_classifier.onnx"
        start = time.perf_counter()
        build(path)
        size = path.stat().st_size / 2**20
        print(f"build model: {time.perf_counter() - start:.1f} s ({size:.0f} MiB)")
        options = CompileOptions.of(pes=64, sparsity=0.91, bits=4, ptr_sram=64 * 1024)
        start, cpu_start = time.perf_counter(), time.process_time()
        result = compile_model(path, options)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        start = time.perf_counter()
        text = format_program(result.program)
        printing = time.perf_counter() - start
    for stage, seconds in result.timings.items():
        print(f"  {stage:<8} {seconds:6.2f} s")
    print(
        f"compile total: {total:.2f} s (goal <= 15 s), CPU {cpu:.2f} s, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; printing the program: "
        f"{printing:.2f} s ({len(text) / 2**20:.1f} MiB of text)"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"peak RSS: {peak:.2f} GiB (goal <= 3 GiB)")
    print(f"program text sha256: {hashlib.sha256(text.encode()).hexdigest()}")
    exported = result.compressed_model.SerializeToString()
    print(f"compressed model sha256: {hashlib.sha256(exported).hexdigest()}")
    for layer in result.report.layers:
        print(
            f"  {layer.name}: k-means rmse {layer.quantization_rmse:.6e} "
            f"(relative {layer.quantization_relative_rmse:.6f})"
        )
    t = result.report.total
    print(
        f"stored {t.stored_bytes / 2**20:.2f} MiB vs dense {t.dense_bytes / 2**20:.1f} MiB: "
        f"{t.compression_ratio:.1f}x, Huffman {t.huffman_compression_ratio:.1f}x, "
        f"padding entries {t.padding_entries}"
    )
    return 0 if total <= 15 and peak <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
