"""``eiec machines``: the named machine presets, or (``--fields``) every machine field."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from rich.table import Table

from eiec.commands.options import add_json_option
from eiec.console import print_table
from eiec.isa.machines import PRESETS, describe_fields


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``machines`` subcommand."""
    parser = subparsers.add_parser(
        "machines",
        help="list the machine presets (--machine NAME) and the machine fields",
        description="List the named machines --machine accepts (besides a .toml file of "
        "fields), or with --fields every machine field with its default and meaning.",
    )
    parser.add_argument(
        "--fields", action="store_true", help="the machine fields (options, .toml keys)"
    )
    add_json_option(parser, "the presets (or fields)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the presets or the fields."""
    if args.fields:
        rows = describe_fields()
        if args.json:
            keys = ("field", "default", "range", "meaning")
            print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
            return 0
        table = Table(title="machine fields (--FIELD-NAME on compile/run/sweep, keys of .toml)")
        for name in ("field", "default", "range", "meaning"):
            table.add_column(name)
        for row in rows:
            table.add_row(*row)
        print_table(table)
        return 0
    from eiec.emulator.energy import EnergyModel  # lazy: the area model, only for presets

    areas = {
        name: EnergyModel.default(p.process).chip_area(p.machine).chip_mm2
        for name, p in PRESETS.items()
    }
    if args.json:
        presets = {
            name: {
                "machine": asdict(p.machine),
                "source": p.source,
                "process": p.process,
                "area_mm2": areas[name],
            }
            for name, p in PRESETS.items()
        }
        print(json.dumps(presets, indent=2))
        return 0
    table = Table(title="machine presets (--machine NAME)")
    heads = ("name", "PEs", "MHz", "spmat B/PE", "ptr B/PE", "act B/PE", "ptr bits", "FIFO")
    for name in (*heads, "process", "mm^2"):
        table.add_column(name, justify="left" if name == "name" else "right")
    table.add_column("source")
    for preset in PRESETS.values():
        m = preset.machine
        table.add_row(
            preset.name,
            str(m.pes),
            f"{m.clock_mhz:g}",
            str(m.spmat_sram),
            str(m.ptr_sram),
            str(m.act_sram),
            str(m.ptr_bits),
            str(m.fifo_depth),
            preset.process,
            f"{areas[preset.name]:.1f}",
            preset.source,
        )
    print_table(table)
    return 0
