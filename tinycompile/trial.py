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

SPEC, WEIGHTS, METRICS = "spec.json", "weights.pt", "metrics.json"


def save_trial(folder: str | Path, spec: ArchSpec, model: SpecNet | None, metrics: dict[str, Any]) -> None:
    """Write a trial folder; the metrics file goes last, so its presence marks a complete trial."""
    folder = Path(folder)
    write_json(folder / SPEC, spec.to_dict())
    if model is not None:
        write_with(folder / WEIGHTS, lambda tmp: torch.save(model.state_dict(), tmp))
    write_json(folder / METRICS, metrics)


def load_trial(folder: str | Path) -> tuple[ArchSpec, SpecNet, dict[str, Any]]:
    """Read a trial folder written by :func:`save_trial` (a trained one: it must hold weights)."""
    folder = Path(folder)
    for name in (SPEC, WEIGHTS, METRICS):
        if not (folder / name).is_file():
            hint = "it was never trained (over budget?)" if name == WEIGHTS else "is this a trial folder?"
            raise UserError(f"{folder}: no {name}; {hint} Pick a trial from the run's pareto.json")
    spec = ArchSpec.load(folder / SPEC)
    model = SpecNet(spec)
    model.load_state_dict(torch.load(folder / WEIGHTS, weights_only=True))
    model.eval()
    return spec, model, json.loads((folder / METRICS).read_text())
