"""``tinycompile report``: regenerate a run's Pareto table, pareto.json and plots from its study."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from tinycompile.commands.search import summarize
from tinycompile.console import console
from tinycompile.errors import UserError
from tinycompile.search.config import SearchConfig
from tinycompile.search.storage import load_study
from tinycompile.search.study import completed


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser("report", help="Pareto table and plots of a run folder")
    p.add_argument("run", help="the run folder, runs/<study>")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Reload the study named in the run folder's config.json and summarise it; refuse (UserError) a study that is
    missing or empty rather than overwrite pareto.json and the plots with less than they hold."""
    run_dir = Path(args.run)
    config = read_config(run_dir)
    study = load_study(config)
    if not completed(study):
        raise UserError(f"study {config.study_name!r} holds no finished trials, so there is nothing to report; "
                        f"{run_dir / 'pareto.json'} is left as it was")
    return summarize(study, run_dir, config.objective, console())


def read_config(run_dir: Path) -> SearchConfig:
    """The search settings of a run folder (its config.json), with the study read from that folder's own study.db
    unless it used another storage."""
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.json); give runs/<study> as written by `search`")
    try:
        data = json.loads(config_file.read_text())
        if not isinstance(data, dict):
            raise TypeError(f"config.json must hold a JSON object, but holds {type(data).__name__}")
        config = SearchConfig(**{**data, "out": str(run_dir.parent)})
        if not all(isinstance(v, str) for v in (config.task, config.space, config.target, config.objective)):
            raise TypeError("task, space, target and objective must be strings")
    except (OSError, ValueError, TypeError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        raise UserError(f"{config_file}: not a search's config.json ({type(exc).__name__}: {exc}); "
                        "it is written by `tinycompile search`") from None
    storage = config.storage or f"sqlite:///{(run_dir / 'study.db').resolve()}"
    return replace(config, storage=storage)
