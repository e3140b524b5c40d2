"""What a supernet run leaves besides its trials, read without torch (``report`` and ``pareto.json`` need it): the
cached supernet's ``supernet.json``, the Pareto candidates' fine-tuned figures (study user attrs ``finetuned:<n>``)
and the distillation teacher's ``metrics.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna

FOLDER, WEIGHTS, INFO = "supernet", "supernet.pt", "supernet.json"  # <run>/supernet/
FINETUNED = "finetuned:"  # study user attr prefix: finetuned:<trial> = the fine-tuned figures and stored files
TRAIN_TEACHER = "the sampled candidate with the most convolution weights under a MAC cap, trained from scratch"  # old runs


def finetuned(study: optuna.Study, number: int) -> dict[str, Any] | None:
    """The fine-tuned figures and stored files (``artifacts``) of trial ``number``, or None if it was not fine-tuned."""
    record = study.user_attrs.get(f"{FINETUNED}{number}")
    return record if isinstance(record, dict) else None


def all_finetuned(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """Every fine-tuned trial's figures by trial number (one read of the study's user attrs)."""
    return {int(key[len(FINETUNED):]): value for key, value in study.user_attrs.items()
            if key.startswith(FINETUNED) and isinstance(value, dict)}


def finetuned_row(study: optuna.Study, number: int) -> dict[str, Any]:
    """A Pareto row's fine-tuned figures: its test accuracy is the fine-tuned model's, the inherited weights' beside
    it (nothing for a trained trial, or a supernet trial not fine-tuned yet)."""
    record = finetuned(study, number)
    if record is None:
        return {}
    return {"test_acc": record["test_acc"], "finetuned_val_acc": record["val_acc"],
            "inherited_test_acc": record["inherited_test_acc"], "weights": record["weights"]}


def run_extras(run_dir: Path) -> dict[str, Any]:
    """The supernet's figures and the distillation teacher's (test accuracy beside the students'), where present."""
    extras: dict[str, Any] = {}
    info = _read(run_dir / FOLDER / INFO)
    if info is not None:
        extras["supernet"] = {k: info.get(k) for k in ("key", "epochs", "train_seconds", "trained_at", "parameters")}
        extras["supernet"].update(largest_val_acc=(info.get("largest") or {}).get("val_acc"),
                                  smallest_val_acc=(info.get("smallest") or {}).get("val_acc"))
    metrics = _read(run_dir / "teacher" / "metrics.json")
    if metrics is not None and isinstance(metrics.get("test_acc"), (int, float)):
        extras["teacher"] = {"source": metrics.get("source", TRAIN_TEACHER),
                             **{k: metrics.get(k) for k in ("val_acc", "test_acc", "epochs", "params", "macs", "candidates")}}
    return extras


def _read(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None if it is missing or damaged (the report goes on without it)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
