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
TRAIN_TEACHER = "the largest sampled candidate under a MAC cap, trained from scratch"


def finetuned(study: optuna.Study, number: int) -> dict[str, Any] | None:
    """The fine-tuned figures and stored files (``artifacts``) of trial ``number``, or None if it was not fine-tuned."""
    record = study.user_attrs.get(f"{FINETUNED}{number}")
    return record if isinstance(record, dict) else None


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
    info_file = run_dir / FOLDER / INFO
    if info_file.is_file():
        info = json.loads(info_file.read_text())
        extras["supernet"] = {k: info.get(k) for k in ("key", "epochs", "train_seconds", "trained_at", "parameters")}
        extras["supernet"].update(largest_val_acc=info["largest"]["val_acc"], smallest_val_acc=info["smallest"]["val_acc"])
    teacher = run_dir / "teacher" / "metrics.json"
    if teacher.is_file():
        metrics = json.loads(teacher.read_text())
        extras["teacher"] = {"source": metrics.get("source", TRAIN_TEACHER),
                             **{k: metrics.get(k) for k in ("val_acc", "test_acc", "epochs", "params", "macs")}}
    return extras
