"""Search benchmark: cost-model speed, NSGA-II vs random hypervolume, wall time per trial, the full-size goal.

    python bench/bench_search.py [--trials 40] [--seeds 0 1] [--jobs 2]

Prints a table and writes bench/results/search.json. Every figure comes from this one run on this machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from optuna._hypervolume import compute_hypervolume
from rich.table import Table

from tinycompile.console import console
from tinycompile.cost.model import estimate
from tinycompile.fileio import write_json
from tinycompile.search.config import SearchConfig, prepare
from tinycompile.search.pareto import is_feasible
from tinycompile.search.space import load_space
from tinycompile.search.study import completed, run_search
from tinycompile.targets import load_target

HERE = Path(__file__).resolve().parent
# (1 - validation accuracy, predicted latency ms): the worst corner counted. The loose point counts the area of
# trivially poor models too, which any sampler covers; the tighter ones measure the region a user wants.
REFERENCE_POINTS = ((1.0, 4.0), (0.2, 2.0), (0.1, 1.0))


def hypervolume(losses: np.ndarray, ref: tuple[float, float]) -> float:
    """Area dominated by the points inside the reference box."""
    inside = losses[(losses < np.array(ref)).all(axis=1)] if len(losses) else losses
    return float(compute_hypervolume(inside, np.array(ref))) if len(inside) else 0.0


def cost_model_rate(seconds: float = 3.0) -> float:
    """Candidates built from the space and scored by the cost model per second."""
    space, target = load_space("cnn1d"), load_target("cortex-m4")
    rng = random.Random(0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        estimate(space.build(space.random_choices(rng), (1, 1, 40), 10), target)
        n += 1
    return n / (time.perf_counter() - start)


def search(sampler: str, seed: int, trials: int, jobs: int, out: Path, task: str = "mnist1d", space: str = "cnn1d",
           **budget: float) -> dict[str, float]:
    """Run one search and summarise it: hypervolume, wall time per trial, best feasible test accuracy."""
    name = ("" if task == "mnist1d" else f"{task}-") + f"{sampler}-s{seed}-t{trials}"
    name += "".join(f"-{k}{v:g}" for k, v in budget.items())
    config = SearchConfig(task=task, space=space, target="cortex-m4", trials=trials, seed=seed,
                          sampler=sampler, jobs=jobs, study=name, out=str(out), **budget)
    study = run_search(prepare(config), console(stderr=True))
    trials_done = completed(study)[:trials]
    # Timings come from the study's own timestamps, so a resumed benchmark reports the same figures.
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials_done]
    span = max(t.datetime_complete for t in trials_done) - min(t.datetime_start for t in trials_done)
    feasible = [t for t in trials_done if is_feasible(t)]
    losses = np.array([[1 - t.values[0], t.values[1]] for t in feasible])
    best = max(feasible, key=lambda t: t.values[0], default=None)
    return {
        "hypervolume": {str(ref): hypervolume(losses, ref) for ref in REFERENCE_POINTS},
        "seconds_per_trial": span.total_seconds() / len(trials_done),  # wall clock, workers in parallel
        "trial_seconds_mean": float(np.mean(durations)),  # one trial on one worker
        "best_val_acc": best.values[0] if best else 0.0,
        "best_test_acc": best.user_attrs["test_acc"] if best else 0.0,
        "best_peak_sram": best.user_attrs["peak_sram"] if best else 0,
        "best_flash": best.user_attrs["flash"] if best else 0,
        "trained": len(feasible),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "runs"))
    args = parser.parse_args()
    out = Path(args.out)
    results: dict[str, object] = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv])}
    results["cost_model_evals_per_second"] = cost_model_rate()
    runs = {s: [search(s, seed, args.trials, args.jobs, out) for seed in args.seeds] for s in ("nsga2", "random")}
    results["runs"] = runs
    hv = {s: {str(ref): float(np.mean([r["hypervolume"][str(ref)] for r in rs])) for ref in REFERENCE_POINTS}
          for s, rs in runs.items()}
    results["hypervolume_ratio_nsga2_over_random"] = {
        str(ref): hv["nsga2"][str(ref)] / hv["random"][str(ref)] if hv["random"][str(ref)] else float("inf")
        for ref in REFERENCE_POINTS
    }
    goal = search("nsga2", 0, args.trials, args.jobs, out, sram_kb=16, flash_kb=32)
    results["full_size_goal"] = {"budget": "16 KB SRAM, 32 KB flash, cortex-m4", "target_test_acc": 0.94, **goal}
    digits = search("nsga2", 0, args.trials, args.jobs, out, task="digits", space="cnn2d")
    results["digits_cnn2d"] = {"target_test_acc": 0.95, **digits}
    write_json(HERE / "results" / "search.json", results)

    table = Table(title=f"search benchmark (MNIST-1D, cnn1d, cortex-m4, {args.trials} trials, seeds {args.seeds})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("cost-model evaluations / s", f"{results['cost_model_evals_per_second']:,.0f}")
    for s, rs in runs.items():
        table.add_row(f"{s}: hypervolume (mean), ref {REFERENCE_POINTS}", " / ".join(f"{v:.4f}" for v in hv[s].values()))
        table.add_row(f"{s}: wall s / trial (mean)", f"{np.mean([r['seconds_per_trial'] for r in rs]):.1f}")
        table.add_row(f"{s}: best test acc (mean)", f"{np.mean([r['best_test_acc'] for r in rs]):.3f}")
    ratios = results["hypervolume_ratio_nsga2_over_random"].values()
    table.add_row(f"hypervolume ratio NSGA-II / random, ref {REFERENCE_POINTS}", " / ".join(f"{r:.3f}" for r in ratios))
    table.add_row("16 KB SRAM + 32 KB flash: best test acc", f"{goal['best_test_acc']:.3f} (goal >= 0.94)")
    table.add_row("  its peak SRAM / flash (KB)", f"{goal['best_peak_sram'] / 1024:.1f} / {goal['best_flash'] / 1024:.1f}")
    table.add_row("digits, cnn2d: best test acc", f"{digits['best_test_acc']:.3f} (goal >= 0.95)")
    console().print(table)
    print(json.dumps({k: results[k] for k in ("cost_model_evals_per_second", "hypervolume_ratio_nsga2_over_random")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
