"""Fuzzing the commands in-process: random mutations of a valid ONNX model (element types,
shapes, attributes, dropped or duplicated nodes and initialisers, NaN/Inf/huge values) and of
``.npy`` inputs go through ``eiec compile``, ``run``, ``emulate`` and ``verify``. Whatever the
input, the command ends with exit 0, 1 or 2: only the project's errors (``EiecError``, printed
as one line) and argparse's usage errors may come out, never another exception."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

from eiec.cli import main
from eiec.isa import save
from tests.compiler.models import mlp
from tests.runtime.handmade import handmade_mlp


def fuzz(examples: int) -> settings:
    """``examples`` examples, no deadline (a compile takes a while), module-scoped fixtures."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


ELEM_TYPES = [
    TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16,
    TensorProto.INT64, TensorProto.INT8, TensorProto.UINT8, TensorProto.BOOL, TensorProto.STRING,
    TensorProto.COMPLEX64,
]  # fmt: skip
VALUES = [np.nan, np.inf, -np.inf, 1e30, -1e12, 1e6, 0.0, 1e-30]
ATTRIBUTES = [("transA", 1), ("transB", 0), ("transB", 1), ("alpha", 0.0), ("alpha", 1e20),
              ("beta", -2.0), ("axis", 3), ("to", TensorProto.DOUBLE)]  # fmt: skip


def _mutate(model: onnx.ModelProto, kind: str, a: int, b: int, c: int) -> None:
    graph = model.graph
    inits, nodes = graph.initializer, graph.node
    if kind == "elem_type" and inits:
        init = inits[a % len(inits)]
        if init.data_type != TensorProto.FLOAT:
            return
        values = numpy_helper.to_array(init)
        elem = ELEM_TYPES[b % len(ELEM_TYPES)]
        if elem in (TensorProto.STRING, TensorProto.COMPLEX64, TensorProto.BFLOAT16):
            init.data_type = elem  # raw bytes now read as another type
        else:
            dtype = helper.tensor_dtype_to_np_dtype(elem)
            init.CopyFrom(numpy_helper.from_array(values.astype(dtype), init.name))
    elif kind == "io_type":
        infos = [*graph.input, *graph.output]
        infos[a % len(infos)].type.tensor_type.elem_type = ELEM_TYPES[b % len(ELEM_TYPES)]
    elif kind == "shape" and inits:
        init = inits[a % len(inits)]
        dims = list(init.dims) or [1]
        dims[b % len(dims)] = [0, 1, 2, 7, 9, 100][c % 6]
        size = int(np.prod(dims))
        init.CopyFrom(
            numpy_helper.from_array(np.full(dims, 0.5, np.float32).reshape(dims), init.name)
            if size < 10_000
            else init
        )
    elif kind == "io_shape":
        infos = [*graph.input, *graph.output]
        dims = infos[a % len(infos)].type.tensor_type.shape.dim
        if dims:
            dims[b % len(dims)].dim_value = [0, 1, 3, 64][c % 4]
    elif kind == "attribute" and nodes:
        name, value = ATTRIBUTES[b % len(ATTRIBUTES)]
        node = nodes[a % len(nodes)]
        kept = [x for x in node.attribute if x.name != name]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute(name, value)])
    elif kind == "drop_node" and nodes:
        del nodes[a % len(nodes)]
    elif kind == "dup_node" and nodes:
        nodes.insert(b % (len(nodes) + 1), nodes[a % len(nodes)])
    elif kind == "drop_init" and inits:
        del inits[a % len(inits)]
    elif kind == "dup_init" and inits:
        inits.append(inits[a % len(inits)])
    elif kind == "value" and inits:
        init = inits[a % len(inits)]
        if init.data_type != TensorProto.FLOAT:
            return
        values = numpy_helper.to_array(init).copy()
        if values.size:
            values.reshape(-1)[b % values.size] = VALUES[c % len(VALUES)]
            init.CopyFrom(numpy_helper.from_array(values, init.name))
    elif kind == "rewire" and nodes:
        node = nodes[a % len(nodes)]
        if node.input:
            node.input[b % len(node.input)] = ["nowhere", "input", "fc0.bias", ""][c % 4]


