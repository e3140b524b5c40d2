"""The Pareto front of a study (feasible, trained trials only), its JSON file (with what the search cost in energy)
and its table."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from rich.table import Table

from tinycompile.fileio import write_json
from tinycompile.search.config import SearchConfig
from tinycompile.search.energy import search_energy
from tinycompile.search.records import all_finetuned, finetuned_row, run_extras


def constraints_of(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    """The constraint values a trial recorded (feasible when all <= 0; a trial without any counts as infeasible)."""
    return list(trial.constraints.values()) or [1.0]


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial that respects every hard budget and was trained."""
    return trial.user_attrs.get("trained", False) and all(v <= 0 for v in constraints_of(trial))


def ranked(trials: Iterable[optuna.trial.FrozenTrial],
           accuracy: Mapping[int, float] | None = None) -> list[list[optuna.trial.FrozenTrial]]:
    """The feasible, scored trials in non-dominated ranks (accuracy up, cost down): the Pareto front first, each rank
    cheapest first; ``accuracy`` replaces some trials' accuracy by trial number (a supernet run's fine-tuned scores)."""
    given = accuracy or {}
    feasible = [t for t in trials if t.values is not None and is_feasible(t)]
    score = {t.number: (given.get(t.number, t.values[0]), t.values[1]) for t in feasible}
    points = sorted(feasible, key=lambda t: (score[t.number][1], -score[t.number][0], t.number))
    ranks: list[list[optuna.trial.FrozenTrial]] = []
    best: list[tuple[float, float]] = []  # per rank, its most accurate member so far (they all cost no more)
    for t in points:
        acc, cost = score[t.number]
        r = 0
        while r < len(best) and best[r][0] >= acc and best[r] != (acc, cost):  # dominated by rank r
            r += 1
        if r == len(ranks):
            ranks.append([])
            best.append((acc, cost))
        ranks[r].append(t)
        if acc > best[r][0]:
            best[r] = (acc, cost)
    return ranks


def pareto_front(trials: list[optuna.trial.FrozenTrial],
                 accuracy: Mapping[int, float] | None = None) -> list[optuna.trial.FrozenTrial]:
    """Feasible trials that no other feasible trial beats on both accuracy (max) and cost (min), best accuracy first;
    ``accuracy`` as for :func:`ranked`."""
    front = (ranked(trials, accuracy) or [[]])[0]
    given = accuracy or {}
    return sorted(front, key=lambda t: (-given.get(t.number, t.values[0]), t.values[1], t.number))


def final_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The Pareto front a search hands over: of the fine-tuned validation accuracy where a supernet run has one (a
    candidate behind the inherited front may overtake it once fine-tuned), else of the trial's own."""
    return finetuned_front(study.get_trials(deepcopy=False), all_finetuned(study))


def finetuned_front(trials: list[optuna.trial.FrozenTrial],
                    records: Mapping[int, Mapping[str, Any]]) -> list[optuna.trial.FrozenTrial]:
    """:func:`final_front` of ``trials`` and fine-tuned ``records`` already read (:func:`records.all_finetuned`)."""
    accuracy = {n: r["val_acc"] for n, r in records.items() if isinstance(r.get("val_acc"), (int, float))}
    return pareto_front(trials, accuracy)


def row(trial: optuna.trial.FrozenTrial, run_dir: Path) -> dict[str, Any]:
    """One Pareto entry as written to ``pareto.json``."""
    attrs = trial.user_attrs
    return {
        "trial": trial.number,
        "folder": str(run_dir / "trials" / str(trial.number)),
        "val_acc": trial.values[0],
        "test_acc": attrs.get("test_acc"),
        "latency_ms": attrs["latency_ms"],
        "cycles": attrs["cycles"],
        "energy_uj": attrs["energy_uj"],
        "peak_sram": attrs["peak_sram"],
        "flash": attrs["flash"],
        "params": attrs["params"],
        "macs": attrs["macs"],
    }


def write_pareto(study: optuna.Study, config: SearchConfig) -> list[dict[str, Any]]:
    """Write ``pareto.json`` and point the ``best`` link at the most accurate Pareto trial; return the rows.

    The rows name trial folders: those this machine did not train are fetched from the study first.
    """
    from tinycompile.search.artifacts import fetch_numbers  # SQLAlchemy: only once there is a front to write

    run_dir = config.run_dir
    front = final_front(study)
    fetch_numbers(study, config, [t.number for t in front])
    rows = [{**row(t, run_dir), **finetuned_row(study, t.number)} for t in front]  # supernet: fine-tuned test acc
    target = Path(config.target).stem if config.target.endswith((".yaml", ".yml")) else config.target
    energy = search_energy(study, rows[0] if rows else None, target)
    write_json(run_dir / "pareto.json", {"study": study.study_name, "front": rows, "search_energy": energy,
                                         **run_extras(run_dir)})
    if rows:
        link = run_dir / "best"
        tmp = run_dir / ".best.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(Path("trials") / str(rows[0]["trial"]))
        os.replace(tmp, link)  # atomic: `best` always names a whole trial folder
    return rows


def pareto_table(rows: list[dict[str, Any]], title: str, caption: str | None = None) -> Table:
    """A rich table of the Pareto front (``caption`` below it: the search's energy)."""
    table = Table(title=title, caption=caption)
    headers = ("trial", "val acc", "test acc", "latency ms", "cycles", "energy uJ", "SRAM KB", "flash KB", "params", "MACs")
    for h in headers:
        table.add_column(h, justify="right")
    for r in rows:
        table.add_row(
            str(r["trial"]),
            f"{r.get('finetuned_val_acc', r['val_acc']):.3f}",  # a supernet candidate: its fine-tuned model's
            f"{r['test_acc']:.3f}" if r["test_acc"] is not None else "-",
            f"{r['latency_ms']:.3f}",
            f"{r['cycles']:,}",
            f"{r['energy_uj']:.2f}",
            f"{r['peak_sram'] / 1024:.1f}",
            f"{r['flash'] / 1024:.1f}",
            f"{r['params']:,}",
            f"{r['macs']:,}",
        )
    return table
