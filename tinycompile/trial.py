"""A trial folder: ``spec.json`` (the ArchSpec), ``weights.pt`` (the trained state dict), ``metrics.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tinycompile.arch import ArchSpec
from tinycompile.errors import UserError
from tinycompile.fileio import write_json, write_with
from tinycompile.model import SpecNet
from tinycompile.tasks import Task

SPEC, WEIGHTS, METRICS = "spec.json", "weights.pt", "metrics.json"


def save_trial(folder: str | Path, spec: ArchSpec, model: SpecNet | None, metrics: dict[str, Any]) -> None:
    """Write a trial folder; the metrics file goes last, so its presence marks a complete trial."""
    folder = Path(folder)
    write_json(folder / SPEC, spec.to_dict())
    if model is not None:
        write_with(folder / WEIGHTS, lambda tmp: torch.save(model.state_dict(), tmp))
    write_json(folder / METRICS, metrics)


def load_trial(folder: str | Path) -> tuple[ArchSpec, SpecNet, dict[str, Any]]:
    """Read a trial folder written by :func:`save_trial` (a trained one: it must hold weights); one-line UserError
    if a file is missing, damaged, or does not fit the others (weights of another network)."""
    folder = Path(folder)
    for name in (SPEC, WEIGHTS, METRICS):
        if not (folder / name).is_file():
            hint = "it was never trained (over budget?)" if name == WEIGHTS else "is this a trial folder?"
            raise UserError(f"{folder}: no {name}; {hint} Pick a trial from the run's pareto.json")
    fix = "pick a trial folder that `tinycompile search` wrote"
    try:
        spec = ArchSpec.load(folder / SPEC)
        with torch.device("meta"):  # shapes only: a spec asking for 1e9 channels allocates nothing here
            expected = SpecNet(spec).state_dict()
    except (OSError, ValueError) as exc:  # ValueError: not JSON, not UTF-8, not a spec, or an op torch cannot train
        raise UserError(f"{folder / SPEC}: not a network spec ({exc}); {fix}") from None
    try:
        metrics = json.loads((folder / METRICS).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder / METRICS}: not readable JSON ({type(exc).__name__}: {exc}); {fix}") from None
    if not isinstance(metrics, dict):
        raise UserError(f"{folder / METRICS} must hold a JSON object, but holds {type(metrics).__name__}; {fix}")
    state = _load_weights(folder / WEIGHTS, fix)
    _check_weights(folder, spec, expected, state)
    model = SpecNet(spec)
    model.load_state_dict(state)
    model.eval()
    return spec, model, metrics


def trial_task(folder: str | Path, spec: ArchSpec, metrics: dict[str, Any]) -> Task:
    """The task a trial was trained on (``meta.task`` of its spec), its images resized to ``meta.resolution`` as they
    were in training, loaded and checked to fit the spec's network."""
    from tinycompile.tasks import MAX_RESOLUTION, load_task

    name = spec.meta.get("task") or metrics.get("task")
    if not name or not isinstance(name, str):
        raise UserError(f"{folder}: spec.json has no meta.task; cannot find the data to calibrate and test on")
    resolution = spec.meta.get("resolution")
    if resolution is not None and (not isinstance(resolution, int) or isinstance(resolution, bool)
                                   or not 1 <= resolution <= MAX_RESOLUTION):
        raise UserError(f"{folder}: spec.json's meta.resolution must be an integer from 1 to {MAX_RESOLUTION} (the side "
                        f"the task's images were resized to), but is {resolution!r}; the spec was edited")
    task = load_task(name, resolution=resolution)
    if (task.input_shape, task.num_classes) != (spec.input_shape, spec.num_classes):
        raise UserError(f"{folder}: spec.json's network takes {list(spec.input_shape)} inputs into {spec.num_classes} "
                        f"classes, but task {name} has {list(task.input_shape)} and {task.num_classes}; the spec was "
                        "edited or names the wrong task")
    return task


def _load_weights(path: Path, fix: str) -> dict[str, torch.Tensor]:
    """The state dict in ``weights.pt`` (tensors only: ``weights_only`` never runs code from the file)."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a truncated, empty or foreign file
        raise UserError(f"{path}: not a readable weights file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                        f"{fix}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise UserError(f"{path} must hold a state dict of tensors, but holds {type(state).__name__}; {fix}")
    return state


def _check_weights(folder: Path, spec: ArchSpec, expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> None:
    """UserError naming the first tensor of ``weights.pt`` that the spec's network does not have in that shape."""
    for key, want in expected.items():
        got = state.get(key)
        if got is None or tuple(got.shape) != tuple(want.shape):
            have = "missing" if got is None else f"shaped {list(got.shape)}"
            raise UserError(f"{folder / WEIGHTS} does not fit {SPEC}: tensor {key} must be shaped {list(want.shape)}, "
                            f"but is {have}; the two files come from different trials")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise UserError(f"{folder / WEIGHTS} does not fit {SPEC}: it holds tensor {extra[0]}, which the network of "
                        f"{SPEC} does not have; the two files come from different trials")
