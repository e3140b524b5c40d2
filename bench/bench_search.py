"""Search benchmark, two sections (both by default):

- ``samplers``: cost-model speed, NSGA-II vs random hypervolume after ``--trials`` trained trials, wall time per
  trial, the full-size goal (MNIST-1D within 16 KB SRAM / 32 KB flash), digits on cnn2d.
- ``strategies``: on MNIST-1D / cortex-m4 within 16 KB SRAM and 32 KB flash, ``train`` (NSGA-II, every trial trained,
  ``--trials`` trials of ``--epochs``: what ``tinycompile search`` does by default) runs first, and its wall time W sets
  the others' budgets: ``supernet`` (one weight-sharing supernet on ``--supernet-space``, trials scored with inherited
  weights, the Pareto front, then the candidates behind it fine-tuned, and a second pass over the best, all inside
  the budget) once with W (equal wall time) and once with W / 4 (``supernet-quarter``), and ``random`` (random
  sampling, every trial trained) with W. Figures: hypervolume in the box (error <= 0.2, <= 2 ms) over every model a
  run produced, and in the region a user wants (error <= 0.1, <= 1 ms), best feasible accuracy, and when each run
  reached ``train``'s hypervolume.

    python bench/bench_search.py [--sections samplers strategies] [--trials 40] [--seeds 0 1] [--jobs 2]
        [--budget-s 1500] [--epochs 40] [--supernet-space cnn1d-shared] [--supernet-epochs 40] [--quarter-epochs 40]
        [--finetune-epochs 25] [--finetune-share 0.5] [--distill] [--reuse-train]
        [--supernet-trials 150] [--strategies train supernet supernet-quarter random]

The supernet runs train their supernet for at most 40% of their budget (``tinycompile search --time-limit``), so the
epochs above are the most.

Prints a table per section and writes bench/results/search.json; a section not run keeps its figures there (each
section records its own date and command). Every figure of a section comes from one run on this machine.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from optuna._hypervolume import compute_hypervolume
from rich.table import Table

from tinycompile.console import console
from tinycompile.cost.model import estimate
from tinycompile.fileio import write_json
from tinycompile.search.config import SearchConfig, prepare
from tinycompile.search.pareto import is_feasible
from tinycompile.search.records import finetuned
from tinycompile.search.space import load_space
from tinycompile.search.study import completed, run_search
from tinycompile.targets import load_target

HERE = Path(__file__).resolve().parent
# (1 - validation accuracy, predicted latency ms): the worst corner counted. The loose point counts the area of
# trivially poor models too, which any sampler covers; the tighter ones measure the region a user wants.
REFERENCE_POINTS = ((1.0, 4.0), (0.2, 2.0), (0.1, 1.0))
BOX = (0.2, 2.0)  # the strategies' reference box: error <= 0.2, <= 2 ms
# and the region a user wants (error <= 0.1, <= 1 ms), beside it: the box's area above the fronts is nearly all
# covered by any good one (a supernet front leaves 0.054-0.069 of its 0.4), so its ratios are capped near 1.2x
TIGHT = (0.1, 1.0)
GOAL = {"sram_kb": 16.0, "flash_kb": 32.0}  # the strategies' budgets on cortex-m4
# name -> (strategy, sampler, share of train's wall time as the budget); train runs first, to --trials or --budget-s
STRATEGIES = {"train": ("train", "nsga2", None), "supernet": ("supernet", "nsga2", 1.0),
              "supernet-quarter": ("supernet", "nsga2", 0.25), "random": ("train", "random", 1.0)}


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


def samplers(args: argparse.Namespace, out: Path) -> tuple[dict[str, Any], Table]:
    """NSGA-II vs random after --trials trained trials, the full-size goal and digits."""
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv])}
    results["cost_model_evals_per_second"] = cost_model_rate()
    runs = {s: [search(s, seed, args.trials, args.jobs, out) for seed in args.seeds] for s in ("nsga2", "random")}
    results["runs"] = runs
    hv = {s: {str(ref): float(np.mean([r["hypervolume"][str(ref)] for r in rs])) for ref in REFERENCE_POINTS}
          for s, rs in runs.items()}
    results["hypervolume_ratio_nsga2_over_random"] = {
        str(ref): hv["nsga2"][str(ref)] / hv["random"][str(ref)] if hv["random"][str(ref)] else float("inf")
        for ref in REFERENCE_POINTS
    }
    goal = search("nsga2", 0, args.trials, args.jobs, out, **GOAL)
    results["full_size_goal"] = {"budget": "16 KB SRAM, 32 KB flash, cortex-m4", "target_test_acc": 0.94, **goal}
    digits = search("nsga2", 0, args.trials, args.jobs, out, task="digits", space="cnn2d")
    results["digits_cnn2d"] = {"target_test_acc": 0.95, **digits}

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
    return results, table


def strategy_run(name: str, args: argparse.Namespace, out: Path, budget_s: float) -> dict[str, Any]:
    """One strategy from scratch under a wall-clock budget: its hypervolume over time, its best feasible model."""
    strategy, sampler, _ = STRATEGIES[name]
    supernet = strategy == "supernet"
    space = args.supernet_space if supernet else args.space
    study_name = f"strategy-{name}-{Path(space).stem}-s{args.seed}"
    shutil.rmtree(out / study_name, ignore_errors=True)  # a budget means a fresh run, never a resumed one
    config = SearchConfig(task="mnist1d", space=space, target="cortex-m4", seed=args.seed, sampler=sampler,
                          jobs=args.jobs, study=study_name, out=str(out), strategy=strategy,
                          trials=args.supernet_trials if supernet else args.trials,
                          epochs=(args.quarter_epochs if name == "supernet-quarter" else args.supernet_epochs)
                          if supernet else args.epochs,
                          finetune_epochs=args.finetune_epochs if supernet else None,
                          distill=supernet and args.distill, **GOAL)
    prepared = prepare(config)
    start = time.time()
    end = start + budget_s
    # the supernet's trials stop early enough to leave its fine-tuning a share of the time left once it is trained
    study = run_search(prepared, console(stderr=True), deadline=end, finetune_deadline=end,
                       trial_share=1 - args.finetune_share if supernet else None, cost_limit=BOX[1])
    wall = time.time() - start
    trials = completed(study)
    # every model the run produced, when it was ready: (seconds, val error, latency, test acc, trial, weights)
    events: list[tuple[float, float, float, float, int, str]] = []
    for t in trials:
        if not is_feasible(t):
            continue
        events.append((t.datetime_complete.timestamp() - start, 1 - t.values[0], t.values[1], t.user_attrs["test_acc"],
                       t.number, t.user_attrs.get("weights", "trained")))
        record = finetuned(study, t.number)
        if record is not None:
            for model in (record.get("first_pass"), record):  # a second pass's record keeps when the first was ready
                if model is not None:
                    events.append((model["finished_at"] - start, 1 - model["val_acc"], t.values[1], model["test_acc"],
                                   t.number, record["weights"]))
    events.sort()
    curve = [(e[0], hypervolume(np.array([[p[1], p[2]] for p in events[: i + 1]]), BOX)) for i, e in enumerate(events)]
    final: dict[int, tuple[float, float, float, float, int, str]] = {}
    for e in events:  # a trial's last model (fine-tuned after inherited) is the one it hands over
        final[e[4]] = e
    best = min(final.values(), key=lambda e: (e[1], e[2]), default=None)
    attrs = {t.number: t.user_attrs for t in trials}
    figures: dict[str, Any] = {
        "strategy": strategy, "sampler": sampler, "space": Path(space).stem, "budget_seconds": round(budget_s, 1),
        "trials": len(trials), "feasible": len(final),
        "wall_seconds": round(wall, 1), "hypervolume": curve[-1][1] if curve else 0.0,
        "hypervolume_tight": hypervolume(np.array([[e[1], e[2]] for e in events]), TIGHT),
        "best_val_acc": 1 - best[1] if best else 0.0, "best_test_acc": best[3] if best else 0.0,
        "best_trial": best[4] if best else None, "best_weights": best[5] if best else None,
        "best_peak_sram": attrs[best[4]]["peak_sram"] if best else None,
        "best_flash": attrs[best[4]]["flash"] if best else None,
        "best_latency_ms": best[2] if best else None,
        "hypervolume_curve": [[round(t, 1), h] for t, h in curve],
        "front": front_points(list(final.values())),
    }
    if supernet:
        info = json.loads((config.run_dir / "supernet" / "supernet.json").read_text())
        figures["supernet_seconds"] = info["train_seconds"]
        figures["supernet_epochs"] = info["epochs"]  # as many as fit in its share of the run's time
        figures["supernet_largest_val_acc"] = info["largest"]["val_acc"]
        figures["supernet_largest_macs"] = info["largest"]["macs"]
        records = [finetuned(study, t.number) for t in trials]
        figures["finetuned"] = sum(1 for r in records if r is not None)
        figures["second_pass"] = sum(1 for r in records if r is not None and r.get("passes", 1) >= 2)
        inherited = [t for t in trials if is_feasible(t) and t.user_attrs.get("weights")]
        figures["inherited_val_acc_mean"] = float(np.mean([t.values[0] for t in inherited])) if inherited else 0.0
    return figures


def front_points(models: list[tuple[float, float, float, float, int, str]]) -> list[dict[str, Any]]:
    """The non-dominated models inside the reference box, fastest first: where the hypervolume's area comes from."""
    front: list[dict[str, Any]] = []
    for _, err, lat, test, trial, weights in sorted(models, key=lambda e: (e[2], e[1])):
        if err < BOX[0] and lat < BOX[1] and (not front or err < front[-1]["val_error"]):
            front.append({"latency_ms": round(lat, 4), "val_error": round(err, 4), "test_acc": test, "trial": trial,
                          "weights": weights})
    return front


