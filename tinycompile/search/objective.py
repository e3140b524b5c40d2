"""One trial: choose a candidate, score it with the cost model, and train it only if it fits the hard budgets."""

from __future__ import annotations

import os
import socket

import numpy as np
import optuna

from tinycompile.cost.model import estimate
from tinycompile.search.config import Prepared
from tinycompile.search.teacher import teacher_logits
from tinycompile.train import train
from tinycompile.trial import save_trial

COST_ATTRS = ("cycles", "latency_ms", "energy_uj", "peak_sram", "arena_bytes", "flash", "params", "macs")


def trial_dir(prepared: Prepared, number: int) -> str:
    """The folder of trial ``number``."""
    return str(prepared.config.run_dir / "trials" / str(number))


class Objective:
    """Maximise validation accuracy, minimise predicted latency (or energy); budgets are constraints."""

    def __init__(self, prepared: Prepared) -> None:
        self.p = prepared
        self._teacher: np.ndarray | None = None

    def teacher(self) -> np.ndarray | None:
        """The teacher's logits when distilling (trained once per run, loaded once per worker)."""
        if self.p.config.distill and self._teacher is None:
            folder = self.p.config.run_dir / "teacher"
            self._teacher = teacher_logits(self.p.space, self.p.task, folder, self.p.config.epochs, self.p.config.seed)
        return self._teacher

    def __call__(self, trial: optuna.trial.Trial) -> tuple[float, float]:
        space = self.p.space
        choices = {key: trial.suggest_categorical(key, values) for key, values in space.parameters().items()}
        spec = space.build(choices, self.p.task.input_shape, self.p.task.num_classes)
        spec.meta.update(task=self.p.config.task, target=self.p.target.name, trial=trial.number)
        cost = estimate(spec, self.p.target)
        constraints = self.p.constraints(cost)
        for key in COST_ATTRS:
            trial.set_user_attr(key, getattr(cost, key))
        for key, value in constraints.items():
            trial.set_constraint(key, value)  # read by the samplers: infeasible trials rank below feasible ones
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        second = cost.latency_ms if self.p.config.objective == "latency" else cost.energy_uj
        if any(v > 0 for v in constraints.values()):
            # Over budget: scored from the cost model alone, never trained; infeasible to the sampler anyway.
            trial.set_user_attr("trained", False)
            return 0.0, second
        seed = self.p.config.seed + trial.number
        model, metrics = train(spec, self.p.task, epochs=self.p.config.epochs, seed=seed, teacher_logits=self.teacher())
        metrics["cost"] = cost.to_dict()
        save_trial(trial_dir(self.p, trial.number), spec, model, metrics)
        trial.set_user_attr("trained", True)
        trial.set_user_attr("test_acc", metrics["test_acc"])
        trial.set_user_attr("train_seconds", metrics["train_seconds"])
        return metrics["val_acc"], second
