"""``tinycompile simulate``: re-run a build folder on what its back end simulates (the accelerator's or the SoC's
RTL), check it bit for bit, refresh its report."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinycompile.backends import get_backend, kinds
from tinycompile.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` subcommand."""
    p = sub.add_parser("simulate", help="re-run a build (for example build --target fpga) on its simulator")
    p.add_argument("build", type=Path, help="the build folder written by `tinycompile build ... -o <folder>`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 only if every output of every saved input equals the integer reference."""
    for kind in kinds():
        backend = get_backend(kind)
        if backend.owns(args.build):
            return backend.simulate(args.build)
    raise UserError(f"{args.build} is not a build folder that can be re-run (fpga: no build.json; soc: no soc.json); "
                    "run `tinycompile build --target fpga -o <folder>` (or soc-vexriscv) first")
