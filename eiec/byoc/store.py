"""Save the EIE programs a compiled model uses, and load them in a fresh process.

A library exported with ``ex.export_library`` calls its offloaded functions by symbol; the VM
looks them up when it starts. :func:`save` writes, into a folder, one ``.eie`` program per
offloaded function and ``manifest.json`` (symbol -> program file and port mapping);
:func:`load` reads them back and registers the runners, after which
``relax.VirtualMachine(tvm.runtime.load_module(lib), dev)`` works.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tvm import relax
from tvm.ir import IRModule

from eiec.byoc.attrs import SYMBOL_PREFIX
from eiec.byoc.offload import Offload, register, registered
from eiec.errors import BackendError
from eiec.fileio import write_atomic
from eiec.isa import load as load_program
from eiec.isa import save as save_program

MANIFEST = "manifest.json"
FORMAT = 1
#: Suffixes of files a user may take :func:`save`'s folder for.
_FILE_SUFFIXES = (".eie", ".json", ".onnx", ".so", ".tar", ".zip")


def offloaded_symbols(mod: IRModule) -> list[str]:
    """The EIE symbols the module's functions call (after ``RunCodegen``), in first-use order."""
    found: list[str] = []

    def visit(expr: relax.Expr) -> None:
        if isinstance(expr, relax.ExternFunc):
            symbol = str(expr.global_symbol)
            if symbol.startswith(SYMBOL_PREFIX) and symbol not in found:
                found.append(symbol)

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return found


def save(mod: IRModule, path: str | os.PathLike[str]) -> Path:
    """Write the programs ``mod`` (after ``RunCodegen``) calls into the folder ``path`` (made
    when missing; BackendError when ``path`` is a file or has a file's suffix, e.g. ``.eie``)."""
    folder = Path(path)
    if folder.suffix in _FILE_SUFFIXES or (folder.exists() and not folder.is_dir()):
        raise BackendError(
            "eiec.byoc.save writes a folder (one .eie program per offloaded function and "
            f"{MANIFEST}), and this names a file",
            where=str(path),
            fix=f"give a folder name, e.g. {folder.with_suffix('')}_eie",
        )
    symbols = offloaded_symbols(mod)
    if not symbols:
        raise BackendError(
            "the module calls no EIE program",
            where="eiec.byoc.save",
            fix="save the module returned by RunCodegen() after partition_for_eie",
        )

    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    for symbol in symbols:
        offload = registered(symbol)
        if offload is None:
            raise BackendError(
                f"no program is registered for {symbol}",
                where="eiec.byoc.save",
                fix="run relax.transform.RunCodegen() in this process before saving",
            )
        save_program(offload.program, folder / f"{symbol}.eie")
        entries[symbol] = {"program": f"{symbol}.eie", **offload.to_json()}
    manifest = {"format": FORMAT, "functions": entries}
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return folder


def load(path: str | os.PathLike[str]) -> list[str]:
    """Register the runners of the programs saved in ``path``; returns their symbols."""

    folder = Path(path)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BackendError(
            f"cannot read the EIE manifest: {error}",
            where=str(folder / MANIFEST),
            fix="pass the folder written by eiec.byoc.save",
        ) from error
    if manifest.get("format") != FORMAT:
        raise BackendError(
            f"manifest format {manifest.get('format')!r} is not {FORMAT}",
            where=str(folder / MANIFEST),
        )
    symbols = []
    for symbol, entry in manifest["functions"].items():
        register(
            Offload(
                symbol=symbol,
                program=load_program(folder / entry["program"]),
                inputs=tuple(entry["inputs"]),
                outputs=tuple(entry["outputs"]),
                rows=bool(entry["rows"]),
            )
        )
        symbols.append(symbol)
    return symbols
