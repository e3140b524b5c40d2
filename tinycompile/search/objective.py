"""One trial: choose a candidate, score it with the cost model, and train it only if it fits the hard budgets (with
``--strategy supernet``: score it with weights inherited from the run's supernet instead, :mod:`.sharing`).

Before any work the trial checks the shared study (:mod:`tinycompile.search.ledger`): a configuration another trial
holds is skipped, not trained again, and a trial beyond the N places the user asked for is skipped too. Both end
PRUNED with the reason in a user attr. A trained trial's files go to the study's artifact store; its values are
recorded last, so a worker killed after that point loses nothing (:class:`~tinycompile.search.storage.StaleTrialCallback`).
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from tinycompile.cost.model import estimate
from tinycompile.search import ledger
from tinycompile.search.artifacts import DatabaseArtifactStore, publish
from tinycompile.search.config import Prepared
from tinycompile.search.storage import WORKER, process_seed
from tinycompile.search.supernet import Subnet
from tinycompile.search.teacher import teacher_logits
from tinycompile.tasks import at_resolution
from tinycompile.train import train
from tinycompile.trial import save_trial

COST_ATTRS = ("cycles", "latency_ms", "energy_uj", "peak_sram", "arena_bytes", "flash", "params", "macs")


def trial_dir(prepared: Prepared, number: int) -> Path:
    """The folder of trial ``number``."""
    return prepared.config.run_dir / "trials" / str(number)


class Objective:
    """Maximise validation accuracy, minimise predicted latency (or energy); budgets are constraints."""

    def __init__(self, prepared: Prepared) -> None:
        self.p = prepared
        self.store = DatabaseArtifactStore(prepared.config.storage_url)
        self._teacher: np.ndarray | None = None
        self._inheritance: Any = None  # --strategy supernet: sharing.Inheritance, made at the first trial it scores

    def teacher(self) -> np.ndarray | None:
        """The teacher's logits when distilling (trained once per run, loaded once per worker)."""
        if self.p.config.distill and self._teacher is None:
            folder = self.p.config.run_dir / "teacher"
            self._teacher = teacher_logits(self.p.space, self.p.task, folder, self.p.config.epochs, self.p.config.seed,
                                           self.p.config.device)
        return self._teacher

    def inheritance(self) -> Any:
        """--strategy supernet: the scorer of inherited weights (loads the run's supernet once per worker)."""
        if self._inheritance is None:
            from tinycompile.search.sharing import Inheritance

            self._inheritance = Inheritance(self.p)
        return self._inheritance

    def __call__(self, trial: optuna.trial.Trial) -> tuple[float, float]:
        # Optuna's heartbeat thread starts beside this call; recording one here first means that every trial with a
        # WORKER attr can go stale, and one without it died before this point (storage.Reaper).
        trial.storage.record_heartbeat(trial._trial_id)
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("sampler_seed", process_seed(self.p.config.seed))
        space = self.p.space
        choices = {key: trial.suggest_categorical(key, values) for key, values in space.parameters().items()}
        spec, slots = space.build_with_slots(choices, self.p.task.input_shape, self.p.task.num_classes)
        network = None
        if self.p.config.strategy == "supernet":
            # Choices of blocks a candidate does not have leave its network as it is: NSGA-II, drawn to the smallest
            # corner, proposed one network under dozens of configurations, all on the Pareto front as ties (81 front
            # members, most of them one network, in the 940 s benchmark run). A supernet run scores each network once.
            network = ledger.network_key(spec)
            trial.set_user_attr(ledger.NETWORK, network)
        self._claim(trial, network)
        spec.meta.update(task=self.p.config.task, target=self.p.target.name, trial=trial.number)
        cost = estimate(spec, self.p.target)
        constraints = self.p.constraints(cost)
        for key in COST_ATTRS:
            trial.set_user_attr(key, getattr(cost, key))
        with warnings.catch_warnings():
            # A retried trial carries its constraints already (same configuration, same values); Optuna keeps them
            # and would warn.
            warnings.filterwarnings("ignore", message="The constraint value is ignored")
            for key, value in constraints.items():
                trial.set_constraint(key, value)  # read by the samplers: infeasible trials rank below feasible ones
        second = cost.latency_ms if self.p.config.objective == "latency" else cost.energy_uj
        if any(v > 0 for v in constraints.values()):
            # Over budget: scored from the cost model alone, never trained; infeasible to the sampler anyway.
            trial.set_user_attr("trained", False)
            return self._done(trial, (0.0, second))
        if self.p.config.strategy == "supernet":  # no training: weights inherited from the run's supernet
            model, metrics = self.inheritance().score(Subnet(choices, spec, slots))
        else:
            seed = self.p.config.seed + trial.number
            task = at_resolution(self.p.task, spec.meta.get("resolution"))  # the images this candidate takes
            model, metrics = train(spec, task, epochs=self.p.config.epochs, seed=seed, teacher_logits=self.teacher(),
                                   device=self.p.config.device)
        metrics["cost"] = cost.to_dict()
        folder = trial_dir(self.p, trial.number)
        save_trial(folder, spec, model, metrics)
        publish(trial, folder, self.store)
        trial.set_user_attr("trained", True)
        trial.set_user_attr("test_acc", metrics["test_acc"])
        if "weights" in metrics:  # inherited from the supernet
            trial.set_user_attr("weights", metrics["weights"])
            trial.set_user_attr("inherit_seconds", metrics["inherit_seconds"])
        else:
            trial.set_user_attr("train_seconds", metrics["train_seconds"])
        return self._done(trial, (metrics["val_acc"], second))

    def _claim(self, trial: optuna.trial.Trial, network: str | None = None) -> None:
        """Skip (prune) the trial if its configuration (or, given ``network``, its network) is taken or the study's N
        places are."""
        trials = trial.study.get_trials(deepcopy=False)
        twin = ledger.twin_of(trials, trial.number, trial.params, network)
        if twin is not None:
            trial.set_user_attr(ledger.DUPLICATE_OF, twin)
            raise optuna.TrialPruned(f"trial {twin} holds the same configuration")
        if ledger.places_before(trials, trial.number) >= self.p.config.trials:
            trial.set_user_attr(ledger.SURPLUS, True)
            raise optuna.TrialPruned(f"{self.p.config.trials} trials were already under way")

    @staticmethod
    def _done(trial: optuna.trial.Trial, values: tuple[float, float]) -> tuple[float, float]:
        """Record the values as the trial's last write: from here a crash cannot lose the trial."""
        trial.set_user_attr(ledger.RESULT, list(values))
        return values
