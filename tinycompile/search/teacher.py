"""A teacher for distillation, trained once per run and shared by all workers: the stronger (by validation accuracy)
of the space's largest candidate and the widest DS-CNN under the same MAC cap, each trained twice as long as a trial
with label smoothing (softer, more informative logits)."""

from __future__ import annotations

import fcntl
import math
import random
from pathlib import Path

import numpy as np
import torch

from tinycompile.arch import ArchSpec
from tinycompile.baselines import widest_ds_cnn
from tinycompile.fileio import write_with
from tinycompile.search.space import SearchSpace
from tinycompile.tasks import Task, at_resolution
from tinycompile.train import train
from tinycompile.trial import save_trial

TEACHER_MAX_MACS = 2_000_000  # keeps each candidate's training (twice a trial's epochs) to minutes on one core
TEACHER_PROBES = 2000
TEACHER_EPOCHS = 2  # times a trial's epochs: a teacher trained like any trial taught its students little
TEACHER_SMOOTHING = 0.1
TEACHER_MAX_CHANNELS = 64  # the DS-CNN candidate's width: MLPerf Tiny's keyword-spotting DS-CNN at most


def teacher_spec(space: SearchSpace, task: Task, seed: int, max_macs: int = TEACHER_MAX_MACS) -> ArchSpec:
    """The candidate with the most convolution weights among sampled ones under ``max_macs`` (budgets do not apply);
    among equals, the one with more MACs."""
    rng = random.Random(seed)
    best: ArchSpec | None = None
    for _ in range(TEACHER_PROBES):
        spec = space.build(space.random_choices(rng), task.input_shape, task.num_classes)
        if sum(spec.macs()) <= max_macs and (best is None or _capacity(spec) > _capacity(best)):
            best = spec
    assert best is not None, f"no candidate of the space fits the teacher's cap of {max_macs:,} MACs"
    return best


def conv_weights(spec: ArchSpec) -> int:
    """Weights of the convolutions (the feature extractor), biases and dense layers not counted."""
    return sum(math.prod(shape) for layer, shape in zip(spec.layers, spec.weight_shapes())
               if shape is not None and layer.op in ("conv", "dwconv"))


def _capacity(spec: ArchSpec) -> tuple[int, int]:
    # Not all parameters: a dense layer over a flattened map can hold most of a network's weights and still learn
    # little (on kws-espeak the most-parameters pick, 1 M weights behind 8-channel convs, reached 55% test accuracy
    # where the most-convolution-weights pick reached 87%, 30 epochs each).
    return conv_weights(spec), sum(spec.macs())


def teacher_candidates(space: SearchSpace, task: Task, seed: int, max_macs: int = TEACHER_MAX_MACS) -> list[ArchSpec]:
    """The networks the teacher is chosen from: the space's candidate with the most convolution weights and, where
    one fits, the widest DS-CNN (4 blocks, up to 64 channels), both under ``max_macs``."""
    candidates = [teacher_spec(space, task, seed, max_macs)]
    ds_cnn = widest_ds_cnn(task.input_shape, task.num_classes, max_macs, max_channels=TEACHER_MAX_CHANNELS)
    if ds_cnn is not None:
        candidates.append(ds_cnn)
    return candidates


def teacher_logits(space: SearchSpace, task: Task, folder: Path, epochs: int, seed: int, device: str = "auto",
                   max_macs: int = TEACHER_MAX_MACS) -> np.ndarray:
    """The teacher's logits on ``task.x_train`` (the same samples, in order, at whatever resolution the teacher takes):
    chosen and trained under a file lock the first time, then read from disk."""
    folder.mkdir(parents=True, exist_ok=True)
    logits_file = folder / "logits.npy"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker trains; the others wait and reuse its result
        if not logits_file.exists():
            trained = []
            for spec in teacher_candidates(space, task, seed, max_macs):
                seen = at_resolution(task, spec.meta.get("resolution"))
                model, metrics = train(spec, seen, epochs=epochs * TEACHER_EPOCHS, seed=seed, device=device,
                                       label_smoothing=TEACHER_SMOOTHING)
                trained.append((spec, seen, model, metrics))
            spec, seen, model, metrics = max(trained, key=lambda t: t[3]["val_acc"])  # the first on ties
            metrics["candidates"] = [{"name": _name(s), "macs": sum(s.macs()), "val_acc": m["val_acc"],
                                      "test_acc": m["test_acc"]} for s, _, _, m in trained]
            metrics["source"] = (f"{_name(spec)}, the better by validation accuracy of "
                                 f"{' and '.join(_name(s) for s, _, _, _ in trained)}, trained {epochs * TEACHER_EPOCHS}"
                                 f" epochs with label smoothing {TEACHER_SMOOTHING}")
            with torch.no_grad():  # on the CPU, where train returns the model
                logits = model(torch.from_numpy(seen.x_train)).numpy()
            save_trial(folder, spec, model, metrics)
            write_with(logits_file, lambda tmp: _save_array(tmp, logits))
    return np.load(logits_file)


def _name(spec: ArchSpec) -> str:
    return str(spec.meta.get("name") or "the space's largest candidate")


def _save_array(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as f:  # a file object: np.save would append ".npy" to a bare path
        np.save(f, array)
