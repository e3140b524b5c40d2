"""The ledger's rules under every interleaving we can throw at them: workers on one real SQLite study, advanced one
step at a time in random order, some killed mid-trial or after recording their result (their trials stay RUNNING until
a reaper fails them, as heartbeats do). Always exactly N finished trials, never one configuration twice, nothing left
RUNNING or WAITING."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tinycompile.search import ledger
from tinycompile.search.storage import StaleTrialCallback, make_storage
from tinycompile.search.study import optimize

N = 6


class Worker:
    """One worker process's trials as steps: wait for a place, ask, choose, check, then finish or be killed."""

    def __init__(self, study: optuna.Study, rng: random.Random, dead: list[int], events: Counter[str]) -> None:
        self.study, self.rng, self.dead, self.events = study, rng, dead, events
        self.trial: optuna.trial.Trial | None = None
        self.stage = "idle"
        self.stopped = False

    def step(self) -> None:
        trials = self.study.get_trials(deepcopy=False)
        if self.stage == "idle":  # what study.wait_for_place decides
            if ledger.finished(trials) >= N:
                self.stopped = True
            elif ledger.places_in_use(trials) < N:
                self.trial, self.stage = self.study.ask(), "asked"
            return
        trial = self.trial
        assert trial is not None
        if self.stage == "asked":
            trial.suggest_int("x", 0, 11)  # a small space: proposals collide often
            self.stage = "chosen"
        elif self.stage == "chosen":  # what Objective._claim decides
            taken = ledger.twin_of(trials, trial.number, trial.params) is not None
            if taken or ledger.places_before(trials, trial.number) >= N:
                self.events["skipped"] += 1
                self.study.tell(trial, state=TrialState.PRUNED)
                self.stage = "idle"
            else:
                self.stage = "training"
        elif self.stage == "training":
            fate = self.rng.random()
            if fate < 0.15:
                self.killed("killed training")
                return
            values = [self.rng.random(), self.rng.random()]
            trial.set_user_attr(ledger.RESULT, values)
            if fate < 0.3:
                self.killed("killed after its result")
                return
            self.study.tell(trial, values)
            self.stage = "idle"

    def killed(self, event: str) -> None:
        """The process dies; its trial stays RUNNING until the reaper finds it. A new process takes its place."""
        assert self.trial is not None
        self.events[event] += 1
        self.dead.append(self.trial.number)
        self.trial, self.stage = None, "idle"


def reap(study: optuna.Study, dead: list[int]) -> None:
    """What fail_stale_trials does once a dead trial's heartbeat is stale: FAIL, then the stale-trial callback."""
    number = dead.pop(0)
    study.tell(number, state=TrialState.FAIL)
    StaleTrialCallback(N)(study, study.get_trials()[number])


# The workers step through ask and tell by hand (Optuna suggests optimize with heartbeats) and call the experimental
# retry callback directly, as the storage would.
@pytest.mark.filterwarnings("ignore:Heartbeat of storage", "ignore::optuna.exceptions.ExperimentalWarning")
def test_any_interleaving_ends_with_exactly_n_distinct_finished_trials(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}", N)
    events: Counter[str] = Counter()
    for seed in range(6):
        study = optuna.create_study(storage=storage, study_name=f"s{seed}", directions=["maximize", "minimize"],
                                    sampler=optuna.samplers.RandomSampler(seed=seed))
        rng = random.Random(seed)
        dead: list[int] = []
        workers = [Worker(study, rng, dead, events) for _ in range(3)]
        for _ in range(3000):
            live = [w for w in workers if not w.stopped]
            if not live and not dead:
                break
            if dead and (not live or rng.random() < 0.1):
                reap(study, dead)
            else:
                rng.choice(live).step()
            assert ledger.finished(study.get_trials(deepcopy=False)) <= N
        assert all(w.stopped for w in workers) and not dead, "the workers neither finished nor could go on"
        trials = study.get_trials()
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(done) == N
        assert len({t.params["x"] for t in done}) == N
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # every path was taken: skipped proposals, kills in training (retried) and after the result (finished as a copy)
    assert events["skipped"] and events["killed training"] and events["killed after its result"], events


