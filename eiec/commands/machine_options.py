"""The machine's command-line options, generated from ``Machine``'s fields.

``--machine NAME|FILE.toml`` (a preset of ``eiec machines`` or a file of fields) gives the base
machine; then one option per field (``--pes``, ``--fifo-depth``, ``--clock-mhz``,
``--spmat-sram``, ``--ptr-bits``, ``--alu-stages``, ...) replaces that field. Each option's
range comes from the field (its ``min`` and ``max``), and the machine as a whole is checked
afterwards (``eiec.isa.machines.check``), so an invalid value is refused with its field named.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection
from dataclasses import fields

from eiec.commands.argtypes import float_range, int_range, nonempty
from eiec.errors import MachineError
from eiec.isa.machines import PRESETS, load_machine, machine_from
from eiec.isa.program import Machine


def field_type(name: str) -> Callable[[str], int | float]:
    """The argparse type of the machine field ``name``: a number in the field's range (its
    ``min`` and ``max`` metadata, the one place of each field's limits), checked at parse time."""
    item = next(item for item in fields(Machine) if item.name == name)
    low, high = item.metadata["min"], item.metadata["max"]
    if isinstance(item.default, float):
        return float_range(low, high)
    return int_range(low, high)


PES = field_type("pes")
FIFO_DEPTH = field_type("fifo_depth")
CLOCK_MHZ = field_type("clock_mhz")
DRAM_GBPS = field_type("dram_gbps")
DRAM_LATENCY_NS = field_type("dram_latency_ns")


def flag(name: str) -> str:
    """``ptr_bits`` -> ``--ptr-bits``."""
    return "--" + name.replace("_", "-")


def add_machine_options(group: argparse._ArgumentGroup, skip: Collection[str] = ()) -> None:
    """``--machine`` and one option per ``Machine`` field (but those in ``skip``)."""
    group.add_argument(
        "--machine",
        type=nonempty("a preset name or a .toml file"),
        metavar="NAME|FILE.toml",
        help=f"the base machine: a preset ({', '.join(PRESETS)}; eiec machines) or a .toml "
        "file of machine fields (default: the paper's 45 nm chip); the options below override it",
    )
    for item in fields(Machine):
        if item.name in skip:
            continue
        unit = item.metadata["unit"]
        default = f"{item.default:g}" if isinstance(item.default, float) else str(item.default)
        kind = field_type(item.name)
        group.add_argument(
            flag(item.name),
            type=kind,
            metavar=unit.upper() if unit in ("B", "MHz") else _metavar(item.name),
            help=f"{item.metadata['doc']} (paper's chip: {default}{' ' + unit if unit else ''})",
        )


def _metavar(name: str) -> str:
    return "X" if name in Machine.REALS else "N"


def machine_from_args(args: argparse.Namespace) -> Machine:
    """The machine of ``--machine`` with every given field option applied, checked."""
    spec = getattr(args, "machine", None)
    base = load_machine(spec) if spec is not None else Machine()
    given = {
        item.name: getattr(args, item.name)
        for item in fields(Machine)
        if getattr(args, item.name, None) is not None
    }
    try:
        return machine_from(given, base)
    except MachineError as error:
        raise MachineError(
            error.what, where="the machine options", fix=error.fix or "see eiec machines --fields"
        ) from None
