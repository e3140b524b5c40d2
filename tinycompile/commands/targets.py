"""``tinycompile targets``: the chips tinycompile knows."""

from __future__ import annotations

import argparse

from rich.table import Table

from tinycompile.console import console
from tinycompile.targets import available_targets, load_target


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``targets`` subcommand."""
    parser = sub.add_parser("targets", help="list the hardware targets (hw_targets/*.yaml)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one row per target."""
    table = Table(title="hardware targets")
    for column in ("name", "kind", "chip", "clock MHz", "SRAM KB", "flash KB", "cost model source"):
        table.add_column(column)
    for name in available_targets():
        t = load_target(name)
        table.add_row(t.name, t.kind, t.chip, f"{t.clock_mhz:g}", f"{t.sram_kb:g}", f"{t.flash_kb:g}", t.source)
    console().print(table)
    return 0