def test_a_supernet_run_takes_choices_that_build_the_same_network_as_twins() -> None:
    from optuna.distributions import CategoricalDistribution

    from tinycompile.search.space import load_space

    space = load_space("cnn1d")
    base = {key: values[0] for key, values in space.parameters().items()} | {"blocks.count": 1}
    unused = base | {"block3.kernel": space.parameters()["block3.kernel"][-1]}  # block 3 does not exist: same network
    used = base | {"block0.kernel": space.parameters()["block0.kernel"][-1]}
    key = {name: ledger.network_key(space.build(c, (1, 1, 40), 10)) for name, c in
           (("base", base), ("unused", unused), ("used", used))}
    assert key["base"] == key["unused"] != key["used"]
    dists = {k: CategoricalDistribution(v) for k, v in space.parameters().items()}
    held = optuna.trial.create_trial(params=base, distributions=dists, values=[0.5, 1.0],
                                      user_attrs={ledger.NETWORK: key["base"]})
    held.number = 0
    assert ledger.twin_of([held], 1, unused, key["unused"]) == 0
    assert ledger.twin_of([held], 1, unused) is None  # the train strategy compares configurations only
    assert ledger.twin_of([held], 1, used, key["used"]) is None



@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the trials are asked for by hand, not by optimize
@pytest.mark.parametrize("change", ["claim a queued trial", "fail a stale trial"])
def test_a_trial_changes_hands_once_among_processes_racing_for_it(tmp_path: Path, change: str) -> None:
    """Optuna reads a trial's state, then writes the new one; on SQLite, two processes both read WAITING and both ran
    the trial, or both failed the same stale trial (and each finished or retried it): about one change in five doubled
    with this race before the storage changed a state by one conditional UPDATE."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    count = 60
    first = optuna.create_study(study_name="race", storage=make_storage(url), directions=["maximize"])
    for i in range(count):
        if change == "claim a queued trial":
            first.enqueue_trial({"x": i})
        else:
            first.ask()  # RUNNING, as a trial whose worker died
    ids = [t._trial_id for t in first.get_trials(deepcopy=False)]
    racers = [optuna.load_study(study_name="race", storage=make_storage(url)) for _ in range(4)]
    won: list[int] = []
    start = threading.Barrier(len(racers))

    def race(study: optuna.Study) -> None:
        start.wait()
        if change == "claim a queued trial":
            while (trial_id := study._pop_waiting_trial_id()) is not None:
                won.append(trial_id)  # list.append is atomic
            return
        for trial_id in ids:  # what fail_stale_trials does with each stale trial
            try:
                if study._storage.set_trial_state_values(trial_id, TrialState.FAIL):
                    won.append(trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass

    threads = [threading.Thread(target=race, args=(s,)) for s in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == sorted(ids)
    state = TrialState.RUNNING if change == "claim a queued trial" else TrialState.FAIL
    trials = first.get_trials(deepcopy=False, states=(state,))
    stamp = "datetime_start" if state == TrialState.RUNNING else "datetime_complete"
    assert len(trials) == count and all(getattr(t, stamp) is not None for t in trials)


def test_a_worker_whose_trial_was_failed_as_stale_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A starved machine: the reaper fails a trial whose heartbeat went stale while its worker still ran it. Optuna
    # then raises "Cannot tell a FAIL trial" out of optimize, which ended the worker and the whole search.
    study = optuna.create_study(storage=make_storage(f"sqlite:///{tmp_path / 'study.db'}"),
                                directions=["maximize", "minimize"])
    reaped: list[int] = []

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        if not reaped:  # the reaper's verdict arrives while this trial trains
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            reaped.append(trial.number)
        return x, 1 - x

    done = lambda: len(study.get_trials(states=(TrialState.COMPLETE,)))  # noqa: E731
    optimize(study, objective, lambda: done() < 3, n_trials=3)
    assert done() == 3 and [t.number for t in study.get_trials(states=(TrialState.FAIL,))] == reaped
    assert "failed as stale while it ran" in capsys.readouterr().out
