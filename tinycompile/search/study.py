"""Running a search: worker processes fill one Optuna study while this process shows progress and reaps dead trials.

A worker starts a trial only while fewer than N places are in use (:mod:`tinycompile.search.ledger`), and otherwise
waits: for the study to reach N finished trials (then it stops), or for a place to free up (a trial of a dead worker
failed and queued again). The objective's own check before training makes the count exact.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tinycompile.errors import UserError
from tinycompile.fileio import write_json
from tinycompile.search import ledger
from tinycompile.search.config import SUPERNET_SHARE, Prepared, SearchConfig, prepare
from tinycompile.search.objective import Objective
from tinycompile.search.pareto import is_feasible, pareto_front
from tinycompile.search.storage import GRACE_SECONDS, HEARTBEAT_SECONDS, ORPHAN_SECONDS, Reaper, open_study

POLL_SECONDS = 1.0
TRIALS_PER_PLACE = 10  # a worker's bound on trials (skipped ones included) per place: ends a search of an exhausted space


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's finished trials."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def run_search(prepared: Prepared, console: Console, deadline: float | None = None,
               finetune_deadline: float | None = None, trial_share: float | None = None,
               cost_limit: float | None = None) -> optuna.Study:
    """Run (or resume) the search until the study holds ``trials`` completed trials; return the study.

    ``--strategy supernet``: the run's supernet is trained (or found) first, and the Pareto candidates are fine-tuned
    at the end. Under a wall-clock budget (``--time-limit``, a benchmark's; ``time.time()`` values): no trial starts
    after ``deadline``, and no fine-tuning after ``finetune_deadline`` (default: ``deadline``). With ``trial_share``
    (supernet), the trials' deadline is set once the supernet is ready: that share of the time from then to
    ``finetune_deadline``, however long the supernet took (on a loaded machine, 29 s one run and 95 s another for the
    same 6 epochs), and the supernet trains for at most SUPERNET_SHARE of the time (fewer epochs if it must).
    ``cost_limit``: the cost (latency, energy) beyond which the front does not matter to the caller
    (a benchmark's reference box); fine-tuning under a deadline then spends no time on candidates that cost more.
    """
    finetune_deadline = finetune_deadline if finetune_deadline is not None else deadline
    config = prepared.config
    config.run_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(config)
    write_json(config.run_dir / "config.json", config.to_dict())
    done = len(completed(study))
    if done >= config.trials:
        console.print(f"study {config.study_name} already holds {done} finished trials")
        _drain(study, Reaper())  # a trial killed in a run that had just filled the study is still RUNNING
        _finetune(study, prepared, console, finetune_deadline, cost_limit)  # a run stopped while fine-tuning
        return study
    if done:
        console.print(f"resuming study {config.study_name}: {done} of {config.trials} trials already finished")
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(config.to_dict(), os.getpid(), deadline, finetune_deadline,
                                                 trial_share, cost_limit), daemon=False)
               for _ in range(config.jobs)]
    for w in workers:
        w.start()
    reaper = Reaper()
    try:
        if config.strategy == "supernet":  # trained here while the workers start up; they wait for it
            from tinycompile.search.sharing import enqueue_sandwich, ensure_supernet

            seconds = None if finetune_deadline is None else SUPERNET_SHARE * (finetune_deadline - time.time())
            enqueue_sandwich(study, ensure_supernet(prepared, console, seconds))
            deadline = _trial_deadline(deadline, finetune_deadline, trial_share)
        _monitor(study, config, workers, reaper, console)
    except KeyboardInterrupt:
        for w in workers:
            w.terminate()
        raise UserError("search interrupted; finished trials are kept: run the same command again to resume") from None
    except BaseException:
        for w in workers:
            w.terminate()
        raise
    _drain(study, reaper)
    failed = [w.exitcode for w in workers if w.exitcode not in (0, None)]
    done = len(completed(study))
    if failed and done < config.trials:
        raise RuntimeError(f"{len(failed)} search worker(s) failed (exit codes {failed}); see the messages above")
    if done < config.trials and not _past(deadline):
        raise UserError(
            f"the study holds {done} of {config.trials} finished trials: the workers stopped after "
            f"{TRIALS_PER_PLACE * config.trials} trials each, most of them configurations already taken; "
            "the space may have too few candidates for --trials"
        )
    _finetune(study, prepared, console, finetune_deadline, cost_limit)
    return study


def _trial_deadline(deadline: float | None, finetune_deadline: float | None, share: float | None) -> float | None:
    """The trials' deadline once the supernet is ready: ``share`` of the time left to ``finetune_deadline``."""
    if share is None or finetune_deadline is None:
        return deadline
    now = time.time()
    return now + share * max(0.0, finetune_deadline - now)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def _finetune(study: optuna.Study, prepared: Prepared, console: Console, deadline: float | None,
              cost_limit: float | None) -> None:
    """--strategy supernet: fine-tune the Pareto candidates that are not yet."""
    if prepared.config.strategy != "supernet":
        return
    from tinycompile.search.records import all_finetuned
    from tinycompile.search.sharing import finetune_front

    try:
        finetune_front(study, prepared, console, deadline, cost_limit)
        front = {t.number for t in pareto_front(study.get_trials(deepcopy=False))}  # of the inherited scores
        if not front:
            return
        tuned = set(all_finetuned(study))
        behind = f", and {len(tuned - front)} behind it" if tuned - front else ""
        console.print(f"{len(front & tuned)} of {len(front)} Pareto candidates fine-tuned{behind} (by the workers and "
                      "this process)")
    except KeyboardInterrupt:
        raise UserError("search interrupted while fine-tuning the Pareto candidates; the trials and the candidates "
                        "already fine-tuned are kept: run the same command again to finish") from None


def _drain(study: optuna.Study, reaper: Reaper) -> None:
    """Wait until no trial is RUNNING: those of workers killed in an earlier run go stale and are failed here.

    Bounded: a trial that is still alive (another machine's, about to find the study full) is left to its worker.
    """
    deadline = time.monotonic() + GRACE_SECONDS + ORPHAN_SECONDS + 2 * HEARTBEAT_SECONDS
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) and time.monotonic() < deadline:
        reaper.reap(study)
        time.sleep(POLL_SECONDS)


def _monitor(study: optuna.Study, config: SearchConfig, workers: list[Any], reaper: Reaper, console: Console) -> None:
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
            reaper.reap(study)  # workers waiting for a place need the dead trials that hold one failed
            time.sleep(POLL_SECONDS)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker if the search process dies (even by SIGKILL): no orphan keeps training.

    A spawned worker gets here only after seconds of imports; a parent killed meanwhile has already gone, and the
    request would never fire: then this worker has been adopted by another process, and it exits at once.
    """
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() != parent:
        os._exit(1)


def wait_for_place(study: optuna.Study, trials: int, deadline: float | None = None) -> bool:
    """Block until a trial may start (True) or the study holds ``trials`` finished trials or ``deadline`` has passed
    (False).

    Optuna's ``MaxTrialsCallback`` stops a worker only after its trial ends, so workers mid-trial at that moment
    overshot N; counting the trials in progress too, a worker waits instead, in case one of them fails.
    """
    while True:
        if _past(deadline):
            return False
        trials_now = study.get_trials(deepcopy=False)
        if ledger.finished(trials_now) >= trials:
            return False
        if ledger.places_in_use(trials_now) < trials:
            return True
        time.sleep(POLL_SECONDS)


def _worker(config_dict: dict[str, Any], parent: int, deadline: float | None = None,
            finetune_deadline: float | None = None, trial_share: float | None = None,
            cost_limit: float | None = None) -> None:
    _die_with_parent(parent)
    import torch

    config = SearchConfig(**config_dict)
    # One thread per worker: tiny layers gain nothing from intra-op threads, and spinning OpenMP threads on a
    # busy machine slowed training by 50x here; parallelism comes from --jobs instead.
    torch.set_num_threads(1)
    prepared = prepare(config)
    study = open_study(config)
    objective = Objective(prepared)

    def next_or_stop(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if not wait_for_place(study, config.trials, deadline):
            study.stop()

    if config.strategy == "supernet":
        from tinycompile.search.sharing import wait_for_supernet

        if not wait_for_supernet(prepared, finetune_deadline if trial_share is not None else deadline):
            return
        deadline = _trial_deadline(deadline, finetune_deadline, trial_share)
    optimize(study, objective, lambda: wait_for_place(study, config.trials, deadline),
             n_trials=TRIALS_PER_PLACE * config.trials, callbacks=[next_or_stop])
    if config.strategy == "supernet":  # the workers share the front's fine-tuning; the search process finishes it
        from tinycompile.search.sharing import finetune_front

        _settle(study)
        finetune_front(study, prepared, Console(quiet=True), finetune_deadline, cost_limit)


def optimize(study: optuna.Study, objective: Callable[[optuna.trial.Trial], Any], go_on: Callable[[], bool],
             **kwargs: Any) -> None:
    """``study.optimize(objective, **kwargs)`` while ``go_on()``, surviving a trial taken from this worker: one whose
    heartbeat went stale while it ran (a machine starved or paused for longer than GRACE_SECONDS) is failed by a
    reaper and its configuration queued again, and Optuna then ends the worker ("Cannot tell a FAIL trial"). The
    worker says so in one line and goes on with the next trial. (Seen once here: both workers' first trials failed
    as stale 14 s after they started, and the whole search stopped.)"""
    while go_on():
        try:
            study.optimize(objective, gc_after_trial=False, **kwargs)
            return
        except (ValueError, AssertionError) as exc:  # Optuna asserts where the objective had returned its values
            if not _taken(exc):
                raise
            print(f"worker {os.getpid()}: a trial of this worker was failed as stale while it ran (no heartbeat for "
                  f"{GRACE_SECONDS} s) and queued again; going on", flush=True)


def _taken(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised in handling) is Optuna's refusal to tell a trial already failed."""
    while exc is not None:
        if isinstance(exc, ValueError) and str(exc).startswith("Cannot tell a FAIL trial"):
            return True
        exc = exc.__context__
    return False


def _settle(study: optuna.Study) -> None:
    """Wait (a bounded time) until no trial is RUNNING, so that the Pareto front is the final one."""
    limit = time.monotonic() + GRACE_SECONDS + 2 * HEARTBEAT_SECONDS
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) and time.monotonic() < limit:
        time.sleep(POLL_SECONDS)