def reach_seconds(curve: list[list[float]], target: float) -> float | None:
    """When a hypervolume curve first reaches ``target`` (None: never)."""
    return next((t for t, h in curve if h >= target - 1e-12), None) if target > 0 else None


def strategies(args: argparse.Namespace, out: Path) -> tuple[dict[str, Any], Table]:
    """train first (its wall time W), then supernet with W and with W / 4, and random with W."""
    if args.reuse_train:  # the train run of the last strategies section, to compare a changed supernet against it
        before = json.loads((HERE / "results" / "search.json").read_text())["strategies"]
        runs = {"train": {**before["runs"]["train"], "reused_from": {k: before[k] for k in ("date", "command")}}}
        front = runs["train"]["front"]  # a run from before the tight box was measured: its front has the area
        runs["train"].setdefault("hypervolume_tight", hypervolume(
            np.array([[m["val_error"], m["latency_ms"]] for m in front]).reshape(-1, 2), TIGHT))
    else:
        runs = {"train": strategy_run("train", args, out, args.budget_s)}
    wall = runs["train"]["wall_seconds"]
    for name in args.strategies:
        if name != "train":
            runs[name] = strategy_run(name, args, out, STRATEGIES[name][2] * wall)
    target = runs["train"]["hypervolume"]
    for figures in runs.values():
        figures["seconds_to_train_hypervolume"] = reach_seconds(figures["hypervolume_curve"], target)
    results = {
        "date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv]),
        "task": "mnist1d", "space": args.space, "supernet_space": args.supernet_space, "target": "cortex-m4",
        "budget": "16 KB SRAM, 32 KB flash",
        "reference_box": {"error": BOX[0], "latency_ms": BOX[1]},
        "tight_box": {"error": TIGHT[0], "latency_ms": TIGHT[1]},
        "train_budget_seconds": args.budget_s,
        "jobs": args.jobs, "seed": args.seed, "train_epochs": args.epochs, "train_trials": args.trials,
        "supernet_epochs": args.supernet_epochs, "quarter_epochs": args.quarter_epochs,
        "supernet_trials": args.supernet_trials,
        "finetune_epochs": args.finetune_epochs, "finetune_share": args.finetune_share, "distill": args.distill,
        "runs": runs,
    }
    for name in ("supernet", "supernet-quarter", "random"):
        if name in runs:
            results[f"hypervolume_ratio_{name}_over_train"] = runs[name]["hypervolume"] / target if target else None
            tight = runs["train"]["hypervolume_tight"]
            results[f"hypervolume_tight_ratio_{name}_over_train"] = (runs[name]["hypervolume_tight"] / tight
                                                                     if tight else None)
    table = Table(title=f"search strategies (MNIST-1D, cortex-m4, 16 KB SRAM / 32 KB flash, budgets from train's "
                        f"wall time {wall:.0f} s, --jobs {args.jobs})")
    for column in ("strategy", "space", "trials (feasible)", "budget / wall s", f"hypervolume {BOX}",
                   f"hypervolume {TIGHT}", "best val / test acc", "its SRAM / flash KB", "s to train's hypervolume"):
        table.add_column(column, justify="left" if column in ("strategy", "space") else "right")
    for name, f in runs.items():
        reach = f["seconds_to_train_hypervolume"]
        table.add_row(
            name + (f" (supernet {f.get('supernet_epochs', '?')} epochs in {f['supernet_seconds']:.0f} s, "
                    f"{f['finetuned']} fine-tuned)" if "supernet_seconds" in f else ""),
            f["space"], f"{f['trials']} ({f['feasible']})", f"{f['budget_seconds']:.0f} / {f['wall_seconds']:.0f}",
            f"{f['hypervolume']:.4f}", f"{f['hypervolume_tight']:.4f}",
            f"{f['best_val_acc']:.3f} / {f['best_test_acc']:.3f}",
            f"{f['best_peak_sram'] / 1024:.1f} / {f['best_flash'] / 1024:.1f}" if f["best_trial"] is not None else "-",
            "-" if reach is None else f"{reach:.0f}",
        )
    return results, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=("samplers", "strategies"), default=["samplers", "strategies"])
    parser.add_argument("--trials", type=int, default=40, help="trained trials per search (strategies: train, random)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="samplers: the seeds of each sampler")
    parser.add_argument("--seed", type=int, default=0, help="strategies: the seed")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=1500.0,
                        help="strategies: the most wall-clock seconds train may take for its --trials")
    parser.add_argument("--epochs", type=int, default=40, help="strategies: training epochs of a train/random trial")
    parser.add_argument("--supernet-epochs", type=int, default=40,
                        help="strategies: the supernet's most training epochs (its run's time limit may cut them)")
    parser.add_argument("--quarter-epochs", type=int, default=40,
                        help="strategies: the same in the run with a quarter of train's time")
    parser.add_argument("--supernet-trials", type=int, default=150, help="strategies: most trials of the supernet run")
    parser.add_argument("--finetune-epochs", type=int, default=25, help="strategies: the supernet front's fine-tuning")
    parser.add_argument("--finetune-share", type=float, default=0.5,
                        help="strategies: the share of the budget left once the supernet is trained that is kept for "
                             "fine-tuning (the front, then the candidates behind it)")
    parser.add_argument("--distill", action="store_true",
                        help="strategies: the supernet runs fine-tune by distillation from the supernet's largest "
                             "candidate (the in-place teacher) instead of from the labels alone")
    parser.add_argument("--reuse-train", action="store_true",
                        help="strategies: take train's run from the last strategies section instead of running it")
    parser.add_argument("--space", default="cnn1d", help="strategies: the search space of train and random")
    parser.add_argument("--supernet-space", default="cnn1d-shared",
                        help="strategies: the search space of the supernet runs")
    parser.add_argument("--strategies", nargs="+", choices=tuple(STRATEGIES), default=list(STRATEGIES),
                        help="strategies: which runs (train always runs: its wall time sets the others' budgets)")
    parser.add_argument("--out", default=str(HERE / "runs"))
    args = parser.parse_args()
    out = Path(args.out)
    results_file = HERE / "results" / "search.json"
    results: dict[str, Any] = json.loads(results_file.read_text()) if results_file.is_file() else {}
    tables = []
    if "samplers" in args.sections:
        section, table = samplers(args, out)
        results.update(section)  # the section's keys stay at the top level, as before
        tables.append(table)
    if "strategies" in args.sections:
        section, table = strategies(args, out)
        results["strategies"] = section
        tables.append(table)
    write_json(results_file, results)
    for table in tables:
        console().print(table)
    if "strategies" in args.sections:
        summary = {name: {k: f[k] for k in ("hypervolume", "best_test_acc", "wall_seconds", "seconds_to_train_hypervolume")}
                   for name, f in results["strategies"]["runs"].items()}
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
