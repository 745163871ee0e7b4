"""The bad-input corpus: several hundred named bad inputs through every eiec command.

Run it as a script from the repository root (about 30 s on 2 cores)::

    .venv/bin/python tests/reliability/corpus.py            # the counts
    .venv/bin/python tests/reliability/corpus.py -v         # and every case's outcome

Each case runs ``eiec.cli.main`` in-process (or a Python API call for the BYOC path) in a
folder of shared fixtures, and is classified:

- ``clean``: exit 1 with one line ``eiec CMD: error: ...`` on stderr, or exit 2 (a usage error,
  argparse), or the project's ``EiecError`` from an API call; no file changed or left behind;
- ``traceback``: any other exception escaped (a bug);
- ``overwritten input``: a fixture file (every case's inputs) changed, or lost its mode;
- ``accepted nonsense``: a case that must fail exited 0;
- ``leftover``: a temporary file or an output was left after a failure.

Cases marked ``may_pass`` (e.g. a mutated program that is still valid) count as clean on exit 0
too. ``tests/reliability/test_corpus.py`` runs the fast, named cases with their full messages.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import stat
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from eiec.errors import EiecError
from eiec.isa import format_program, save

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: import the test helpers as tests.*
    sys.path.insert(0, str(ROOT))

from tests.compiler.models import mlp  # noqa: E402
from tests.reliability import corpus_models  # noqa: E402
from tests.runtime.handmade import handmade_mlp  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` for ``eiec`` (``{d}`` is the fixture folder) or an API call.

    ``category`` groups the report; ``message`` is the full expected stderr (without the
    trailing newline) when the case is one of the named, table-driven ones."""

    name: str
    category: str
    argv: tuple[str, ...] = ()
    code: int = 1
    message: str | None = None
    may_pass: bool = False
    call: Callable[[Path], object] | None = None
    slow: bool = False

    def args(self, folder: Path) -> list[str]:
        return [a.replace("{d}", str(folder)) for a in self.argv]


@dataclass
class Outcome:
    case: Case
    verdict: str
    code: int | None
    err: str
    seconds: float
    detail: str = ""


# --- fixtures ---------------------------------------------------------------------------------


def _save(model: onnx.ModelProto, path: Path) -> None:
    path.write_bytes(model.SerializeToString())


def _with_weight(model: onnx.ModelProto, name: str, array: np.ndarray) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(array, name))
    return copy


def _as_dtype(model: onnx.ModelProto, elem: int, np_dtype: type | None) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        values = numpy_helper.to_array(init)
        if np_dtype is not None:
            init.CopyFrom(numpy_helper.from_array(values.astype(np_dtype), init.name))
        else:
            tensor = helper.make_tensor(init.name, elem, values.shape, values.ravel().tolist())
            init.CopyFrom(tensor)
    for info in [*copy.graph.input, *copy.graph.output]:
        info.type.tensor_type.elem_type = elem
    return copy


