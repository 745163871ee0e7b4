"""The corpus's real exporters' models, numeric edge cases and data mistakes (tests/reliability).

``corpus.py`` builds these fixtures (:func:`build_fixtures`, into ``{d}/models``) and runs these
cases (:func:`cases`) with the rest. The models come from PyTorch's two exporters, onnxruntime's
quantizers and skl2onnx (shipped in ``tests/reliability/models``, written once by its
``build_models.py`` with the torch environment) and from ``onnx.helper`` here.

Most cases are *expectations*: the command runs in-process and must end as stated (exit code,
text in the one ``error:`` line, ``warning:`` lines); a mismatch raises :class:`Unexpected`,
which the corpus counts as a traceback. They cover four classes:

- **numeric**: weights 16-bit fixed point cannot hold (outliers, values below a layer's step,
  denormals, huge values), constants of CPU-side ops it need not hold (masks of -3.4e38, -inf);
- **model**: static batches, weights listed as or given as inputs, opsets 7 to 9, quantised
  models, sparse constants, tied weights, duplicate node names, compressed models compiled again;
- **data**: training, calibration, labels and inputs that cannot mean what they seem (object
  arrays, too few samples, all zeros, values beyond 16 bits, classes the model lacks,
  saturating inputs, an accumulator too narrow);
- **verify**: a model of the program's graph with other weights is refused.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.compiler.models import mlp

SHIPPED = Path(__file__).resolve().parent / "models"
#: The shipped exporters' models (tests/reliability/models/build_models.py).
EXPORTS = (
    "torch_batch4", "torch_dropout_training", "torch_dynamo_batch4", "torch_kiai",
    "torch_opset7", "torch_opset8", "torch_opset9", "ort_qdq", "ort_qdq_per_channel",
    "ort_dynamic", "skl_mlp_opset9", "skl_logreg_opset9",
)  # fmt: skip


class Unexpected(Exception):
    """A case ended otherwise than it must (the corpus counts it as a traceback)."""


# --- fixtures ---------------------------------------------------------------------------------


def _save(model: onnx.ModelProto, path: Path) -> None:
    path.write_bytes(model.SerializeToString())


def _edited(
    model: onnx.ModelProto, name: str, edit: Callable[[np.ndarray], None]
) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        if init.name == name:
            values = numpy_helper.to_array(init).copy()
            edit(values)
            init.CopyFrom(numpy_helper.from_array(values, name))
    return copy


def _model(nodes: list, inputs: list, outputs: list, inits: Iterable = (), opset: int = 17):
    graph = helper.make_graph(nodes, "corpus", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _vi(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _numeric_models(out: Path) -> None:
    """The MLP 8-6-4 with one weight, one bias or the whole layer at a value of interest."""
    base = mlp([8, 6, 4], seed=1)
    _save(base, out / "base.onnx")
    _save(mlp([8, 6, 4], seed=7), out / "other_seed.onnx")

    def weight(value: float, index: tuple[int, int] = (2, 3)) -> Callable[[np.ndarray], None]:
        return lambda w: w.__setitem__(index, value)

    def whole(value: float) -> Callable[[np.ndarray], None]:
        return lambda w: w.__setitem__(slice(None), value)

    for name, tensor, edit in (
        ("denormal", "fc0.weight", weight(1e-42)),
        ("tiny", "fc0.weight", weight(1e-30)),
        ("small", "fc0.weight", weight(1e-9)),
        ("outlier", "fc0.weight", weight(1e4)),
        ("outlier_neg", "fc0.weight", weight(-3e4)),
        ("huge", "fc0.weight", weight(2.1e9)),
        ("beyond", "fc0.weight", weight(3e9)),
        ("all_tiny", "fc0.weight", whole(1e-30)),
        ("all_small", "fc0.weight", whole(1e-7)),
        ("bias_tiny", "fc0.bias", whole(-1.5e-7)),
        ("bias_one_tiny", "fc0.bias", weight(-1.5e-7, (1,))),
        ("bias_big", "fc0.bias", weight(1e4, (1,))),
        ("last_outlier", "fc1.weight", weight(5e3, (0, 0))),
    ):
        _save(_edited(base, tensor, edit), out / f"num_{name}.onnx")
    # A constant of a CPU-side op (an attention mask) beyond 16 bits: Gemm, Relu, Add(mask),
    # Softmax; the mask is no layer's bias.
    for name, value in (("mask", -3.4e38), ("mask_inf", -np.inf)):
        mask = np.zeros((1, 4), np.float32)
        mask[0, 3] = value
        w = numpy_helper.from_array(np.random.default_rng(3).standard_normal((4, 8)).astype(
            np.float32), "w")  # fmt: skip
        model = _model(
            [
                helper.make_node("Gemm", ["x", "w"], ["g"], transB=1, name="fc"),
                helper.make_node("Relu", ["g"], ["r"]),
                helper.make_node("Add", ["r", "mask"], ["masked"]),
                helper.make_node("Softmax", ["masked"], ["y"]),
            ],
            [_vi("x", [1, 8])],
            [_vi("y", [1, 4])],
            [w, numpy_helper.from_array(mask, "mask")],
        )
        _save(model, out / f"num_{name}.onnx")


def _class_models(out: Path) -> None:
    rng = np.random.default_rng(5)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    # A weight in a Constant node with a sparse_value, and a sparse initialiser.
    sparse_w = np.where(np.abs(w) > 0.7, w, 0).astype(np.float32)
    index = np.flatnonzero(sparse_w)
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(sparse_w.ravel()[index], "w"),
        numpy_helper.from_array(index.astype(np.int64), "w_index"),
        [8, 4],
    )
    _save(
        _model(
            [helper.make_node("Constant", [], ["w"], sparse_value=sparse),
             helper.make_node("MatMul", ["x", "w"], ["y"])],
            [_vi("x", [1, 8])], [_vi("y", [1, 4])],
        ),
        out / "sparse_constant.onnx",
    )  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "corpus", [_vi("x", [1, 8])],
        [_vi("y", [1, 4])], sparse_initializer=[sparse],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    _save(model, out / "sparse_initializer.onnx")
    # Tied weights: two square layers share one initialiser.
    tied = numpy_helper.from_array((rng.standard_normal((8, 8)) / 3).astype(np.float32), "s")
    _save(
        _model(
            [helper.make_node("MatMul", ["x", "s"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "s"], ["y"])],
            [_vi("x", [1, 8])], [_vi("y", [1, 8])], [tied],
        ),
        out / "tied.onnx",
    )  # fmt: skip
    # A weight that is a graph input without an initialiser (fed at run time), batch 4.
    _save(
        _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_vi("x", [4, 8]),
               _vi("w", [8, 4])], [_vi("y", [4, 4])]),
        out / "weight_input.onnx",
    )  # fmt: skip
    np.save(out / "w.npy", w)
    np.save(out / "w_wrong.npy", w[:6])
    # Every ONNX node named alike: the layers are fc, fc_2, fc_3.
    dup = mlp([8, 6, 5, 4], seed=1)
    for node in dup.graph.node:
        if node.op_type == "Gemm":
            node.name = "/fc/Gemm"
    _save(dup, out / "dup_names.onnx")
    # A static batch the graph depends on: Reshape to the constant [4, 2, 4].
    shape = numpy_helper.from_array(np.array([4, 2, 2], np.int64), "shape")
    _save(
        _model(
            [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Reshape", ["h", "shape"], ["y"])],
            [_vi("x", [4, 8])], [_vi("y", [4, 2, 2])],
            [numpy_helper.from_array(w, "w"), shape],
        ),
        out / "batch_reshape.onnx",
    )  # fmt: skip
    # Two inputs, each to its own layer.
    _save(
        _model(
            [helper.make_node("Gemm", ["a", "w1"], ["y1"], transB=1),
             helper.make_node("Gemm", ["b", "w2"], ["y2"], transB=1)],
            [_vi("a", [1, 8]), _vi("b", [1, 8])], [_vi("y1", [1, 4]), _vi("y2", [1, 4])],
            [numpy_helper.from_array(w.T.copy(), "w1"), numpy_helper.from_array(-w.T, "w2")],
        ),
        out / "two_inputs.onnx",
    )  # fmt: skip
    # Weights listed as graph inputs (keep_initializers_as_inputs) at IR version 3, opset 8.
    old = mlp([8, 6, 4], seed=4, batch=1)
    for init in old.graph.initializer:
        old.graph.input.append(_vi(init.name, list(init.dims)))
    old.opset_import[0].version = 8
    old.ir_version = 3
    _save(old, out / "ir3_opset8.onnx")


def _arrays(out: Path) -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    np.save(out / "x.npy", x)
    np.save(out / "x4.npy", x[:4])
    np.save(out / "x3.npy", x[:3])
    np.save(out / "x5.npy", np.concatenate([x, x])[:5])
    big = x.copy()
    big[1, 2] = 1e30
    np.save(out / "x_1e30.npy", big)
    wide = x.copy()
    wide[0, 0] = 1e9
    np.save(out / "x_wide.npy", wide)
    np.save(out / "x_zeros.npy", np.zeros_like(x))
    images = rng.integers(0, 256, (6, 8))
    np.save(out / "x_uint8.npy", images.astype(np.uint8))
    np.save(out / "x_0_255.npy", images.astype(np.float32))
    np.save(out / "labels_ok.npy", np.array([0, 1, 2, 3, 0, 1]))
    np.save(out / "labels_big.npy", np.array([0, 1, 2, 3, 7, 9]))
    np.save(out / "labels_negative.npy", np.array([0, -1, 2, 3, 0, 1]))
    objects = np.empty((40, 8), dtype=object)
    objects[:] = 1.0
    np.savez(out / "train_objects.npz", x=objects, y=np.zeros(40, np.int64))
    labels_objects = np.empty(40, dtype=object)
    labels_objects[:] = 1
    np.savez(out / "train_label_objects.npz", x=np.ones((40, 8), np.float32), y=labels_objects)
    for count in (2, 20, 39):
        np.savez(out / f"train_{count}.npz", x=rng.standard_normal((count, 8)).astype(np.float32),
                 y=rng.integers(0, 4, count))  # fmt: skip
    np.savez(out / "train_64.npz", x=rng.standard_normal((64, 8)).astype(np.float32),
             y=rng.integers(0, 4, 64))  # fmt: skip


def build_fixtures(folder: Path) -> None:
    """Write every model and array the cases read into ``folder/models``."""
    out = folder / "models"
    out.mkdir()
    for name in EXPORTS:
        shutil.copyfile(SHIPPED / f"{name}.onnx", out / f"{name}.onnx")
    shutil.copyfile(SHIPPED / "skl_x.npy", out / "skl_x.npy")
    _numeric_models(out)
    _class_models(out)
    _arrays(out)


# --- expectations -----------------------------------------------------------------------------


class Step:
    """One command of a case: ``argv`` (``{d}`` the fixture folder, ``{m}`` its models,
    ``{t}`` a fresh folder for outputs), the exit ``code`` it must end with, text its one
    ``error:`` line must hold, and texts of the ``warning:`` lines it must print (no other
    warning)."""

    def __init__(
        self,
        *argv: str,
        code: int = 0,
        error: str | None = None,
        warns: tuple[str, ...] = (),
        then: Callable[[Path], str | None] | None = None,
    ) -> None:
        self.argv, self.code, self.error, self.warns = argv, code, error, warns
        #: A check of the step's outputs (given the outputs folder): a problem, or None.
        self.then = then

    def check(self, folder: Path, outputs: Path) -> None:
        from eiec.cli import main

        args = [
            a.replace("{m}", str(folder / "models")).replace("{d}", str(folder))
            .replace("{t}", str(outputs))
            for a in self.argv
        ]  # fmt: skip
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
        text = err.getvalue()
        lines = text.splitlines()
        errors = [line for line in lines if ": error: " in line]
        warnings = [line for line in lines if ": warning: " in line]
        problems = []
        if code != self.code:
            problems.append(f"exit {code}, not {self.code}")
        if "Traceback" in text:
            problems.append("a traceback")
        if self.code == 1 and len(errors) != 1:
            problems.append(f"{len(errors)} error lines")
        if self.error is not None and not any(self.error in line for line in errors):
            problems.append(f"no error line with {self.error!r}")
        if any(len(line) > MAX_LINE for line in errors + warnings):
            problems.append(f"a message longer than {MAX_LINE} characters")
        if self.then is not None and code == 0 and (problem := self.then(outputs)):
            problems.append(problem)
        missing = [w for w in self.warns if not any(w in line for line in warnings)]
        if missing or len(warnings) > len(self.warns):
            problems.append(f"warnings {warnings}, expected {list(self.warns)}")
        if problems:
            raise Unexpected(f"eiec {' '.join(self.argv)}: {'; '.join(problems)}: {text[-400:]!r}")


def density_at_most(limit: float) -> Callable[[Path], str | None]:
    """A :class:`Step` check: every layer of ``{t}/r.json`` (``--report-json``) at most
    ``limit`` dense (the sparsity target was reached)."""

    def check(outputs: Path) -> str | None:
        import json

        layers = json.loads((outputs / "r.json").read_text())["layers"]
        dense = {layer["name"]: layer["weight_density"] for layer in layers}
        over = {name: value for name, value in dense.items() if value > limit}
        return f"layers denser than {limit:.0%}: {over}" if over else None

    return check


#: The longest message a case accepts (one readable line, however many nodes are named).
MAX_LINE = 1000


def expect(*steps: Step) -> Callable[[Path], None]:
    """A case's call: run ``steps`` in order, each checked (:meth:`Step.check`); outputs go to
    a temporary folder outside the fixtures, removed afterwards."""

    def call(folder: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="eiec-corpus-out-") as outputs:
            for step in steps:
                step.check(folder, Path(outputs))

    return call


# --- cases ------------------------------------------------------------------------------------

#: Full messages of the named cases (checked by tests/reliability/test_corpus.py).
_NUMERIC_OUTLIER = (
    "eiec compile: error: layer fc0: 44 of 48 non-zero weights round to 0 in 16-bit fixed "
    "point: one format holds the layer's weights and bias, its largest value (3e+04, a weight) "
    "sets the step to 1, and values below 0.5 are lost (the values span too wide a range for "
    "one 16-bit format: clip or remove the outliers, or retrain with weight decay)"
)


def cases() -> list:
    """Every case of this module, in a fixed order (``corpus.Case`` objects)."""
    from tests.reliability.corpus import Case

    out: list = []

    def add(name: str, category: str, *steps: Step, slow: bool = True) -> None:
        out.append(Case(name, category, call=expect(*steps), may_pass=True, slow=slow))

    m = "{m}"
    fixed = "16-bit fixed point"

    # -- numeric: what 16-bit fixed point holds, in compile and run, at two sparsities --
    ok = ("denormal", "tiny", "small", "bias_tiny", "bias_one_tiny")
    for name in ok:
        for sparsity in ("0", "0.9"):
            add(f"numeric: compile {name} weights at sparsity {sparsity}", "numeric",
                Step("compile", f"{m}/num_{name}.onnx", "-o", "{t}/p.eie", "-q", "--sparsity",
                     sparsity))  # fmt: skip
        add(f"numeric: run {name} weights", "numeric",
            Step("run", f"{m}/num_{name}.onnx", "-i", f"{m}/x.npy", "-q", "--sparsity",
                 "0.5"))  # fmt: skip
    refused = {
        "huge": "non-zero weights round to 0",
        "outlier_neg": "non-zero weights round to 0",
        "all_tiny": "non-zero weights round to 0",
        "all_small": "non-zero weights round to 0",
    }
    for name, text in refused.items():
        for command in ("compile", "run"):
            io_args = ("-o", "{t}/p.eie") if command == "compile" else ("-i", f"{m}/x.npy")
            add(f"numeric: {command} {name} weights at sparsity 0", "numeric",
                Step(command, f"{m}/num_{name}.onnx", *io_args, "-q", "--sparsity", "0",
                     code=1, error=text))  # fmt: skip
    add("numeric: compile a weight beyond 16 bits", "numeric",
        Step("compile", f"{m}/num_beyond.onnx", "-o", "{t}/p.eie", code=1,
             error="beyond 16-bit fixed point"))  # fmt: skip
    add("numeric: run a weight beyond 16 bits", "numeric",
        Step("run", f"{m}/num_beyond.onnx", "-i", f"{m}/x.npy", code=1,
             error="beyond 16-bit fixed point"))  # fmt: skip
    add("numeric: compile a bias 1e4 beside weights of 0.3", "numeric",
        Step("compile", f"{m}/num_bias_big.onnx", "-o", "{t}/p.eie", "--sparsity", "0", code=1,
             error="non-zero weights round to 0"))  # fmt: skip
    for name in ("outlier", "last_outlier"):
        add(f"numeric: compile {name} at sparsity 0 (some weights round away)", "numeric",
            Step("compile", f"{m}/num_{name}.onnx", "-o", "{t}/p.eie", "-q", "--sparsity", "0",
                 warns=("round to 0 in " + fixed,)))  # fmt: skip
        add(
            f"numeric: compile {name} at sparsity 0.9",
            "numeric",
            Step("compile", f"{m}/num_{name}.onnx", "-o", "{t}/p.eie", "-q"),
        )
    for name in ("mask", "mask_inf"):
        add(
            f"numeric: run a CPU-side {name} constant",
            "numeric",
            Step("run", f"{m}/num_{name}.onnx", "-i", f"{m}/x.npy", "-q"),
        )
        add(f"numeric: compile a CPU-side {name} constant", "numeric",
            Step("compile", f"{m}/num_{name}.onnx", "-o", "{t}/p.eie", code=1,
                 error="cannot run on EIE"))  # fmt: skip

    # -- model classes: the real exporters' models --
    runs = ("torch_batch4", "torch_dropout_training", "torch_dynamo_batch4", "torch_kiai",
            "torch_opset9", "ort_qdq", "ort_qdq_per_channel")  # fmt: skip
    for name in runs:
        for x in ("x3", "x4", "x5"):
            add(f"model: run {name} on {x[1:]} samples", "model",
                Step("run", f"{m}/{name}.onnx", "-i", f"{m}/{x}.npy", "-q"))  # fmt: skip
    for name in ("torch_opset7", "torch_opset8"):
        add(
            f"model: run {name} (weights listed as inputs, batch 1)",
            "model",
            Step("run", f"{m}/{name}.onnx", "-i", f"{m}/x3.npy", "-q"),
        )
    for name in ("torch_batch4", "torch_dynamo_batch4", "torch_kiai", "torch_opset7",
                 "torch_opset8", "torch_opset9"):  # fmt: skip
        add(f"model: compile {name}, export, verify both", "model",
            Step("compile", f"{m}/{name}.onnx", "-o", "{t}/p.eie", "--export-onnx",
                 "{t}/c.onnx", "-q"),
            Step("verify", f"{m}/{name}.onnx", "{t}/p.eie", "-i", f"{m}/x4.npy", "-q"),
            Step("verify", "{t}/c.onnx", "{t}/p.eie", "-i", f"{m}/x4.npy", "-q"))  # fmt: skip
    add(
        "model: run an IR-3 opset-8 model listing its weights as inputs",
        "model",
        Step("run", f"{m}/ir3_opset8.onnx", "-i", f"{m}/x3.npy", "-q"),
    )
    add(
        "model: compile an IR-3 opset-8 model",
        "model",
        Step("compile", f"{m}/ir3_opset8.onnx", "-o", "{t}/p.eie", "-q"),
    )
    for name in ("ort_qdq", "ort_qdq_per_channel", "ort_dynamic"):
        add(f"model: compile {name} (quantised)", "model",
            Step("compile", f"{m}/{name}.onnx", "-o", "{t}/p.eie", code=1,
                 error="give eiec the float model"))  # fmt: skip
    add("model: run ort_dynamic (integer matmuls)", "model",
        Step("run", f"{m}/ort_dynamic.onnx", "-i", f"{m}/x4.npy", code=1,
             error="give eiec the float model"))  # fmt: skip
    add("model: compile torch_dropout_training", "model",
        Step("compile", f"{m}/torch_dropout_training.onnx", "-o", "{t}/p.eie", code=1,
             error="training_mode must be a constant false"))  # fmt: skip
    add(
        "model: run skl2onnx MLP at opset 9",
        "model",
        Step("run", f"{m}/skl_mlp_opset9.onnx", "-i", f"{m}/skl_x.npy", "-q"),
    )
    add("model: compile skl2onnx MLP at opset 9", "model",
        Step("compile", f"{m}/skl_mlp_opset9.onnx", "-o", "{t}/p.eie", code=1,
             error="cannot run on EIE"))  # fmt: skip
    add("model: run skl2onnx LogisticRegression at opset 9", "model",
        Step("run", f"{m}/skl_logreg_opset9.onnx", "-i", f"{m}/skl_x.npy", code=1,
             error="nothing for EIE to run"))  # fmt: skip
    for name in ("sparse_constant", "sparse_initializer", "tied"):
        add(f"model: compile {name}, export, verify both", "model",
            Step("compile", f"{m}/{name}.onnx", "-o", "{t}/p.eie", "--export-onnx",
                 "{t}/c.onnx", "-q"),
            Step("verify", f"{m}/{name}.onnx", "{t}/p.eie", "-i", f"{m}/x.npy", "-q"),
            Step("verify", "{t}/c.onnx", "{t}/p.eie", "-i", f"{m}/x.npy", "-q"))  # fmt: skip
        add(
            f"model: run {name}", "model", Step("run", f"{m}/{name}.onnx", "-i", f"{m}/x.npy", "-q")
        )
    add("model: run with a weight given as an input", "model",
        Step("run", f"{m}/weight_input.onnx", "-i", f"x={m}/x4.npy", "-i", f"w={m}/w.npy",
             "-q"))  # fmt: skip
    add("model: run with a weight given as an input, other samples", "model",
        Step("run", f"{m}/weight_input.onnx", "-i", f"x={m}/x.npy", "-i", f"w={m}/w.npy",
             "-q"))  # fmt: skip
    add("model: run with a weight input of the wrong shape", "model",
        Step("run", f"{m}/weight_input.onnx", "-i", f"x={m}/x4.npy", "-i",
             f"w={m}/w_wrong.npy", code=1))  # fmt: skip
    add("model: run a static batch the graph depends on", "model",
        Step("run", f"{m}/batch_reshape.onnx", "-i", f"{m}/x3.npy", code=1,
             error="export the model with a dynamic batch axis"))  # fmt: skip
    add("model: --sparsity on a node name three layers share", "model",
        Step("compile", f"{m}/dup_names.onnx", "-o", "{t}/p.eie", "--sparsity", "/fc/Gemm=0.5",
             code=1, error="'/fc/Gemm' names 3 layers (fc, fc_2, fc_3)"))  # fmt: skip
    add("model: run --sparsity on a node name three layers share", "model",
        Step("run", f"{m}/dup_names.onnx", "-i", f"{m}/x.npy", "--sparsity", "/fc/Gemm=0.5",
             code=1, error="names 3 layers"))  # fmt: skip
    add("model: --sparsity on the layers' own names despite shared node names", "model",
        Step("compile", f"{m}/dup_names.onnx", "-o", "{t}/p.eie", "-q", "--sparsity",
             "fc_2=0.5,*=0.8"))  # fmt: skip
    for sparsity in ("0", "0.5", "0.9"):
        add(f"model: compile, then compile the export again at sparsity 0 (from {sparsity})",
            "model",
            Step("compile", f"{m}/base.onnx", "-o", "{t}/p.eie", "--export-onnx", "{t}/c.onnx",
                 "-q", "--sparsity", sparsity),
            Step("compile", "{t}/c.onnx", "-o", "{t}/p2.eie", "--export-onnx", "{t}/c2.onnx",
                 "-q", "--sparsity", "0"),
            Step("run", "{t}/c.onnx", "-i", f"{m}/x.npy", "-q", "--sparsity", "0"),
            Step("verify", "{t}/c2.onnx", "{t}/p2.eie", "-i", f"{m}/x.npy", "-q"),
            Step("verify", "{t}/c.onnx", "{t}/p2.eie", "-i", f"{m}/x.npy", "-q"))  # fmt: skip

    # -- data: training, calibration, labels and inputs --
    base = f"{m}/base.onnx"
    add("data: --train with an object array", "data",
        Step("compile", base, "-o", "{t}/p.eie", "--train", f"{m}/train_objects.npz", code=1,
             error="holds Python objects"))  # fmt: skip
    add("data: --train with object labels", "data",
        Step("compile", base, "-o", "{t}/p.eie", "--train", f"{m}/train_label_objects.npz",
             code=1, error="holds Python objects"))  # fmt: skip
    for count in (2, 20, 39):
        add(f"data: --train with {count} samples (less than a batch)", "data",
            Step("compile", base, "-o", "{t}/p.eie", "--train", f"{m}/train_{count}.npz",
                 "--epochs", "2", code=1, error="fewer than one batch of 32"))  # fmt: skip
    add("data: --train with 2 samples and --epochs 0", "data",
        Step("compile", base, "-o", "{t}/p.eie", "-q", "--train", f"{m}/train_2.npz",
             "--epochs", "0"))  # fmt: skip
    add("data: --train with 64 samples reaches 90% sparsity", "data",
        Step("compile", base, "-o", "{t}/p.eie", "-q", "--train", f"{m}/train_64.npz",
             "--epochs", "2", "--report-json", "{t}/r.json",
             then=density_at_most(0.11)))  # fmt: skip
    for name, text in (
        ("x_zeros", "all zero"),
        ("x_1e30", "beyond what 16-bit fixed point holds"),
        ("x_wide", "values of the calibration samples round to 0"),
    ):
        add(f"data: --calibration {name}", "data",
            Step("compile", base, "-o", "{t}/p.eie", "--calibration", f"{m}/{name}.npy",
                 code=1, error=text))  # fmt: skip
    add("data: run on all-zero inputs (they would set the formats)", "data",
        Step("run", base, "-i", f"{m}/x_zeros.npy", code=1,
             error="(which set the formats: no --calibration) are all zero"))  # fmt: skip
    add(
        "data: run on all-zero inputs with --input-range",
        "data",
        Step("run", base, "-i", f"{m}/x_zeros.npy", "--input-range", "4", "-q"),
    )
    add(
        "data: run on inputs beyond 16 bits",
        "data",
        Step("run", base, "-i", f"{m}/x_1e30.npy", code=1, error="beyond what 16-bit"),
    )
    add(
        "data: run on inputs of too wide a range",
        "data",
        Step("run", base, "-i", f"{m}/x_wide.npy", code=1, error="round to 0"),
    )
    for bits in ("17", "20", "24", "28"):
        add(f"data: --acc-bits {bits}", "data",
            Step("compile", base, "-o", "{t}/p.eie", "--acc-bits", bits, code=1,
                 error="raise --acc-bits to"))  # fmt: skip
        add(f"data: run --acc-bits {bits}", "data",
            Step("run", base, "-i", f"{m}/x.npy", "--acc-bits", bits, code=1,
                 error="accumulator"))  # fmt: skip
    for bits in ("32", "40", "64"):
        add(
            f"data: --acc-bits {bits} holds the sums",
            "data",
            Step("compile", base, "-o", "{t}/p.eie", "-q", "--acc-bits", bits),
        )
    for name, text in (("labels_big", "(7, 9) are not classes"),
                       ("labels_negative", "(-1) are not classes")):  # fmt: skip
        add(f"data: run --labels {name}", "data",
            Step("run", base, "-i", f"{m}/x.npy", "--labels", f"{m}/{name}.npy", code=1,
                 error=text))  # fmt: skip
    add(
        "data: run --labels within the classes",
        "data",
        Step("run", base, "-i", f"{m}/x.npy", "--labels", f"{m}/labels_ok.npy", "-q"),
    )
    clamped = "values are beyond its 16-bit buffer's range"
    for name in ("x_0_255", "x_1e30", "x_uint8"):
        add(f"data: emulate {name} (inputs saturate)", "data",
            Step("compile", base, "-o", "{t}/p.eie", "-q"),
            Step("emulate", "{t}/p.eie", "-i", f"{m}/{name}.npy", "-q",
                 warns=(clamped,)))  # fmt: skip
        add(f"data: verify {name} (inputs saturate)", "data",
            Step("compile", base, "-o", "{t}/p.eie", "-q"),
            Step("verify", base, "{t}/p.eie", "-i", f"{m}/{name}.npy", "-q", code=1,
                 error="has dtype uint8" if name == "x_uint8" else clamped))  # fmt: skip
    add("data: run x_0_255 with --input-range 8", "data",
        Step("run", base, "-i", f"{m}/x_0_255.npy", "--input-range", "8", "-q", code=1,
             error=clamped))  # fmt: skip
    add(
        "data: run x_0_255 calibrated on itself (the formats' rounding dwarfs the outputs)",
        "data",
        Step("run", base, "-i", f"{m}/x_0_255.npy", "-q", code=1, error="tolerance"),
    )
    add("data: emulate inputs within the range", "data",
        Step("compile", base, "-o", "{t}/p.eie", "-q"),
        Step("emulate", "{t}/p.eie", "-i", f"{m}/x.npy", "-q"))  # fmt: skip

    two = f"{m}/two_inputs.onnx"
    add("data: --calibration for a model of two inputs", "data",
        Step("compile", two, "-o", "{t}/p.eie", "--calibration", f"{m}/x.npy", code=1,
             error="--calibration: the samples are of one input; this model has 2 ('a', 'b') "
             "(drop --calibration and give --input-range R"))  # fmt: skip
    add("data: --train for a model of two inputs", "data",
        Step("compile", two, "-o", "{t}/p.eie", "--train", f"{m}/train_64.npz", code=1,
             error="training takes a model of one input; this one has 2"))  # fmt: skip
    add(
        "data: compile a model of two inputs", "data", Step("compile", two, "-o", "{t}/p.eie", "-q")
    )
    add(
        "data: run a model of two inputs",
        "data",
        Step("run", two, "-i", f"a={m}/x.npy", "-i", f"b={m}/x.npy", "-q"),
    )

    # -- verify: the model's weights must be the program's source's --
    other, edited = f"{m}/num_bias_one_tiny.onnx", f"{m}/num_small.onnx"
    add("verify: the source model", "verify",
        Step("compile", base, "-o", "{t}/p.eie", "--export-onnx", "{t}/c.onnx", "-q"),
        Step("verify", base, "{t}/p.eie", "-i", f"{m}/x.npy", "-q"),
        Step("verify", "{t}/c.onnx", "{t}/p.eie", "-i", f"{m}/x.npy", "-q"))  # fmt: skip
    for label, model in (("one bias edited", other), ("one weight edited", edited),
                         ("other seed", f"{m}/other_seed.onnx")):  # fmt: skip
        add(f"verify: a model of the same graph, {label}", "verify",
            Step("compile", base, "-o", "{t}/p.eie", "-q"),
            Step("verify", model, "{t}/p.eie", "-i", f"{m}/x.npy", code=1,
                 error="other weights than the source model"))  # fmt: skip
        add(f"verify: the export of a model of the same graph, {label}", "verify",
            Step("compile", base, "-o", "{t}/p.eie", "-q"),
            Step("compile", model, "-o", "{t}/q.eie", "--export-onnx", "{t}/c.onnx", "-q",
                 "--sparsity", "0.5"),
            Step("verify", "{t}/c.onnx", "{t}/p.eie", "-i", f"{m}/x.npy", code=1,
                 error="other weights than the compressed model"))  # fmt: skip
    return out


#: The named cases: argv, full message (``{d}`` the fixture folder), in corpus.Case form.
def named_cases() -> list:
    """Cases whose whole message tests/reliability/test_corpus.py checks."""
    from tests.reliability.corpus import Case

    m = "{d}/models"
    table = [
        (
            "numeric: an outlier weight",
            ("compile", f"{m}/num_outlier_neg.onnx", "-o", "{d}/out.eie", "--sparsity", "0"),
            _NUMERIC_OUTLIER,
        ),
        (
            "numeric: every weight below a step",
            ("compile", f"{m}/num_all_tiny.onnx", "-o", "{d}/out.eie", "--sparsity", "0"),
            "eiec compile: error: layer fc0: 48 of 48 non-zero weights round to 0 in 16-bit fixed "
            "point: one format holds the layer's weights and bias, its largest value (0.08912, in "
            "the bias) sets the step to 3.81e-06, and values below 1.91e-06 are lost (the values "
            "span too wide a range for one 16-bit format: clip or remove the outliers, or retrain "
            "with weight decay)",
        ),
        (
            "model: a node name several layers share",
            ("compile", f"{m}/dup_names.onnx", "-o", "{d}/out.eie", "--sparsity", "/fc/Gemm=0.5"),
            "eiec compile: error: --sparsity: '/fc/Gemm' names 3 layers (fc, fc_2, fc_3): ONNX "
            "nodes of the model share that name (give each layer by its own name: fc=S, fc_2=S, "
            "fc_3=S)",
        ),
        (
            "data: all-zero calibration",
            ("compile", f"{m}/base.onnx", "-o", "{d}/out.eie", "--calibration", f"{m}/x_zeros.npy"),
            "eiec compile: error: the calibration samples are all zero: they cannot set the "
            "formats of the activations (give representative inputs of the model, or "
            "--input-range R instead)",
        ),
        (
            "data: object array in --train",
            ("compile", f"{m}/base.onnx", "-o", "{d}/out.eie", "--train", f"{m}/train_objects.npz"),
            f"eiec compile: error: {m}/train_objects.npz: array 'x' holds Python objects (dtype "
            "object), which eiec does not read (it would need pickle) (save numbers: "
            "numpy.savez(path, x=array.astype(np.float32)) (y as integers))",
        ),
        (
            "data: --train with 2 samples",
            ("compile", f"{m}/base.onnx", "-o", "{d}/out.eie", "--train", f"{m}/train_2.npz"),
            "eiec compile: error: --train: 1 training sample(s), 1 held out: fewer than one batch "
            "of 32, so no training step would run and pruning could not reach its target (give at "
            "least 32 training samples beside the 20% held out, or --epochs 0 (prune and share "
            "without retraining))",
        ),
        (
            "data: --acc-bits 17",
            ("compile", f"{m}/base.onnx", "-o", "{d}/out.eie", "--acc-bits", "17"),
            "eiec compile: error: layer fc0: its sums have 26 fraction bits (the codebook's and "
            "the input's) and reach 19.1: they need a 32-bit accumulator, the machine's has 17 "
            "bits (--acc-bits) (raise --acc-bits to 32 or more (the paper's chip: 48))",
        ),
        (
            "data: labels outside the classes",
            ("run", f"{m}/base.onnx", "-i", f"{m}/x.npy", "--labels", f"{m}/labels_big.npy"),
            "eiec run: error: labels: 2 of 6 labels (7, 9) are not classes of the model: its "
            "output 'output' scores 4 classes (0..3) (give class indices in 0..3, in the order of "
            "the model's outputs)",
        ),
        (
            "model: a quantised model",
            ("run", f"{m}/ort_dynamic.onnx", "-i", f"{m}/x4.npy"),
            "eiec run: error: graph 'main_graph': no layer of the model runs on EIE: BYOC "
            "offloaded nothing (the model is quantised (DynamicQuantizeLinear, MatMulInteger): "
            "give eiec the float model, before onnxruntime's quantize_static/quantize_dynamic; "
            "eiec quantises the weights itself (4-bit shared codebooks, 16-bit fixed point))",
        ),
    ]
    return [Case(name, name.split(":")[0], argv, message=text) for name, argv, text in table]
