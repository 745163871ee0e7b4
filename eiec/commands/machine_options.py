"""The machine's command-line options, generated from ``Machine``'s fields.

``--machine NAME|FILE.toml`` (a preset of ``eiec machines`` or a file of fields) gives the base
machine; then one option per field (``--pes``, ``--fifo-depth``, ``--clock-mhz``,
``--spmat-sram``, ``--ptr-bits``, ``--alu-stages``, ...) replaces that field. Each option's
range comes from the field (its least value), and the machine as a whole is checked afterwards
(``eiec.isa.machines.check``), so an invalid value is refused with its field named.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection
from dataclasses import fields

from eiec.commands.argtypes import float_range, int_range
from eiec.errors import MachineError
from eiec.isa.machines import PRESETS, load_machine, machine_from
from eiec.isa.program import Machine

#: Allowed ranges of the machine options, checked at parse time (a typo guard beyond the
#: machine's own rules, which ``.toml`` files and the Python API are checked by).
PES = int_range(1, 4096)
FIFO_DEPTH = int_range(1, 1024)
CLOCK_MHZ = float_range(0, 1e5, low_open=True)
DRAM_GBPS = float_range(0, 1e9, low_open=True)
DRAM_LATENCY_NS = float_range(0, 1e9)
_RANGES = {
    "pes": PES,
    "fifo_depth": FIFO_DEPTH,
    "clock_mhz": CLOCK_MHZ,
    "dram_gbps": DRAM_GBPS,
    "dram_latency_ns": DRAM_LATENCY_NS,
}
_LIMIT = 1 << 30


def flag(name: str) -> str:
    """``ptr_bits`` -> ``--ptr-bits``."""
    return "--" + name.replace("_", "-")


def add_machine_options(group: argparse._ArgumentGroup, skip: Collection[str] = ()) -> None:
    """``--machine`` and one option per ``Machine`` field (but those in ``skip``)."""
    group.add_argument(
        "--machine",
        metavar="NAME|FILE.toml",
        help=f"the base machine: a preset ({', '.join(PRESETS)}; eiec machines) or a .toml "
        "file of machine fields (default: the paper's 45 nm chip); the options below override it",
    )
    for item in fields(Machine):
        if item.name in skip:
            continue
        unit = item.metadata["unit"]
        default = f"{item.default:g}" if isinstance(item.default, float) else str(item.default)
        kind = _RANGES.get(item.name)
        if kind is None and item.name in Machine.REALS:
            kind = float_range(item.metadata["min"], 1e9)
        kind = kind or int_range(item.metadata["min"], _LIMIT)
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
    base = load_machine(args.machine) if getattr(args, "machine", None) else Machine()
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
