"""Machines as data: named presets, ``.toml`` machine files and field-by-field overrides.

A machine file holds any of :class:`~eiec.isa.program.Machine`'s fields as TOML keys, and
optionally ``preset = "NAME"`` to start from a preset instead of the paper's chip::

    preset = "eie-28nm"
    ptr_bits = 32
    spmat_sram = 1048576

Every result is checked field by field (``isa.verifier.check_machine``): a value of the wrong
type, an unknown key or an invalid value is a :class:`~eiec.errors.MachineError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from eiec.errors import MachineError, VerificationError
from eiec.fileio import read_regular
from eiec.isa.program import Machine
from eiec.isa.verifier import check_machine, field_range


@dataclass(frozen=True)
class Preset:
    """A named machine with where its figures come from and its process (the energy and area
    table's ``processes``, emulator/energy_45nm.json)."""

    name: str
    machine: Machine
    source: str
    process: str = "45nm"


#: The paper's machines (Han et al., ISCA 2016): the 45 nm chip as its text describes it (the
#: default machine), the same chip as the authors' cycle-level simulator models it (which
#: produced Table IV: a queue of buffersize B = 8 registers holding B - 1 = 7 pairs, the
#: detector's first broadcast in cycle 2 and its scan of one group of N activations per cycle,
#: the accumulator written one stage after the add; see isa/SPEC.md section 6), and Table V's
#: 28 nm projection (256 PEs at 1.2 GHz, the same per-PE
#: memories: 4x the model capacity, 336 M weights).
PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("eie-45nm", Machine(), "the paper's chip: 64 PEs, 800 MHz, 45 nm (section VI)"),
        Preset(
            "eie-sim",
            Machine(fifo_depth=7, lnzd_latency=2, alu_stages=5, lnzd_group_scan=1),
            "the paper's chip as the authors' cycle-level simulator (buffersize 8) models it: "
            "the machine of Table IV",
        ),
        Preset(
            "eie-28nm",
            Machine(pes=256, clock_mhz=1200.0),
            "Table V's projection: 256 PEs, 1200 MHz, 28 nm, per-PE memories as at 45 nm",
            process="28nm",
        ),
    )
}

_KINDS = {item.name: float if item.name in Machine.REALS else int for item in fields(Machine)}


def machine_from(
    values: Mapping[str, object], base: Machine | None = None, where: str = ""
) -> Machine:
    """``base`` (the paper's chip) with ``values`` (field name -> value) replaced, checked."""
    changes: dict[str, int | float] = {}
    for name, value in values.items():
        kind = _KINDS.get(name)
        if kind is None:
            import difflib  # lazy: only for a misspelt field's suggestion

            close = difflib.get_close_matches(name, _KINDS, n=1)
            raise MachineError(
                f"unknown machine field '{name}'",
                where=where or None,
                fix=f"did you mean '{close[0]}'?" if close else "see eiec machines --fields",
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (kind is int and isinstance(value, float) and not value.is_integer())
        ):
            raise MachineError(
                f"machine field {name} = {value!r} is not "
                f"{'a number' if kind is float else 'an integer'}",
                where=where or None,
                fix="see eiec machines --fields",
            )
        try:
            changes[name] = kind(value)
        except OverflowError:  # a float beyond 1e308 as an integer field, or the reverse
            changes[name] = math.inf
    machine = replace(base or Machine(), **changes)
    check(machine, where)
    return machine


def check(machine: Machine, where: str = "") -> None:
    """``check_machine`` as a :class:`MachineError` (the field named, how to fix it)."""
    try:
        check_machine(machine, where)
    except VerificationError as error:
        raise MachineError(
            error.what, where=where or None, fix="see eiec machines --fields"
        ) from None


def load_machine(spec: str | Path) -> Machine:
    """A preset's name or a ``.toml`` machine file."""
    text = str(spec)
    if text in PRESETS:
        return PRESETS[text].machine
    path = Path(spec)
    if path.suffix != ".toml":
        raise MachineError(
            f"unknown machine '{text}'",
            fix=f"give a preset ({', '.join(PRESETS)}) or a .toml machine file",
        )
    import tomllib  # lazy: only for .toml machine files, not at every start-up

    try:
        data = tomllib.loads(read_regular(path).decode("utf-8"))
    except FileNotFoundError:
        raise MachineError(f"{path}: no such machine file", fix="check the path") from None
    except OSError as error:
        raise MachineError(
            f"{path}: cannot read the machine file: {error.strerror or error}",
            fix="give a .toml file of machine fields",
        ) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise MachineError(
            f"{path}: not a readable TOML file: {error}", fix="fix the file"
        ) from None
    base = None
    if "preset" in data:
        name = data.pop("preset")
        if not isinstance(name, str) or name not in PRESETS:
            raise MachineError(
                f"unknown preset {name!r}", where=str(path), fix=f"use one of {', '.join(PRESETS)}"
            )
        base = PRESETS[name].machine
    return machine_from(data, base, where=str(path))


def describe_fields() -> list[tuple[str, str, str, str]]:
    """(field, default, range, meaning) of every machine field, in header order."""
    rows = []
    for item in fields(Machine):
        unit = item.metadata["unit"]
        default = f"{item.default:g}" if isinstance(item.default, float) else str(item.default)
        rows.append(
            (
                item.name,
                f"{default} {unit}".strip(),
                field_range(item),
                item.metadata["doc"],
            )
        )
    return rows
