"""The compile options of offloaded functions: keyword arguments, JSON, machine capacity.

``partition_for_eie(mod, **options)`` takes the fields of ``eiec.compiler.CompileOptions``;
each offloaded function carries them as JSON (so the codegen, and a saved program's manifest,
know how it was compiled). ``calibration`` holds samples of the whole model's inputs:
``partition_for_eie`` turns them into each offloaded function's own (``eiec.byoc.calibrate``);
so does ``train`` (``{"x": samples}``), whose samples then also train each function.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from eiec.byoc.patterns import Capacity
from eiec.compiler import CompileOptions
from eiec.errors import BackendError
from eiec.isa.program import Machine

#: CompileOptions fields that are not part of an offloaded function's compilation.
_EXCLUDED = ("calibration", "calibration_reference", "progress", "train")


def make_options(kwargs: Mapping[str, Any]) -> CompileOptions:
    """``CompileOptions.of(**kwargs)`` (fields of the options or of their machine), refusing
    what BYOC cannot honour."""
    where = "eiec.byoc.partition_for_eie"
    known = {f.name for f in dataclasses.fields(CompileOptions)} | set(Machine.FIELDS)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise BackendError(
            f"unknown compile option {', '.join(unknown)}",
            where=where,
            fix="use fields of eiec.compiler.CompileOptions or eiec.isa.program.Machine: "
            f"{', '.join(sorted(known))}",
        )
    sparsity = kwargs.get("sparsity", 0.9)
    targets = sparsity.values() if isinstance(sparsity, Mapping) else [sparsity]
    for target in [*targets, kwargs.get("default_sparsity", 0.9)]:
        if not (isinstance(target, int | float) and 0.0 <= target <= 1.0):
            raise BackendError(
                f"sparsity {target!r} is not a number in [0, 1]",
                where=where,
                fix="give sparsity=S (or a dict of layer -> S) with 0 <= S <= 1",
            )
    return CompileOptions.of(**{k: v for k, v in kwargs.items() if k not in _EXCLUDED})


def options_dict(options: CompileOptions) -> dict[str, Any]:
    """The options an offloaded function is compiled with, as JSON-ready data (the machine's
    fields beside the others, as ``partition_for_eie`` takes them)."""
    values = {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(options)
        if f.name not in (*_EXCLUDED, "machine")
    }
    return {**dataclasses.asdict(options.machine), **values}


def options_from_json(text: str) -> CompileOptions:
    """The ``CompileOptions`` of :func:`options_dict`'s JSON."""
    return CompileOptions.of(**json.loads(text))


def capacity_of(options: CompileOptions) -> Capacity:
    """The machine the options describe and the density the compiler prunes to (per-layer
    sparsities are unknown at partitioning time: the default target is used)."""
    default, _ = options.sparsity_targets()
    return Capacity(machine=options.machine, density=1.0 - default)
