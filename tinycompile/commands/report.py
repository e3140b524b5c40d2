"""``tinycompile report``: regenerate a run's Pareto table, pareto.json and plots from its study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tinycompile.commands.search import summarize
from tinycompile.console import console
from tinycompile.errors import UserError
from tinycompile.search.config import SearchConfig
from tinycompile.search.storage import open_study


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser("report", help="Pareto table and plots of a run folder")
    p.add_argument("run", help="the run folder, runs/<study>")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Reload the study named in the run folder's config.json and summarise it."""
    run_dir = Path(args.run)
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.json); give runs/<study> as written by `search`")
    data = json.loads(config_file.read_text())
    config = SearchConfig(**{**data, "out": str(run_dir.parent)})
    study = open_study(config)
    return summarize(study, run_dir, config.objective, console())
