"""The ``tinycompile`` command: subcommands are modules of :mod:`tinycompile.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from tinycompile.commands import COMMANDS
from tinycompile.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line and exit code 2, like ours
        self.exit(2, f"{self.prog}: error: {message}\n")


def make_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand that is installed."""
    parser = _Parser(prog="tinycompile", description="Search, compile and verify tiny int8 networks for MCUs and FPGAs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tinycompile.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tinycompile.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes print one line and return 2."""
    args = make_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"tinycompile {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