def _tiny(nodes: list, inputs: list, outputs: list, inits: list | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "bad", inputs, outputs, inits or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _vi(name: str, shape: list, elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def build_fixtures(folder: Path) -> None:
    """Every file the cases read, written once into ``folder``."""
    base = mlp([8, 6, 4], seed=1)
    _save(base, folder / "m.onnx")
    os.link(folder / "m.onnx", folder / "hard.onnx")
    (folder / "sym.onnx").symlink_to("m.onnx")
    (folder / "adir").mkdir()
    made = handmade_mlp(pes=4, samples=3)
    _save(made.compressed, folder / "c.onnx")
    save(made.program, folder / "p.eie")
    os.link(folder / "p.eie", folder / "hardp.eie")
    np.save(folder / "x.npy", made.x)
    np.save(folder / "x1.npy", made.x[:1])
    np.save(folder / "xm.npy", np.ones((2, 8), np.float32))
    np.save(folder / "labels.npy", np.array([0, 1], np.int64))
    np.savez(folder / "train.npz", x=np.ones((4, 8), np.float32), y=np.array([0, 1, 2, 3]))

    weight = numpy_helper.to_array(base.graph.initializer[0])
    for name, value in (("nan", np.nan), ("inf", np.inf), ("ninf", -np.inf), ("huge", 1e30)):
        bad = weight.copy()
        bad[2, 3] = value
        _save(_with_weight(base, "fc0.weight", bad), folder / f"{name}.onnx")
    bias = numpy_helper.to_array(base.graph.initializer[1]).copy()
    bias[1] = np.nan
    _save(_with_weight(base, "fc0.bias", bias), folder / "nanbias.onnx")
    _save(_as_dtype(base, TensorProto.DOUBLE, np.float64), folder / "f64.onnx")
    _save(_as_dtype(base, TensorProto.FLOAT16, np.float16), folder / "f16.onnx")
    _save(_as_dtype(base, TensorProto.BFLOAT16, None), folder / "bf16.onnx")
    _save(mlp([8, 0, 4], seed=1), folder / "zero_out.onnx")
    _save(mlp([0, 4], seed=1), folder / "zero_in.onnx")
    _save(mlp([64, 32, 10], seed=2), folder / "wide.onnx")
    softmax = _tiny(
        [helper.make_node("Softmax", ["x"], ["y"])], [_vi("x", [1, 8])], [_vi("y", [1, 8])]
    )
    _save(softmax, folder / "softmax_only.onnx")
    conv_w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "k")
    conv = _tiny(
        [helper.make_node("Conv", ["x", "k"], ["y"])],
        [_vi("x", [1, 1, 5, 5])],
        [_vi("y", [1, 2, 3, 3])],
        [conv_w],
    )
    _save(conv, folder / "conv_only.onnx")
    fc_w = numpy_helper.from_array(np.full((4, 18), 0.1, np.float32), "w")
    cnn = _tiny(
        [
            helper.make_node("Conv", ["x", "k"], ["c"]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Flatten", ["r"], ["f"]),
            helper.make_node("Gemm", ["f", "w"], ["y"], transB=1),
        ],
        [_vi("x", [1, 1, 5, 5])],
        [_vi("y", [1, 4])],
        [conv_w, fc_w],
    )
    _save(cnn, folder / "cnn.onnx")
    sig = mlp([8, 4], seed=3)
    sig.graph.node.insert(1, helper.make_node("Softplus", ["h0"], ["s0"], name="sig"))
    sig.graph.node[2].input[0] = "s0"
    _save(sig, folder / "sigmoid.onnx")
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "garbage.onnx").write_bytes(np.random.default_rng(0).bytes(300))
    data = (folder / "m.onnx").read_bytes()
    (folder / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (folder / "text.onnx").write_text("this is not a model\n")
    external = mlp([8, 6, 4], seed=1)
    onnx.save(
        external,
        folder / "ext.onnx",
        save_as_external_data=True,
        size_threshold=0,
        location="ext.onnx.data",
    )
    (folder / "ext.onnx.data").unlink()
    corpus_models.build_fixtures(folder)
    nodes = _tiny([], [_vi("x", [1, 8])], [_vi("x", [1, 8])])
    _save(nodes, folder / "no_nodes.onnx")
    dangling = mlp([8, 4], seed=1)
    dangling.graph.node[0].input[0] = "nowhere"
    _save(dangling, folder / "dangling.onnx")
    dup_node = mlp([8, 6, 4], seed=1)
    dup_node.graph.node.append(dup_node.graph.node[0])
    _save(dup_node, folder / "dup_node.onnx")
    dup_init = mlp([8, 6, 4], seed=1)
    dup_init.graph.initializer.append(dup_init.graph.initializer[0])
    _save(dup_init, folder / "dup_init.onnx")
    dropped = mlp([8, 6, 4], seed=1)
    del dropped.graph.initializer[0]
    _save(dropped, folder / "dropped_init.onnx")
    rank3 = mlp([8, 4], seed=1)
    rank3.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(np.ones((4, 8, 1), np.float32), "fc0.weight")
    )
    _save(rank3, folder / "rank3.onnx")
    strin = mlp([8, 4], seed=1)
    strin.graph.input[0].type.tensor_type.elem_type = TensorProto.STRING
    _save(strin, folder / "string_input.onnx")
    badattr = mlp([8, 4], seed=1)
    badattr.graph.node[0].attribute.append(helper.make_attribute("transA", 1))
    _save(badattr, folder / "transA.onnx")
    shape = mlp([8, 4], seed=1)
    shape.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(np.ones((4, 9), np.float32), "fc0.weight")
    )
    _save(shape, folder / "shape_mismatch.onnx")

    lstm = onnx.load(EXAMPLES / "lstm" / "lstm.onnx")
    for attr, value in (("clip", 1.0), ("input_forget", 1)):
        mutated = onnx.ModelProto()
        mutated.CopyFrom(lstm)
        node = next(n for n in mutated.graph.node if n.op_type == "LSTM")
        node.attribute.append(helper.make_attribute(attr, value))
        _save(mutated, folder / f"lstm_{attr}.onnx")
    _save(lstm, folder / "lstm.onnx")
    np.save(folder / "xlstm_wrong.npy", np.ones((5, 1, 7), np.float32))

    arrays = {
        "x_shape": np.ones((1, 5), np.float32),
        "x_rank": np.ones((64,), np.float32),
        "x_rank3": np.ones((1, 1, 64), np.float32),
        "x_nan": np.where(np.arange(64) == 3, np.nan, 0.5).reshape(1, 64).astype(np.float32),
        "x_inf": np.full((1, 64), np.inf, np.float32),
        "x_str": np.array([["a"] * 64]),
        "x_empty": np.zeros((0, 64), np.float32),
        "x_complex": np.ones((1, 64), np.complex64),
        "x_0d": np.array(1.0, np.float32),
        "x_cnn_rank": np.ones((1, 25), np.float32),
        "x_cnn": np.ones((1, 1, 5, 5), np.float32),
        "labels_float": np.array([0.5, 1.5]),
        "calib_shape": np.ones((3, 5), np.float32),
        "calib_nan": np.full((3, 8), np.nan, np.float32),
    }
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    np.save(folder / "x_obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(folder / "x_npz.npy", x=np.ones((1, 64)))
    shutil.move(folder / "x_npz.npy.npz", folder / "x_npz.npy")
    (folder / "x_txt.npy").write_text("1 2 3\n")
    whole = (folder / "x.npy").read_bytes()
    (folder / "x_trunc.npy").write_bytes(whole[: len(whole) // 2])
    (folder / "x_empty_file.npy").write_bytes(b"")
    (folder / "energy_bad.json").write_text("{not json")
    (folder / "energy_list.json").write_text("[1, 2]")
    from tests.reliability.corpus_io import build_io_fixtures  # lazy: it imports Case

    build_io_fixtures(folder)

    text = format_program(made.program)
    lines = text.splitlines(keepends=True)
    rng = np.random.default_rng(13)
    for index in range(PROGRAM_MUTATIONS):
        kind = index % 5
        if kind == 0:  # a line dropped
            drop = int(rng.integers(len(lines)))
            mutated = "".join(lines[:drop] + lines[drop + 1 :])
        elif kind == 1:  # a character replaced
            pos = int(rng.integers(len(text)))
            mutated = text[:pos] + "#@z9-"[int(rng.integers(5))] + text[pos + 1 :]
        elif kind == 2:  # truncated
            mutated = text[: int(rng.integers(len(text)))]
        elif kind == 3:  # a line duplicated
            dup = int(rng.integers(len(lines)))
            mutated = "".join(lines[: dup + 1] + lines[dup:])
        else:  # a number changed
            pos = [i for i, ch in enumerate(text) if ch.isdigit()]
            at = pos[int(rng.integers(len(pos)))]
            mutated = text[:at] + str(int(rng.integers(10))) + text[at + 1 :]
        (folder / f"mut{index}.eie").write_text(mutated)
    (folder / "empty.eie").write_text("")
    (folder / "binary.eie").write_bytes(b"\x00\xff\xfe" * 30)
    (folder / "latin1.eie").write_bytes(text.encode() + b"; caf\xe9\n")


PROGRAM_MUTATIONS = 45


# --- cases ------------------------------------------------------------------------------------


def _npy_missing(path: str) -> str:
    return f"{path}: no such file (give a .npy file written by numpy.save)"


#: Full messages of cases defined in bulk (a usage error's is its last stderr line), and the
#: cases that fail before TVM is imported although their command imports it otherwise.
NAMED = {
    "compile: model empty": "eiec compile: error: {d}/empty.onnx: the file is empty (give the "
    "path of an .onnx file)",
    "compile: model ext": "eiec compile: error: {d}/ext.onnx: the weights of 'fc0.weight' are "
    "stored in {d}/ext.onnx.data, which is missing (keep the external-data files beside the "
    "model, as onnx.save wrote them)",
    "emulate: empty batch": "eiec emulate: error: {d}/x_empty.npy: input 'input' has shape "
    "(0, 64): an empty batch (no samples along axis 0) (give at least one sample)",
    "run: LSTM input of the wrong length": "eiec run: error: {d}/xlstm_wrong.npy: input 'x' has "
    "shape (5, 1, 7), the model takes [5, 1, 8] (a batch along axis 0): axis 2 has size 7, not 8 "
    "(reshape the array to the model's input shape)",
    "verify: program of another model": "eiec verify: error: {d}/p.eie: the program's input "
    "'input' has shape [1, 64], the model's input 'input' ['batch', 8] (give the model the "
    "program was compiled from (eiec compile --export-onnx))",
    "run (BYOC): input x_cnn_rank": "eiec run: error: {d}/x_cnn_rank.npy: input 'x' has shape "
    "(1, 25), the model takes [1, 1, 5, 5] (a batch along axis 0) (reshape the array to rank 4)",
    "compile: --fifo-depth '0'": "eiec compile: error: argument --fifo-depth: expected an "
    "integer in [1, 1024], got '0'",
    "compile: --input-range 'nan'": "eiec compile: error: argument --input-range: expected a "
    "number in (0, 32767], got 'nan'",
    "compile: --spmat-sram '0'": "eiec compile: error: argument --spmat-sram: expected an "
    "integer in [1, 1073741824], got '0'",
    "compile: --sparsity 'fc0=0.5,fc0=0.6'": "eiec compile: error: argument --sparsity: "
    "fc0=0.6: layer 'fc0' is given twice (give each layer once)",
    "emulate: --clock-mhz 'inf'": "eiec emulate: error: argument --clock-mhz: expected a number "
    "in [0.001, 100000], got 'inf'",
    "sweep: --pes 1,1": "eiec sweep: error: argument --pes: 1 is given twice in '1,1'",
}


def cases() -> list[Case]:
    """The whole corpus, in a fixed order."""
    from tests.reliability.corpus_io import NAMED_IO, io_cases  # lazy: it imports Case

    named = {**NAMED, **NAMED_IO}
    return [
        replace(case, message=named[case.name], slow=False) if case.name in named else case
        for case in (
            *_cases(),
            *io_cases(),
            *corpus_models.cases(),
            *corpus_models.named_cases(),
        )
    ]


def _cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    d = "{d}"
    m, c, p, x = f"{d}/m.onnx", f"{d}/c.onnx", f"{d}/p.eie", f"{d}/x.npy"
    comp = ("compile", m, "-o", f"{d}/out.eie")

    # -- paths: missing inputs, directories, outputs onto inputs, unwritable outputs --
    add(
        Case(
            "compile: missing model",
            "path",
            ("compile", f"{d}/none.onnx", "-o", f"{d}/o.eie"),
            message=f"eiec compile: error: {d}/none.onnx: model file not found (give the path "
            "of an .onnx file)",
        )
    )
    add(
        Case(
            "compile: model is a folder",
            "path",
            ("compile", f"{d}/adir", "-o", f"{d}/o.eie"),
            message=f"eiec compile: error: {d}/adir: is a directory, not a file (give the path "
            "of an .onnx file)",
        )
    )
    same = "is the same file as the input {src} ({label}); eiec never overwrites an input (write the output to another file)"  # noqa: E501
    for target in ("m.onnx", "hard.onnx", "sym.onnx"):
        add(
            Case(
                f"compile: -o onto the model ({target})",
                "overwrite",
                ("compile", m, "-o", f"{d}/{target}"),
                message=f"eiec compile: error: {d}/{target}: " + same.format(src=m, label="MODEL"),
            )
        )
    for flag in ("--export-onnx", "--report-json"):
        add(
            Case(
                f"compile: {flag} onto the model",
                "overwrite",
                (*comp, flag, m),
                message=f"eiec compile: error: {m}: " + same.format(src=m, label="MODEL"),
            )
        )
        add(
            Case(
                f"compile: {flag} onto -o",
                "overwrite",
                (*comp, flag, f"{d}/out.eie"),
                message=f"eiec compile: error: {d}/out.eie: is the same file as the output "
                f"{d}/out.eie (--output) (write the output to another file)",
            )
        )
    add(
        Case(
            "compile: --export-onnx onto the calibration",
            "overwrite",
            (*comp, "--calibration", f"{d}/xm.npy", "--export-onnx", f"{d}/xm.npy"),
        )
    )
    unwritable = {
        "adir": (f"{d}/adir", f"{d}/adir: is a directory (give a file name, e.g. {d}/adir/out)"),
        "nodir": (
            f"{d}/nodir/o",
            f"{d}/nodir/o: folder {d}/nodir does not exist (create it first)",
        ),
        "proc": (
            "/proc/o",
            "/proc/o: cannot write in folder /proc: No such file or directory "
            "(choose a folder you can write to)",
        ),
        "devnull": (
            "/dev/null",
            "/dev/null: is not a regular file (a device or pipe would be "
            "replaced, not written) (give the path of a regular file)",
        ),
    }
    for where, (path, text) in unwritable.items():
        for flag in ("-o", "--export-onnx", "--report-json"):
            argv = ("compile", m, "-o", path) if flag == "-o" else (*comp, flag, path)
            add(
                Case(
                    f"compile: {flag} {where}", "path", argv, message=f"eiec compile: error: {text}"
                )
            )
        for flag in ("-o", "--stats-out", "--plot"):
            add(
                Case(
                    f"emulate: {flag} {where}",
                    "path",
                    ("emulate", p, "-i", x, flag, path),
                    message=f"eiec emulate: error: {text}",
                )
            )
        add(
            Case(
                f"fmt: -o {where}",
                "path",
                ("fmt", p, "-o", path),
                message=f"eiec fmt: error: {text}",
            )
        )
    for flag in ("-o", "--stats-out", "--plot"):
        for victim, label in ((p, "PROGRAM"), (x, "--input")):
            add(
                Case(
                    f"emulate: {flag} onto {Path(victim).name}",
                    "overwrite",
                    ("emulate", p, "-i", x, flag, victim),
                    message=f"eiec emulate: error: {victim}: "
                    + same.format(src=victim, label=label),
                )
            )
        add(
            Case(
                f"emulate: {flag} onto a hard link of the program",
                "overwrite",
                ("emulate", p, "-i", x, flag, f"{d}/hardp.eie"),
            )
        )
    add(
        Case(
            "emulate: -o and --stats-out the same file",
            "overwrite",
            ("emulate", p, "-i", x, "-o", f"{d}/y.npy", "--stats-out", f"{d}/y.npy"),
        )
    )
    add(
        Case(
            "emulate: --energy onto... --stats-out onto --energy",
            "overwrite",
            (
                "emulate",
                p,
                "-i",
                x,
                "--energy",
                f"{d}/energy_bad.json",
                "--stats-out",
                f"{d}/energy_bad.json",
            ),
        )
    )
    add(
        Case(
            "fmt: -o onto the program",
            "overwrite",
            ("fmt", p, "-o", p),
            message=f"eiec fmt: error: {p}: " + same.format(src=p, label="PROGRAM"),
        )
    )
    add(Case("fmt: -o onto a hard link", "overwrite", ("fmt", p, "-o", f"{d}/hardp.eie")))
    for command in ("check", "fmt"):
        add(
            Case(
                f"{command}: missing program",
                "path",
                (command, f"{d}/none.eie"),
                message=f"eiec {command}: error: {d}/none.eie: cannot read the program: No such "
                "file or directory",
            )
        )
        add(
            Case(
                f"{command}: program is a folder",
                "path",
                (command, f"{d}/adir"),
                message=f"eiec {command}: error: {d}/adir: is a directory, not a file",
            )
        )
    add(Case("emulate: missing program", "path", ("emulate", f"{d}/none.eie", "-i", x)))
    add(
        Case(
            "emulate: missing input",
            "path",
            ("emulate", p, "-i", f"{d}/none.npy"),
            message=f"eiec emulate: error: {_npy_missing(d + '/none.npy')}",
        )
    )
    add(Case("emulate: input is a folder", "path", ("emulate", p, "-i", f"{d}/adir")))
    add(
        Case(
            "emulate: missing --energy",
            "path",
            ("emulate", p, "-i", x, "--energy", f"{d}/none.json"),
        )
    )
    for argv, name in (
        (("verify", f"{d}/none.onnx", p, "-i", x), "missing model"),
        (("verify", c, f"{d}/none.eie", "-i", x), "missing program"),
        (("verify", c, p, "-i", f"{d}/none.npy"), "missing input"),
        (("verify", c, p, "-i", x, "--original", f"{d}/none.onnx"), "missing --original"),
        (("verify", f"{d}/adir", p, "-i", x), "model is a folder"),
        (("run", f"{d}/none.onnx", "-i", x), "missing model"),
        (("run", m, "-i", f"{d}/none.npy"), "missing input"),
        (("run", m, "-i", f"{d}/xm.npy", "--labels", f"{d}/none.npy"), "missing labels"),
        (("run", m, "-i", f"{d}/xm.npy", "--calibration", f"{d}/none.npy"), "missing calib"),
        (("compile", m, "-o", f"{d}/o.eie", "--calibration", f"{d}/none.npy"), "missing calib"),
    ):
        add(Case(f"{argv[0]}: {name}", "path", argv))

    # -- options: out of range, malformed, duplicated --
    numbers = {
        "--pes": ["0", "-1", "4097", "abc", "1.5", ""],
        "--fifo-depth": ["0", "-1", "1025", "x"],
        "--bits": ["0", "5", "-1", "four"],
        "--input-range": ["0", "-3", "nan", "inf", "1e9", "x"],
        "--spmat-sram": ["0", "-1", "x"],
        "--ptr-sram": ["0", "9999999999"],
        "--act-sram": ["0", "-5"],
        "--sparsity": [
            "-0.1",
            "1.5",
            "nan",
            "abc",
            "",
            "fc0=0.5,fc0=0.6",
            "*=0.1,*=0.2",
            "=0.5",
            "fc0=",
            "fc0=2",
            "fc0=0.5,",
            "fc0",
        ],
    }
    for flag, values in numbers.items():
        for value in values:
            add(Case(f"compile: {flag} {value!r}", "option", (*comp, flag, value), code=2))
        for value in values[:2]:
            add(Case(f"run: {flag} {value!r}", "option", ("run", m, "-i", x, flag, value), code=2))
    for flag, values in {
        "--fifo-depth": ["0", "-1", "2000", "x"],
        "--clock-mhz": ["0", "-1", "nan", "inf", "x", "1e9"],
        "--arith": ["fixed8", ""],
    }.items():
        for value in values:
            add(
                Case(
                    f"emulate: {flag} {value!r}",
                    "option",
                    ("emulate", p, "-i", x, flag, value),
                    code=2,
                )
            )
    for value in ("0", "-2", "y"):
        add(
            Case(
                f"verify: --fifo-depth {value!r}",
                "option",
                ("verify", c, p, "-i", x, "--fifo-depth", value),
                code=2,
            )
        )
    for argv, name, code in (
        (("emulate", p, "-i", f"={x}"), "--input with an empty name", 2),
        (("emulate", p, "-i", "x="), "--input with an empty file", 2),
        (("emulate", p, "-i", x, "-i", x), "the input given twice", 1),
        (("emulate", p, "-i", f"nosuch={x}"), "an unknown input port", 1),
        (("emulate", p, "-i", x, "-o", f"nosuch={d}/y.npy"), "an unknown output port", 1),
        (("verify", c, p, "-i", f"input={x}", "-i", f"input={x}"), "verify: input twice", 1),
        (("compile", m), "compile without -o", 2),
        (("emulate",), "emulate without a program", 2),
        (("frobnicate",), "an unknown command", 2),
        (("compile", m, "-o", f"{d}/o.eie", "--no-such-flag"), "an unknown flag", 2),
    ):
        add(Case(f"options: {name}", "option", argv, code=code))
    for flag, value in (
        ("--epochs", "-1"),
        ("--epochs", "x"),
        ("--seed", "-1"),
        ("--seed", "1.5"),
        ("--max-accuracy-drop", "200"),
        ("--max-accuracy-drop", "nan"),
        ("--distill", "1.5"),
        ("--distill", "-0.1"),
    ):
        add(Case(f"compile: {flag} {value!r}", "option", (*comp, flag, value), code=2))
    for name, extra in (
        ("--train missing", ("--train", f"{d}/none.npz")),
        ("--train a folder", ("--train", f"{d}/adir")),
        ("--train not an archive", ("--train", f"{d}/x_txt.npy")),
        ("--train an .npy", ("--train", x)),
    ):
        add(Case(f"compile: {name}", "option", (*comp, *extra), slow=True))
    add(Case("compile: --sparsity auto without --train", "option",
             (*comp, "--sparsity", "auto"), code=2))  # fmt: skip
    add(Case("compile: -o onto --train", "overwrite",
             ("compile", m, "-o", f"{d}/train.npz", "--train", f"{d}/train.npz"),
             message=f"eiec compile: error: {d}/train.npz: "
             + same.format(src=f"{d}/train.npz", label="--train")))  # fmt: skip
    add(
        Case(
            "compile: --sparsity names no layer",
            "option",
            (*comp, "--sparsity", "nosuch=0.5"),
            slow=True,
        )
    )

    # -- models: dtypes, values, sizes, nothing for EIE, corrupt files --
    models = {
        "nan": "initialiser 'fc0.weight' has nan at index (2, 3) (1 value(s) with NaN or Inf)",
        "inf": "initialiser 'fc0.weight' has inf at index (2, 3) (1 value(s) with NaN or Inf)",
        "ninf": "initialiser 'fc0.weight' has -inf at index (2, 3) (1 value(s) with NaN or Inf)",
        "huge": "initialiser 'fc0.weight' has 1e+30 at index (2, 3) (1 value(s) with a magnitude "
        "above 2.147e+09, beyond 16-bit fixed point)",
        "nanbias": "initialiser 'fc0.bias' has nan at index (1,) (1 value(s) with NaN or Inf)",
    }
    fix = " (retrain or repair the weights; EIE computes in 16-bit fixed point)"
    for name, text in models.items():
        path = f"{d}/{name}.onnx"
        add(
            Case(
                f"compile: weights {name}",
                "model",
                ("compile", path, "-o", f"{d}/o.eie"),
                message=f"eiec compile: error: {path}: {text}{fix}",
            )
        )
        add(Case(f"run: weights {name}", "model", ("run", path, "-i", f"{d}/xm.npy")))
        add(Case(f"verify: weights {name}", "model", ("verify", path, p, "-i", x)))
        add(
            Case(
                f"verify --original: weights {name}",
                "model",
                ("verify", c, p, "-i", x, "--original", path),
            )
        )
    bad_models = [
        "bf16",
        "zero_out",
        "zero_in",
        "softmax_only",
        "conv_only",
        "empty",
        "garbage",
        "truncated",
        "text",
        "ext",
        "no_nodes",
        "dangling",
        "dup_node",
        "dup_init",
        "dropped_init",
        "rank3",
        "string_input",
        "transA",
        "shape_mismatch",
    ]
    for name in bad_models:
        path = f"{d}/{name}.onnx"
        add(
            Case(
                f"compile: model {name}",
                "model",
                ("compile", path, "-o", f"{d}/o.eie"),
                slow=name in {"transA"},
            )
        )
        add(
            Case(
                f"run: model {name}",
                "model",
                ("run", path, "-i", f"{d}/xm.npy"),
                slow=name in {"transA", "shape_mismatch"},
            )
        )
        add(
            Case(
                f"verify: model {name}",
                "model",
                ("verify", path, p, "-i", x),
                slow=name in {"transA", "shape_mismatch"},
            )
        )
    add(
        Case(
            "compile: bfloat16 weights",
            "dtype",
            ("compile", f"{d}/bf16.onnx", "-o", f"{d}/o.eie"),
            message=f"eiec compile: error: {d}/bf16.onnx: graph input 'input' has element type "
            "BFLOAT16, which eiec does not compute in (FLOAT, FLOAT16 or DOUBLE) (convert the "
            "model to float32, e.g. with onnxconverter-common)",
        )
    )
    add(
        Case(
            "compile: a 8->0 layer",
            "size",
            ("compile", f"{d}/zero_out.onnx", "-o", f"{d}/o.eie"),
            message=f"eiec compile: error: {d}/zero_out.onnx: initialiser 'fc0.weight' has shape "
            "[0, 8] with no elements (remove the empty layer, or give it at least one input and "
            "one output)",
        )
    )
    add(
        Case(
            "compile: a 0->4 input",
            "size",
            ("compile", f"{d}/zero_in.onnx", "-o", f"{d}/o.eie"),
            message=f"eiec compile: error: {d}/zero_in.onnx: graph input 'input' has shape "
            "['batch', 0] with no elements (give every dimension a size of at least 1)",
        )
    )
    add(
        Case(
            "compile: nothing for EIE",
            "model",
            ("compile", f"{d}/softmax_only.onnx", "-o", f"{d}/o.eie"),
            message=f"eiec compile: error: {d}/softmax_only.onnx: nothing for EIE to run: no "
            "Gemm, MatMul, LSTM, GRU, Relu, Sigmoid or Tanh node (the model has Softmax) (EIE "
            "runs fully-connected, LSTM and GRU layers; run this model on the CPU)",
        )
    )
    add(
        Case(
            "run: nothing for EIE (conv only)",
            "model",
            ("run", f"{d}/conv_only.onnx", "-i", f"{d}/x_cnn.npy"),
            message=f"eiec run: error: {d}/conv_only.onnx: nothing for EIE to run: no Gemm, "
            "MatMul, LSTM, GRU, Relu, Sigmoid or Tanh node (the model has Conv) (EIE runs "
            "fully-connected, LSTM and GRU layers; run this model on the CPU)",
        )
    )
    add(
        Case(
            "compile: float16 model",
            "dtype",
            ("compile", f"{d}/f16.onnx", "-o", f"{d}/o.eie"),
            may_pass=True,
            slow=True,
        )
    )
    for command in ("compile", "run"):
        add(
            Case(
                f"{command}: float64 model",
                "dtype",
                (
                    command,
                    f"{d}/f64.onnx",
                    *(("-o", f"{d}/o.eie") if command == "compile" else ("-i", f"{d}/xm.npy")),
                ),
                may_pass=True,
                slow=True,
            )
        )
    add(
        Case(
            "run: bfloat16 model",
            "dtype",
            ("run", f"{d}/bf16.onnx", "-i", f"{d}/xm.npy"),
            message=f"eiec run: error: {d}/bf16.onnx: graph input 'input' has element type "
            "BFLOAT16, which eiec does not compute in (FLOAT, FLOAT16 or DOUBLE) (convert the "
            "model to float32, e.g. with onnxconverter-common)",
        )
    )
    add(
        Case(
            "compile: unsupported Softplus",
            "model",
            ("compile", f"{d}/sigmoid.onnx", "-o", f"{d}/o.eie"),
            slow=True,
        )
    )
    for attr in ("clip", "input_forget"):
        add(
            Case(
                f"compile: LSTM {attr}",
                "model",
                ("compile", f"{d}/lstm_{attr}.onnx", "-o", f"{d}/o.eie"),
                slow=True,
            )
        )
    add(
        Case(
            "compile: pointer SRAM from shapes",
            "capacity",
            (
                "compile",
                f"{d}/wide.onnx",
                "-o",
                f"{d}/o.eie",
                "--ptr-sram",
                "64",
                "--weights",
                "sram",
            ),
            message="eiec compile: error: layer fc0: does not fit the pointer SRAM: every PE "
            "needs 132 bytes of column pointers (132 for this layer's 66 pointers, 0 for the "
            "layers before it), 64 bytes available per PE (raise --ptr-sram to 132 (more PEs do "
            "not help: each PE holds a pointer per column), or compile the layers as separate "
            "programs)",
        )
    )
    add(
        Case(
            "compile: sparse-matrix SRAM from densities",
            "capacity",
            (
                "compile",
                f"{d}/wide.onnx",
                "-o",
                f"{d}/o.eie",
                "--spmat-sram",
                "4",
                "--pes",
                "2",
                "--sparsity",
                "0",
                "--weights",
                "sram",
            ),
            message="eiec compile: error: layer fc0: does not fit the sparse-matrix SRAM: its "
            "weights and the layers' before it need at least 1024 entries on some PE at sparsity "
            "0, 4 bytes available per PE (use more PEs, a higher --sparsity, or raise "
            "--spmat-sram)",
        )
    )
    add(
        Case(
            "compile: act SRAM",
            "capacity",
            ("compile", f"{d}/wide.onnx", "-o", f"{d}/o.eie", "--act-sram", "2"),
            slow=True,
        )
    )

    # -- arrays: .npy inputs, calibration, labels --
    arrays = [
        "x_shape",
        "x_rank",
        "x_rank3",
        "x_nan",
        "x_inf",
        "x_str",
        "x_empty",
        "x_complex",
        "x_0d",
        "x_obj",
        "x_npz",
        "x_txt",
        "x_trunc",
        "x_empty_file",
    ]
    for name in arrays:
        path = f"{d}/{name}.npy"
        add(Case(f"emulate: input {name}", "array", ("emulate", p, "-i", path)))
        add(
            Case(
                f"verify: input {name}",
                "array",
                ("verify", c, p, "-i", path),
                slow=name in {"x_shape", "x_rank", "x_rank3", "x_0d", "x_empty"},
            )
        )
        add(Case(f"run: input {name}", "array", ("run", c, "-i", path, "--pes", "4"), slow=True))
        add(
            Case(
                f"compile: calibration {name}",
                "array",
                ("compile", c, "-o", f"{d}/o.eie", "--calibration", path, "--pes", "4"),
                slow=True,
            )
        )
    add(
        Case(
            "emulate: NaN input, named",
            "array",
            ("emulate", p, "-i", f"{d}/x_nan.npy"),
            message=f"eiec emulate: error: {d}/x_nan.npy: input 'input' has nan at index (0, 3); "
            "inputs must be finite (1 value(s) are NaN or Inf) (replace NaN/Inf before "
            "emulating)",
        )
    )
    add(Case("emulate: empty batch", "array", ("emulate", p, "-i", f"{d}/x_empty.npy")))
    add(
        Case(
            "run: float labels",
            "array",
            ("run", m, "-i", f"{d}/xm.npy", "--labels", f"{d}/labels_float.npy"),
            message=f"eiec run: error: {d}/labels_float.npy: labels have dtype float64 (give "
            "integer classes)",
        )
    )
    add(
        Case(
            "compile: calibration of the wrong shape",
            "array",
            ("compile", m, "-o", f"{d}/o.eie", "--calibration", f"{d}/calib_shape.npy"),
            slow=True,
        )
    )
    add(
        Case(
            "compile: NaN calibration",
            "array",
            ("compile", m, "-o", f"{d}/o.eie", "--calibration", f"{d}/calib_nan.npy"),
            slow=True,
        )
    )
    add(
        Case(
            "run: LSTM input of the wrong length",
            "array",
            ("run", f"{d}/lstm.onnx", "-i", f"{d}/xlstm_wrong.npy", "--pes", "16"),
            slow=True,
        )
    )
    for name in ("energy_bad", "energy_list"):
        add(
            Case(
                f"emulate: --energy {name}",
                "array",
                ("emulate", p, "-i", x, "--energy", f"{d}/{name}.json"),
            )
        )

    # -- programs: corrupted .eie text through check, fmt, emulate, verify --
    for index in range(PROGRAM_MUTATIONS):
        path = f"{d}/mut{index}.eie"
        add(Case(f"check: mutated program {index}", "program", ("check", path), may_pass=True))
        add(
            Case(
                f"fmt: mutated program {index}",
                "program",
                ("fmt", path, "-o", f"{d}/f.eie"),
                may_pass=True,
            )
        )
        add(
            Case(
                f"emulate: mutated program {index}",
                "program",
                ("emulate", path, "-i", x),
                may_pass=True,
            )
        )
    for name in ("empty", "binary", "latin1"):
        for command in ("check", "fmt", "emulate"):
            argv = (command, f"{d}/{name}.eie", *(("-i", x) if command == "emulate" else ()))
            add(Case(f"{command}: {name} program", "program", argv))
    add(Case("verify: program of another model", "program", ("verify", m, p, "-i", x), slow=True))

    # -- the BYOC path: eiec run on a CNN, and the Python API --
    cnn = f"{d}/cnn.onnx"
    for name in ("x_cnn_rank", "x_nan", "x_str", "x_empty", "x_0d", "x_obj"):
        add(
            Case(
                f"run (BYOC): input {name}",
                "byoc",
                ("run", cnn, "-i", f"{d}/{name}.npy"),
                slow=True,
            )
        )
    for flag, value in (("--pes", "0"), ("--sparsity", "2"), ("--bits", "9")):
        add(
            Case(
                f"run (BYOC): {flag} {value}",
                "byoc",
                ("run", cnn, "-i", f"{d}/x_cnn.npy", flag, value),
                code=2,
            )
        )
    for name, options in (
        ("pes=0", {"pes": 0}),
        ("sparsity=2", {"sparsity": 2.0}),
        ("bits=9", {"bits": 9}),
        ("sparsity=nan", {"sparsity": float("nan")}),
    ):
        add(Case(f"byoc.run_onnx: {name}", "byoc", call=_byoc_call(options), slow=True))
    add(Case("byoc.run_onnx: wrong input rank", "byoc", call=_byoc_input("x_cnn_rank"), slow=True))
    add(
        Case(
            "byoc.run_onnx: missing model",
            "byoc",
            call=lambda folder: _run_onnx(folder / "none.onnx", np.ones((1, 1, 5, 5)), {}),
        )
    )

    # -- eiec sweep: the same argument types and path checks --
    sweep = ("sweep", m, "-i", f"{d}/xm.npy")
    for name, argv, code in (
        ("missing model", ("sweep", f"{d}/none.onnx", "-i", x), 1),
        ("missing input", ("sweep", m, "-i", f"{d}/none.npy"), 1),
        ("--pes 0", (*sweep, "--pes", "0"), 2),
        ("--pes 1,1", (*sweep, "--pes", "1,1"), 2),
        ("--pes 4,x", (*sweep, "--pes", "4,x"), 2),
        ("--fifo-depth 0", (*sweep, "--fifo-depth", "0"), 2),
        ("--workers 0", (*sweep, "--workers", "0"), 2),
        ("--json onto the model", (*sweep, "--json", m), 1),
        ("--csv onto the input", (*sweep, "--csv", f"{d}/xm.npy"), 1),
        ("--json a folder", (*sweep, "--json", f"{d}/adir"), 1),
        ("--csv in /proc", (*sweep, "--csv", "/proc/s.csv"), 1),
        ("--engine spark", (*sweep, "--engine", "spark"), 2),
    ):
        add(Case(f"sweep: {name}", "option" if code == 2 else "path", argv, code=code))
    add(Case("sweep: NaN weights", "model", ("sweep", f"{d}/nan.onnx", "-i", f"{d}/xm.npy",
                                              "--pes", "1,2"), slow=True))  # fmt: skip

    # -- Ctrl-C: a real SIGINT at several moments of a compile (a process each) --
    for delay in (0.4, 0.8, 1.5, 3.0, 5.0):
        add(Case(f"compile: Ctrl-C after {delay} s", "interrupt", call=_interrupt(delay),
                 slow=True, may_pass=True))  # fmt: skip
    return out


class InterruptFailure(Exception):
    """A Ctrl-C that did not end as it must (counted as a traceback)."""


def _interrupt(delay: float) -> Callable[[Path], object]:
    """Compile the digits MLP onto an existing file, SIGINT after ``delay`` s: exit 130, the
    last stderr line ``eiec compile: interrupted``, no traceback, the old file intact, no
    temporary file (or exit 0 with a new program if it finished first)."""

    def call(folder: Path) -> None:
        import signal
        import subprocess

        out = folder / "interrupted.eie"
        out.write_text("previous")
        model = EXAMPLES / "digits" / "digits_mlp.onnx"
        process = subprocess.Popen(
            [sys.executable, "-m", "eiec", "compile", str(model), "-o", str(out), "-q"],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        left = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
        text = out.read_text()
        out.unlink()
        if process.returncode == 0 and text != "previous":
            return
        if (
            process.returncode != 130
            or "Traceback" in err
            or not err.endswith("eiec compile: interrupted\n")
            or text != "previous"
            or left
        ):
            raise InterruptFailure(f"exit {process.returncode}, {err[-200:]!r}, left {left}")

    return call


def _run_onnx(model: Path, x: np.ndarray, options: dict) -> object:
    from eiec.byoc import run_onnx

    return run_onnx(str(model), x, **options)


def _byoc_call(options: dict) -> Callable[[Path], object]:
    return lambda folder: _run_onnx(
        folder / "cnn.onnx", np.load(folder / "x_cnn.npy"), {"pes": 4, **options}
    )


def _byoc_input(name: str) -> Callable[[Path], object]:
    return lambda folder: _run_onnx(folder / "cnn.onnx", np.load(folder / f"{name}.npy"), {})


# --- running ----------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every fixture file's inode, size, modification time and mode: a file rewritten in place
    or replaced by a rename shows up as a change."""
    state = {}
    for path in folder.rglob("*"):
        if not path.is_symlink() and path.is_file():
            info = path.stat()
            state[str(path.relative_to(folder))] = (
                info.st_ino,
                info.st_size,
                info.st_mtime_ns,
                stat.S_IMODE(info.st_mode),
            )
    return state


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def run_case(case: Case, folder: Path) -> Outcome:
    """Run one case in ``folder`` and classify it; the folder is restored afterwards."""
    from eiec.cli import main

    before = _snapshot(folder)
    start = time.perf_counter()
    code: int | None = None
    verdict, detail = "clean", ""
    with _captured() as (_, err):
        try:
            if case.call is not None:
                case.call(folder)
                code = 0
            else:
                code = main(case.args(folder))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        except EiecError as error:
            code = 1 if case.call is not None else None
            detail = str(error)
            if case.call is None:
                verdict = "traceback"
        except Exception as error:  # the corpus counts these
            verdict, detail = "traceback", f"{type(error).__name__}: {error}"
    seconds = time.perf_counter() - start
    text = err.getvalue()
    after = _snapshot(folder)
    changed = [name for name in before if after.get(name) != before[name]]
    new = [name for name in after if name not in before]
    if verdict == "clean":
        if changed:
            verdict, detail = "overwritten input", ", ".join(changed)
        elif code == 0 and not case.may_pass:
            verdict, detail = "accepted nonsense", "exit 0"
        elif code not in (0, 1, 2):
            verdict, detail = "traceback", f"exit {code}"
        elif code != 0 and new:
            verdict, detail = "leftover", ", ".join(new)
        elif "Traceback" in text:
            verdict, detail = "traceback", text
        elif (
            code == 1
            and case.call is None
            and (len(text.strip().splitlines()) != 1 or ": error: " not in text)
        ):
            verdict, detail = "unclear", text
    for name in new:  # outputs of may-pass cases, and anything left behind
        (folder / name).unlink()
    for name in changed:
        raise RuntimeError(f"{case.name} changed fixture {name}; rebuild the fixtures")
    return Outcome(case, verdict, code, text.strip(), seconds, detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the bad-input corpus; print the counts.")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case")
    parser.add_argument("--fast", action="store_true", help="skip the cases marked slow")
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    args = parser.parse_args(argv)
    selected = [c for c in cases() if args.k in c.name and not (args.fast and c.slow)]
    counts: Counter[str] = Counter()
    by_command: Counter[str] = Counter()
    bad: list[Outcome] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eiec-corpus-") as tmp:
        folder = Path(tmp)
        build_fixtures(folder)
        for case in selected:
            outcome = run_case(case, folder)
            counts[outcome.verdict] += 1
            by_command[case.argv[0] if case.argv else "byoc api"] += 1
            if outcome.verdict != "clean":
                bad.append(outcome)
            if args.verbose:
                last = (outcome.err or outcome.detail).strip().splitlines()[-1:] or [""]
                line = f"{outcome.verdict:18s} {outcome.seconds:6.2f}s  {case.name}: {last[0]}"
                print(line[:300])
    for outcome in bad:
        print(f"{outcome.verdict}: {outcome.case.name}: {outcome.detail or outcome.err}"[:600])
    print(f"commands: {', '.join(f'{k} {v}' for k, v in sorted(by_command.items()))}")
    print(
        f"tried {len(selected)}, clean {counts['clean']}, tracebacks {counts['traceback']}, "
        f"overwritten inputs {counts['overwritten input']}, accepted nonsense "
        f"{counts['accepted nonsense']}, leftovers {counts['leftover']}, unclear "
        f"{counts['unclear']} ({time.perf_counter() - start:.0f} s)"
    )
    return 0 if counts["clean"] == len(selected) else 1


if __name__ == "__main__":
    sys.exit(main())
