"""``tinycompile simulate``: re-run an FPGA build folder on the RTL, check it bit for bit, refresh its report."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` subcommand."""
    p = sub.add_parser("simulate", help="re-run an FPGA build (build --target fpga) on the accelerator's RTL")
    p.add_argument("build", type=Path, help="the build folder written by `tinycompile build --target fpga -o <folder>`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 only if every layer output of every saved input equals the integer reference."""
    from tinycompile.fpga.simulate import simulate_build

    return simulate_build(args.build)
