"""The study's storage and sampler: Optuna's RDB storage (SQLite by default, PostgreSQL for several machines).

Workers die (SIGKILL, a machine lost): Optuna's heartbeats find their trials, and :class:`StaleTrialCallback` decides
what becomes of each (finished from its recorded result, or retried). :class:`Reaper` runs that check while a search
waits, and also clears trials that died before their heartbeat began.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import os
import random
import secrets
import socket
import sqlite3
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from tinycompile.errors import UserError
from tinycompile.search import ledger
from tinycompile.search.config import SearchConfig

HEARTBEAT_SECONDS = 2
GRACE_SECONDS = 10  # a trial whose heartbeat is this old was killed: it is failed, then finished or retried
MAX_RETRIES = 2  # a configuration that killed its worker this often is given up (it may be what kills them)
ORPHAN_SECONDS = 30  # a trial seen this long without reaching the objective died in `ask`, before any heartbeat
WORKER = "worker"  # user attr: host:pid of the process running the trial, set first thing in the objective
DIRECTIONS = ("maximize", "minimize")
MATCHING_KEYS = ("task", "space", "target", "objective", "sram_kb", "flash_kb", "latency_ms", "epochs", "distill",
                 "strategy", "finetune_epochs")

T = TypeVar("T")


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options for the study's database (also used by the artifact store, which shares it)."""
    # SQLite: wait for another worker's write instead of failing at once; PostgreSQL: survive a restarted server.
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}


@sa.event.listens_for(sa.engine.Engine, "connect")
def _sqlite_write_ahead(dbapi_connection: Any, _record: Any) -> None:
    """A study in SQLite writes ahead (WAL) and syncs the disk at checkpoints, not at every commit: a trial commits
    about 70 times (each parameter, attribute and heartbeat), and a synced commit took 13 ms here, 0.9 s of a
    supernet trial's 1.5 s. A killed process still loses nothing it committed; only a power cut may lose the last
    commits, never the database."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def open_with_retry(url: str, opener: Callable[[], T], attempts: int = 3) -> T:
    """Call ``opener``; workers that start together race to create tables, and the loser finds them on a retry."""
    for attempt in range(attempts):
        try:
            return opener()
        except Exception as exc:  # SQLAlchemy's errors name the driver problem; keep the first line only
            race = "already exists" in str(exc) or "duplicate key" in str(exc)
            if race and attempt + 1 < attempts:
                time.sleep(1 + random.random())
                continue
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot open storage {url!r}: {first}") from None
    raise AssertionError("unreachable")


class StaleTrialCallback(RetryHeartbeatStaleTrialCallback):
    """Decide the fate of a trial whose worker died (heartbeat stale): it has been marked FAIL when this runs.

    - It recorded its result (files stored, values known; killed before Optuna could mark it COMPLETE): the study
      gets a COMPLETE copy with the same parameters, values and attributes, so the work is not lost or redone.
    - Otherwise Optuna's retry queues its configuration again (WAITING), up to :data:`MAX_RETRIES` times, while
      the trials finished and under way leave a place for it (the same test a worker makes before starting one; a
      retry queued beyond it would wait forever once the study is full), and if it had chosen a configuration.
    """

    def __init__(self, trials: int | None) -> None:
        super().__init__(max_retry=MAX_RETRIES)
        self.trials = trials

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if ledger.RESULT in trial.user_attrs:
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.COMPLETE,
                    values=trial.user_attrs[ledger.RESULT],
                    params=trial.params,
                    distributions=trial.distributions,
                    user_attrs=trial.user_attrs,
                    # the artifacts' records and the constraints live in the system attrs
                    system_attrs={**trial.system_attrs, ledger.COMPLETED_FROM: trial.number},
                )
            )
            return
        room = self.trials is None or ledger.places_in_use(study.get_trials(deepcopy=False)) < self.trials
        if trial.params and room:
            # The retry starts afresh: without the dead run's attributes (its WORKER above all, which would hide a
            # retry killed before its objective from the Reaper); the configuration and constraints carry over.
            retry = copy.deepcopy(trial)
            retry.user_attrs = {}
            super().__call__(study, retry)


class ClaimingStorage(RDBStorage):
    """Optuna's RDB storage, where a trial changes hands (claimed, or failed as stale) by one conditional UPDATE.

    Optuna reads a trial's state ``FOR UPDATE``, then writes the new one. SQLite has no row locks, and its Python
    driver opens the transaction only at the write, so two processes could both read WAITING and both run the trial (12
    of 60 queued trials claimed twice by 4 processes here; the second result then failed with "Cannot tell a PRUNED
    trial" and killed its worker), or both fail a stale trial and both finish or retry it. One ``UPDATE ... WHERE
    state = <expected>`` has one winner on any database.
    """

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        if values is not None or state not in (TrialState.RUNNING, TrialState.FAIL):
            return super().set_trial_state_values(trial_id, state, values)
        trials = sa.table("trials", sa.column("trial_id"), sa.column("state"), sa.column("datetime_start"),
                          sa.column("datetime_complete"))
        now = datetime.now(timezone.utc).replace(tzinfo=None)  # Optuna's schema keeps times as naive UTC
        if state == TrialState.RUNNING:
            change = sa.update(trials).where(trials.c.state == TrialState.WAITING.name).values(datetime_start=now)
        else:
            live = (TrialState.WAITING.name, TrialState.RUNNING.name)
            change = sa.update(trials).where(trials.c.state.in_(live)).values(datetime_complete=now)
        with self.engine.begin() as connection:
            won = connection.execute(change.where(trials.c.trial_id == trial_id).values(state=state.name)).rowcount
        if won or state == TrialState.RUNNING:  # a trial claimed by another process: False, as Optuna's
            return bool(won)
        raise optuna.exceptions.UpdateFinishedTrialError(f"trial {trial_id} has already finished")


def make_storage(url: str, trials: int | None = None) -> RDBStorage:
    """An RDB storage with heartbeats, so that a trial whose worker died is found and finished or retried."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return open_with_retry(
            url,
            lambda: ClaimingStorage(
                url,
                engine_kwargs=engine_kwargs(url),
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=StaleTrialCallback(trials),
            ),
        )


