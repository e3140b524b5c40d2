"""``tinycompile report``: regenerate a run's Pareto table, pareto.json and plots from its study."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinycompile.commands.search import summarize
from tinycompile.console import console
from tinycompile.errors import UserError
from tinycompile.search.config import load_run_config
from tinycompile.search.storage import load_study
from tinycompile.search.study import completed


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser("report", help="Pareto table and plots of a run folder")
    p.add_argument("run", help="the run folder, runs/<study>")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Reload the study named in the run folder's config.json and summarise it (fetching the Pareto trials' folders
    that this machine lacks); refuse (UserError) a study that is missing or empty rather than overwrite pareto.json
    and the plots with less than they hold."""
    run_dir = Path(args.run)
    config = load_run_config(run_dir)
    study = load_study(config)
    if not completed(study):
        raise UserError(f"study {config.study_name!r} holds no finished trials, so there is nothing to report; "
                        f"{run_dir / 'pareto.json'} is left as it was")
    return summarize(study, config, console())
