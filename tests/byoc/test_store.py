"""Export a partitioned model, then run it in a fresh process after loading its EIE programs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tvm
from onnx import numpy_helper
from tvm import relax

import eiec.byoc
from eiec.errors import BackendError

from .flow import OPTIONS, eie_build, run
from .models import mlp_onnx, to_relax

FRESH = textwrap.dedent(
    """
    import json, sys
    import numpy as np, tvm
    from tvm import relax
    import eiec.byoc
    folder, load = sys.argv[1], sys.argv[2] == "load"
    if load:
        eiec.byoc.load(folder + "/programs")
    lib = tvm.runtime.load_module(folder + "/model.so")
    try:
        vm = relax.VirtualMachine(lib, tvm.cpu())
        x = np.load(folder + "/x.npy")
        y = vm["main"](tvm.runtime.tensor(x)).numpy()
    except Exception as error:
        print(json.dumps({"error": str(error).splitlines()[0]}))
    else:
        print(json.dumps({"y": y.tolist()}))
    """
)


def fresh(folder: Path, load: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", FRESH, str(folder), "load" if load else "skip"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_export_and_reload_in_a_fresh_process(tmp_path: Path) -> None:
    model = mlp_onnx([64, 128, 10], seed=12, tail="Softmax")
    built, vm = eie_build(to_relax(model))
    x = np.random.default_rng(13).uniform(-1, 1, (1, 64)).astype(np.float32)
    expected = run(vm, x)

    tvm.compile(built, target="llvm").export_library(tmp_path / "model.so")
    eiec.byoc.save(built, tmp_path / "programs")
    np.save(tmp_path / "x.npy", x)

    manifest = json.loads((tmp_path / "programs" / "manifest.json").read_text())
    assert list(manifest["functions"]) == eiec.byoc.offloaded_symbols(built)
    # The library does not carry the offloaded weights: TVM's RunCodegen alone keeps them in
    # the const_name_to_constant attribute and the exported library grows by their size.
    weight_bytes = sum(numpy_helper.to_array(init).nbytes for init in model.graph.initializer)
    partitioned = eiec.byoc.partition_for_eie(to_relax(model), **OPTIONS)
    with_weights = relax.transform.RunCodegen()(partitioned)
    tvm.compile(with_weights, target="llvm").export_library(tmp_path / "heavy.so")
    growth = (tmp_path / "heavy.so").stat().st_size - (tmp_path / "model.so").stat().st_size
    assert growth >= weight_bytes

    result = fresh(tmp_path, load=True)
    assert np.array_equal(np.array(result["y"], dtype=np.float32), expected)
    missing = fresh(tmp_path, load=False)
    assert "eie_" in missing.get("error", "")


def test_save_refuses_a_module_before_run_codegen(tmp_path: Path) -> None:
    mod = eiec.byoc.partition_for_eie(to_relax(mlp_onnx([8, 4], seed=1)), pes=4)
    with pytest.raises(BackendError, match="the module calls no EIE program"):
        eiec.byoc.save(mod, tmp_path / "programs")


def test_load_reports_a_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="cannot read the EIE manifest"):
        eiec.byoc.load(tmp_path)


@pytest.mark.parametrize("name", ["model.eie", "existing_file"])
def test_save_refuses_a_file_name(tmp_path: Path, name: str) -> None:
    (tmp_path / "existing_file").write_text("x")
    mod = eiec.byoc.partition_for_eie(to_relax(mlp_onnx([8, 4], seed=1)), pes=4)
    with pytest.raises(BackendError) as caught:
        eiec.byoc.save(mod, tmp_path / name)
    stem = (tmp_path / name).with_suffix("")
    assert str(caught.value) == (
        f"{tmp_path / name}: eiec.byoc.save writes a folder (one .eie program per offloaded "
        f"function and manifest.json), and this names a file (give a folder name, e.g. "
        f"{stem}_eie)"
    )
    assert not (tmp_path / "model.eie").exists()
    assert (tmp_path / "existing_file").read_text() == "x"