def process_seed(base: int) -> int:
    """This process's sampler seed: the user's seed mixed with the host, the pid and fresh randomness.

    Seeds from the worker index alone made two machines (or a run and its resumption) propose the same candidates;
    with 32 random bits two processes share a seed with odds of about one in 4 billion. Every trial records it.
    """
    return _seed_of(base, socket.gethostname(), os.getpid())


@functools.cache
def _seed_of(base: int, host: str, pid: int) -> int:  # cached per pid: the sampler and the records agree
    material = f"{base}:{host}:{pid}:{secrets.token_hex(16)}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:4], "little")  # numpy seeds are 32-bit


def make_sampler(config: SearchConfig) -> optuna.samplers.BaseSampler:
    """The sampler the user chose, seeded with :func:`process_seed`."""
    seed = process_seed(config.seed)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "tpe":
        startup = max(4, min(10, config.trials // 4))
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup)
    # A population of a quarter of the budget gives NSGA-II a few generations even in a short search.
    population = max(6, min(50, config.trials // 4))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


def open_study(config: SearchConfig) -> optuna.Study:
    """Create the study or load it to resume; refuse to resume one that was started with other settings."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=config.study_name,
        storage=make_storage(config.storage_url, config.trials),
        sampler=make_sampler(config),
        directions=list(DIRECTIONS),
        load_if_exists=True,
    )
    mine = config.to_dict()
    theirs = study.user_attrs.get("config")
    if theirs is None:
        study.set_user_attr("config", mine)
    else:
        defaults = {f.name: f.default for f in dataclasses.fields(SearchConfig)}
        for key in MATCHING_KEYS:
            if theirs.get(key, defaults[key]) != mine.get(key):  # a key a study predates has its default
                raise UserError(
                    f"study {config.study_name!r} was started with {key}={theirs.get(key)!r}, not {mine.get(key)!r}; "
                    "resume it with the same settings or pass another --study name"
                )
    return study


def load_study(config: SearchConfig) -> optuna.Study:
    """Open an existing study to read it, never creating one: UserError if its SQLite file or the study is missing."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = config.storage_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():  # opening it would create it
        raise UserError(f"{url[len('sqlite:///'):]} does not exist, so study {config.study_name!r} is gone; restore "
                        "it, or run `tinycompile search` again with the same settings to make a new one")
    try:
        return optuna.load_study(study_name=config.study_name, storage=make_storage(url))
    except KeyError:
        raise UserError(f"storage {url!r} holds no study named {config.study_name!r}; "
                        "give the run folder that `tinycompile search` wrote") from None


class Reaper:
    """Finds the trials of dead workers, so that none stays RUNNING and holds a place forever.

    Optuna's ``fail_stale_trials`` handles every trial whose heartbeat stopped (and runs :class:`StaleTrialCallback`).
    A trial killed inside ``ask``, before its heartbeat began, has no heartbeat to go stale: it never reached the
    objective (no :data:`WORKER` attr). Clocks differ between machines, so this process times such a trial on its own
    monotonic clock from when it first saw it, and fails it after :data:`ORPHAN_SECONDS`. It had done no work; if it
    was a queued retry, its configuration is not queued again (the sampler may propose it anew).
    """

    def __init__(self) -> None:
        self._first_seen: dict[int, float] = {}

    def reap(self, study: optuna.Study) -> None:
        """Fail the stale and orphaned RUNNING trials of ``study``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        now = time.monotonic()
        unstarted = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                     if WORKER not in t.user_attrs}
        self._first_seen = {n: self._first_seen.get(n, now) for n in unstarted}
        for number, seen in self._first_seen.items():
            if now - seen > ORPHAN_SECONDS:
                study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
