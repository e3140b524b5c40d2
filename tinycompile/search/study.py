"""Running a search: N worker processes fill one Optuna study while this process shows progress."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import signal
import time
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tinycompile.errors import UserError
from tinycompile.fileio import write_json
from tinycompile.search.config import Prepared, SearchConfig, prepare
from tinycompile.search.objective import Objective
from tinycompile.search.pareto import is_feasible, pareto_front
from tinycompile.search.storage import open_study

POLL_SECONDS = 1.0


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's finished trials."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def run_search(prepared: Prepared, console: Console) -> optuna.Study:
    """Run (or resume) the search until the study holds ``trials`` completed trials; return the study."""
    config = prepared.config
    config.run_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(config)
    write_json(config.run_dir / "config.json", config.to_dict())
    done = len(completed(study))
    if done >= config.trials:
        console.print(f"study {config.study_name} already holds {done} finished trials")
        return study
    if done:
        console.print(f"resuming study {config.study_name}: {done} of {config.trials} trials already finished")
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(config.to_dict(), i), daemon=False) for i in range(config.jobs)]
    for w in workers:
        w.start()
    try:
        _monitor(study, config, workers, console)
    except KeyboardInterrupt:
        for w in workers:
            w.terminate()
        raise UserError("search interrupted; finished trials are kept: run the same command again to resume") from None
    failed = [w.exitcode for w in workers if w.exitcode not in (0, None)]
    if failed and len(completed(study)) < config.trials:
        raise RuntimeError(f"{len(failed)} search worker(s) failed (exit codes {failed}); see the messages above")
    return study


def _monitor(study: optuna.Study, config: SearchConfig, workers: list[Any], console: Console) -> None:
    columns = (
        TextColumn("[bold]search"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best feasible acc {task.fields[best]}"),
        TextColumn("Pareto {task.fields[front]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("trials", total=config.trials, best="-", front=0)
        while True:
            trials = completed(study)
            feasible = [t for t in trials if is_feasible(t)]
            best = f"{max(t.values[0] for t in feasible):.3f}" if feasible else "-"
            progress.update(bar, completed=min(len(trials), config.trials), best=best, front=len(pareto_front(trials)))
            if not any(w.is_alive() for w in workers):
                break
            time.sleep(POLL_SECONDS)


def _die_with_parent() -> None:
    """Ask Linux to kill this worker if the search process dies (even by SIGKILL): no orphan keeps training."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _worker(config_dict: dict[str, Any], index: int) -> None:
    _die_with_parent()
    import torch

    config = SearchConfig(**config_dict)
    # One thread per worker: tiny layers gain nothing from intra-op threads, and spinning OpenMP threads on a
    # busy machine slowed training by 50x here; parallelism comes from --jobs instead.
    torch.set_num_threads(1)
    prepared = prepare(config)
    study = open_study(config, worker=index)
    stop = optuna.study.MaxTrialsCallback(config.trials, states=(TrialState.COMPLETE,))
    # n_trials bounds a worker whose trials keep failing; the callback stops all workers at the shared count.
    study.optimize(Objective(prepared), n_trials=2 * config.trials, callbacks=[stop], gc_after_trial=False)
