"""``tinycompile report``: regenerate a run's Pareto table, pareto.json and plots from its study."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinycompile.commands.search import summarize
from tinycompile.console import console
from tinycompile.search.config import load_run_config
from tinycompile.search.storage import load_study


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser("report", help="Pareto table and plots of a run folder")
    p.add_argument("run", help="the run folder, runs/<study>")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Reload the study named in the run folder's config.json and summarise it (fetching the Pareto trials' folders
    that this machine lacks)."""
    config = load_run_config(Path(args.run))
    return summarize(load_study(config), config, console())