MUTATION = st.tuples(
    st.sampled_from(["elem_type", "io_type", "shape", "io_shape", "attribute", "drop_node",
                     "dup_node", "drop_init", "dup_init", "value", "rewire"]),
    st.integers(0, 20), st.integers(0, 20), st.integers(0, 20),
)  # fmt: skip
MODELS = st.lists(MUTATION, min_size=1, max_size=3)


def _mutated(mutations: list[tuple[str, int, int, int]], path: Path) -> None:
    model = mlp([6, 5, 3], seed=4)
    for mutation in mutations:
        _mutate(model, *mutation)
    path.write_bytes(model.SerializeToString())


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _no_temp_files(folder: Path) -> None:
    assert [n for n in os.listdir(folder) if n.endswith(".tmp")] == []


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    np.save(folder / "x.npy", np.full((2, 6), 0.5, np.float32))
    made = handmade_mlp(pes=4, samples=2)
    onnx.save(made.compressed, folder / "c.onnx")
    save(made.program, folder / "p.eie")
    return folder


@fuzz(12)
@given(mutations=MODELS)
def test_mutated_models_through_compile(work: Path, mutations: list) -> None:
    _mutated(mutations, work / "m.onnx")
    code = _exit_code(["compile", str(work / "m.onnx"), "-o", str(work / "o.eie"), "--pes", "2",
                       "-q"])  # fmt: skip
    assert code in (0, 1)
    _no_temp_files(work)


@pytest.mark.slow
@fuzz(40)
@given(mutations=MODELS, command=st.sampled_from(["compile", "run"]))
def test_mutated_models_through_compile_and_run(work: Path, mutations: list, command: str) -> None:
    _mutated(mutations, work / "m.onnx")
    out = ["-o", str(work / "o.eie")] if command == "compile" else ["-i", str(work / "x.npy")]
    extra = ["--pes", "2", "--json"] if command == "run" else []
    code = _exit_code([command, str(work / "m.onnx"), *out, *extra, "-q"])
    assert code in (0, 1)
    _no_temp_files(work)


DTYPES = st.sampled_from(["float32", "float16", "float64", "int8", "int64", "bool", "complex64",
                          "U1", "uint16"])  # fmt: skip
SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
    st.sampled_from([(1, 64), (3, 64), (0, 64), (64,), (1, 1, 64), (1, 65), (2, 1, 64)]),
)
FLOATS = st.sampled_from([0.0, 0.5, -1.0, 1e30, -1e30, float("nan"), float("inf"), 7.0])


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype, shape = draw(DTYPES), draw(SHAPES)
    if dtype == "U1":
        return np.full(shape, "a")
    value = draw(FLOATS)
    with np.errstate(all="ignore"):
        base = np.full(shape, value, np.float64)
        if base.size:
            base.reshape(-1)[draw(st.integers(0, base.size - 1))] = draw(FLOATS)
        return base.astype(dtype)


@fuzz(25)
@given(array=arrays(), pickle=st.booleans())
def test_mutated_inputs_through_emulate(work: Path, array: np.ndarray, pickle: bool) -> None:
    path = work / "in.npy"
    np.save(path, array.astype(object) if pickle else array, allow_pickle=True)
    code = _exit_code(["emulate", str(work / "p.eie"), "-i", str(path), "-q"])
    assert code in (0, 1)


@fuzz(6)
@given(array=arrays())
def test_mutated_inputs_through_verify(work: Path, array: np.ndarray) -> None:
    path = work / "in.npy"
    np.save(path, array)
    code = _exit_code(["verify", str(work / "c.onnx"), str(work / "p.eie"), "-i", str(path), "-q"])
    assert code in (0, 1)


def test_a_compile_after_a_failed_compile_in_the_same_process() -> None:
    """An EiecError inside the compression passes once left TVM's pass-timing stack unbalanced:
    the next compile in the process failed or corrupted the heap."""
    import eiec
    from eiec.errors import CompileError

    model = mlp([8, 6, 4], seed=1)
    for _ in range(2):
        with pytest.raises(CompileError):
            eiec.compile_model(model, eiec.CompileOptions.of(pes=2, sparsity={"nosuch": 0.5}))
        assert eiec.compile_model(model, eiec.CompileOptions.of(pes=2)).program.layers
