"""The study's storage and sampler: Optuna's RDB storage (SQLite by default, PostgreSQL for several machines)."""

from __future__ import annotations

import dataclasses
import random
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from tinycompile.errors import UserError
from tinycompile.search.config import SearchConfig

HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 20  # a trial silent this long was killed: it is failed and retried once with the same parameters
DIRECTIONS = ("maximize", "minimize")
MATCHING_KEYS = ("task", "space", "target", "objective", "sram_kb", "flash_kb", "latency_ms", "epochs", "distill")


def make_storage(url: str, attempts: int = 3) -> RDBStorage:
    """An RDB storage with heartbeats, so a trial whose worker died is detected and retried."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                )
        except Exception as exc:  # SQLAlchemy's errors name the driver problem; keep the first line only
            # Workers that start together race to create the schema; the loser finds it made on the next try.
            race = "already exists" in str(exc) or "duplicate key" in str(exc)
            if race and attempt + 1 < attempts:
                time.sleep(1 + random.random())
                continue
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot open storage {url!r}: {first}") from None
    raise AssertionError("unreachable")


def make_sampler(config: SearchConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler the user chose, seeded per worker so that parallel workers do not propose the same points."""
    seed = config.seed + 1000 * worker
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "tpe":
        startup = max(4, min(10, config.trials // 4))
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup)
    # A population of a quarter of the budget gives NSGA-II a few generations even in a short search.
    population = max(6, min(50, config.trials // 4))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


def open_study(config: SearchConfig, worker: int = 0) -> optuna.Study:
    """Create the study or load it to resume; refuse to resume one that was started with other settings."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=config.study_name,
        storage=make_storage(config.storage_url),
        sampler=make_sampler(config, worker),
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
