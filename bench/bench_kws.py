"""Keyword spotting (``kws-espeak``) on cortex-m4 within 64 KB SRAM / 256 KB flash, two sections (both by default):

- ``kws``: ``tinycompile search`` on the generated keyword task (a 2-D space), ``tinycompile build`` of its best model
  on cortex-m4 (bit-exact on QEMU), and a DS-CNN-shaped baseline trained on the same data with the same recipe and
  built the same way: test accuracy (float and int8), MACs, SRAM, flash, instructions and estimated cycles of each.
- ``distill``: the ``--distill`` teacher (the space's candidate with the most convolution weights under
  ``--teacher-macs``, trained once for ``--teacher-epochs``) against students taken from the ``kws`` search's Pareto
  front (one with >= 10x fewer MACs than the teacher), each trained with and without distillation on paired seeds:
  a TinyBERT-style table (student/teacher MACs and parameters, predicted cortex-m4 latency, test accuracy, accuracy
  ratio to the teacher) and whether issue 13's three bars hold.

    python bench/bench_kws.py [--sections kws distill] [--task kws-espeak] [--space cnn2d] [--trials 16]
        [--epochs 30] [--jobs 1] [--seed 0] [--teacher-epochs 40]
        [--teacher-macs 8000000] [--student-seeds 0 1] [--students 3 | --student-trials N ...]
        [--student-epochs E]

Prints a table per section and writes bench/results/kws.json (a section not run keeps its figures there, each with
its own date and command). The search is resumable: a second run reuses the finished study and its trials.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table

from tinycompile.arch import ArchSpec
from tinycompile.baselines import ds_cnn
from tinycompile.console import console
from tinycompile.cost.model import estimate
from tinycompile.fileio import write_json
from tinycompile.search.space import load_space
from tinycompile.search.teacher import teacher_logits
from tinycompile.targets import load_target
from tinycompile.tasks import Task, load_task
from tinycompile.train import train
from tinycompile.trial import load_trial, save_trial

HERE = Path(__file__).resolve().parent
TARGET = "cortex-m4"
SRAM_KB, FLASH_KB = 64.0, 256.0
STUDENT_MAC_RATIO = 10  # the small student has at least this many times fewer MACs than the teacher
KEEP = 0.97  # ... and keeps this share of the teacher's test accuracy
MARGIN = 0.01  # the teacher beats the best student by this much test accuracy


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``tinycompile`` as a user does (this checkout's package, whatever PYTHONPATH says)."""
    return subprocess.run([sys.executable, "-m", "tinycompile.cli", *args], cwd=HERE.parent, text=True,
                          capture_output=True)


def study_name(args: argparse.Namespace) -> str:
    """The benchmark's search study: its settings in the name, so other settings never resume it (more --trials
    continue it, as `tinycompile search` does)."""
    return f"kws-{args.task.replace(':', '-')}-{args.space}-s{args.seed}-e{args.epochs}"


def run_search(args: argparse.Namespace, out: Path) -> tuple[Path, float]:
    """``tinycompile search`` on the task within the budgets (resumed if it already ran); its run folder and wall s."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tinycompile.cli", "search", "--task", args.task, "--space", args.space,
         "--target", TARGET, "--sram-kb", f"{SRAM_KB:g}", "--flash-kb", f"{FLASH_KB:g}", "--trials", str(args.trials),
         "--epochs", str(args.epochs), "--seed", str(args.seed), "--jobs", str(args.jobs), "--out", str(out),
         "--study", study_name(args)],
        cwd=HERE.parent, text=True)  # its progress shows as it runs
    if proc.returncode != 0:
        raise SystemExit(f"tinycompile search failed (exit {proc.returncode})")
    return out / study_name(args), time.perf_counter() - start


def build(folder: Path, out: Path) -> dict[str, Any]:
    """``tinycompile build`` of a trial folder on cortex-m4; the figures of its report.json."""
    start = time.perf_counter()
    proc = cli("build", str(folder), "--target", TARGET, "-o", str(out))
    report_file = out / "report.json"
    if not report_file.is_file():
        raise SystemExit(f"build of {folder} wrote no report: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    r = json.loads(report_file.read_text())
    source, mem = r["graph"]["source"], r["memory"]
    cycles = r["backend"].get("estimated_cycles")
    return {
        "exit_code": proc.returncode, "bit_exact": r["bit_exact"], "inputs": r["inputs"],
        "float_test_acc": source.get("float_test_accuracy"), "int8_test_acc": source.get("int8_test_accuracy"),
        "macs": r["graph"]["macs"], "params": r["graph"]["params"],
        "instructions": round(r["latency"]["measured"]), "predicted_instructions": round(r["latency"]["predicted"]),
        "estimated_cycles": round(cycles) if cycles else None, "estimated_ms": cycles / (r["target"]["clock_mhz"] * 1e3) if cycles else None,
        "arena_bytes": mem["arena_bytes"], "scratch_bytes": mem["scratch_bytes"], "flash_bytes": mem["flash_bytes"],
        "predicted_peak_sram": mem["predicted_peak_sram"], "predicted_flash_bytes": mem["predicted_flash_bytes"],
        "build_seconds": round(time.perf_counter() - start, 1), "report": shown(report_file),
    }


def shown(path: Path) -> str:
    """``path`` relative to the checkout where it lies inside it (results name no machine's folders)."""
    path = path.resolve()
    return str(path.relative_to(HERE.parent)) if path.is_relative_to(HERE.parent) else str(path)


def cost_figures(spec: ArchSpec) -> dict[str, Any]:
    """The cost model's cortex-m4 figures of ``spec`` and whether it fits the benchmark's budgets."""
    cost = estimate(spec, load_target(TARGET))
    fits = cost.peak_sram <= SRAM_KB * 1024 and cost.flash <= FLASH_KB * 1024
    return {"macs": cost.macs, "params": cost.params, "latency_ms": cost.latency_ms, "peak_sram": cost.peak_sram,
            "flash": cost.flash, "fits_budget": fits}


def kws(args: argparse.Namespace, out: Path) -> tuple[dict[str, Any], Table]:
    """Search, build the best, train and build the DS-CNN baseline on the same data."""
    run_dir, search_seconds = run_search(args, out)
    pareto = json.loads((run_dir / "pareto.json").read_text())
    best = pareto["front"][0]  # the most accurate Pareto model (`runs/<study>/best`)
    searched = {"trial": best["trial"], "val_acc": best["val_acc"], "test_acc": best["test_acc"],
                **cost_figures(ArchSpec.load(run_dir / "best" / "spec.json")),
                "build": build(run_dir / "best", out / "kws-build" / "searched")}

    task = load_task(args.task, seed=args.seed)
    spec = ds_cnn(task.input_shape, task.num_classes, channels=args.baseline_channels)
    spec.meta.update(task=args.task, target=TARGET)
    folder = out / f"kws-baseline-{args.task.replace(':', '-')}-s{args.seed}-e{args.epochs}" / spec.meta["name"]
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():  # trained by an earlier run of the same settings
        metrics = json.loads(metrics_file.read_text())
    else:
        torch.set_num_threads(1)  # as a search worker trains: the same recipe, on one thread
        model, metrics = train(spec, task, epochs=args.epochs, seed=args.seed)
        save_trial(folder, spec, model, metrics)
    baseline = {"name": spec.meta["name"], "val_acc": metrics["val_acc"], "test_acc": metrics["test_acc"],
                "train_seconds": metrics["train_seconds"], **cost_figures(spec),
                "build": build(folder, out / "kws-build" / "baseline")}

    results = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv]), "task": args.task,
               "train_samples": len(task.x_train), "val_samples": len(task.x_val), "test_samples": len(task.x_test),
               "space": args.space, "target": TARGET, "budget": f"{SRAM_KB:g} KB SRAM, {FLASH_KB:g} KB flash",
               "trials": args.trials, "epochs": args.epochs, "jobs": args.jobs, "seed": args.seed,
               "study": shown(run_dir), "this_run_search_seconds": round(search_seconds, 1),  # 0 trials if resumed
               "search_energy": pareto.get("search_energy"), "front": len(pareto["front"]),
               "searched": searched, "baseline": baseline}
    table = Table(title=f"{args.task} on {TARGET}, {SRAM_KB:g} KB SRAM / {FLASH_KB:g} KB flash "
                        f"({args.space}, {args.trials} trials, {args.epochs} epochs)")
    for column in ("model", "val / test acc", "int8 test acc", "MACs", "params", "SRAM KB (arena)", "flash KB",
                   "instructions", "est. cycles (ms)", "bit-exact"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, m in ((f"searched (trial {searched['trial']})", searched), (f"baseline {baseline['name']}", baseline)):
        b = m["build"]
        table.add_row(name, f"{m['val_acc']:.3f} / {m['test_acc']:.3f}", f"{b['int8_test_acc']:.3f}",
                      f"{m['macs']:,}", f"{m['params']:,}",
                      f"{m['peak_sram'] / 1024:.1f} ({b['arena_bytes'] / 1024:.1f})", f"{b['flash_bytes'] / 1024:.1f}",
                      f"{b['instructions']:,}",
                      f"{b['estimated_cycles']:,} ({b['estimated_ms']:.1f})" if b["estimated_cycles"] else "-",
                      str(b["bit_exact"]))
    return results, table


def pick_students(front: list[dict[str, Any]], teacher_macs: int, count: int) -> list[dict[str, Any]]:
    """Up to ``count`` Pareto rows with fewer MACs than the teacher: the most accurate, the most accurate with >= 10x
    fewer MACs than the teacher, and the rest spread over the front by MACs (most accurate first among equals)."""
    by_acc = sorted((r for r in front if r["macs"] < teacher_macs), key=lambda r: (-r["val_acc"], r["macs"]))
    if not by_acc:
        raise SystemExit(f"no Pareto model of the search has fewer MACs than the teacher ({teacher_macs:,})")
    small = [r for r in by_acc if r["macs"] * STUDENT_MAC_RATIO <= teacher_macs]
    chosen = [by_acc[0]] + ([small[0]] if small and small[0] is not by_acc[0] else [])
    rest = sorted((r for r in by_acc if r not in chosen), key=lambda r: r["macs"])
    while rest and len(chosen) < count:  # the remaining row whose MACs are furthest (in log) from those chosen
        far = max(rest, key=lambda r: min(abs(np.log(r["macs"] / c["macs"])) for c in chosen))
        chosen.append(far)
        rest.remove(far)
    return sorted(chosen, key=lambda r: -r["macs"])


def distill(args: argparse.Namespace, out: Path) -> tuple[dict[str, Any], Table]:
    """Teacher vs students of the kws search's front, trained with and without distillation on paired seeds."""
    run_dir, _ = run_search(args, out)  # resumed: normally the kws section's finished study
    front = json.loads((run_dir / "pareto.json").read_text())["front"]
    task = load_task(args.task, seed=args.seed)
    space = load_space(args.space)
    torch.set_num_threads(1)
    folder = out / f"{study_name(args)}-distill-t{args.teacher_epochs}-m{args.teacher_macs}"
    start = time.perf_counter()
    logits = teacher_logits(space, task, folder / "teacher", args.teacher_epochs, args.seed, device="cpu",
                            max_macs=args.teacher_macs)
    teacher_spec, _, teacher_metrics = load_trial(folder / "teacher")
    teacher = {"val_acc": teacher_metrics["val_acc"], "test_acc": teacher_metrics["test_acc"],
               "max_epochs": args.teacher_epochs, "epochs": teacher_metrics["epochs"],
               "best_epoch": teacher_metrics["best_epoch"], "train_seconds": teacher_metrics["train_seconds"],
               **cost_figures(teacher_spec)}
    students = []
    epochs = args.student_epochs or args.epochs
    if args.student_trials:  # chosen by the user (trials of the search, Pareto or not)
        rows = [{"trial": n, "folder": str(run_dir / "trials" / str(n))} for n in args.student_trials]
    else:
        rows = pick_students(front, teacher["macs"], args.students)
    for row in rows:
        spec = ArchSpec.load(Path(row["folder"]) / "spec.json")
        runs = {"plain": [], "distilled": []}
        for seed in args.student_seeds:
            for kind, soft in (("plain", None), ("distilled", logits)):
                runs[kind].append(_student_run(spec, task, folder / f"trial{row['trial']}-{kind}-s{seed}-e{epochs}", epochs,
                                               seed, soft))
        figures = cost_figures(spec)
        plain = [r["test_acc"] for r in runs["plain"]]
        distilled = [r["test_acc"] for r in runs["distilled"]]
        students.append({
            "trial": row["trial"], **figures, "runs": runs,
            "plain_test_acc": float(np.mean(plain)), "distilled_test_acc": float(np.mean(distilled)),
            "paired_gain": float(np.mean(np.subtract(distilled, plain))),
            "macs_ratio": teacher["macs"] / figures["macs"], "params_ratio": teacher["params"] / figures["params"],
            "speedup": teacher["latency_ms"] / figures["latency_ms"],
            "acc_ratio": float(np.mean(distilled)) / teacher["test_acc"],
        })
    best_student = max(max(s["plain_test_acc"], s["distilled_test_acc"]) for s in students)
    # a front's most accurate model can be nearly the teacher's size: the margin over students of at most half its
    # MACs is shown beside the bar's (which counts every student)
    halves = [max(s["plain_test_acc"], s["distilled_test_acc"]) for s in students if 2 * s["macs"] <= teacher["macs"]]
    small = [s for s in students if s["macs_ratio"] >= STUDENT_MAC_RATIO]
    gains = [g for s in students for g in np.subtract([r["test_acc"] for r in s["runs"]["distilled"]],
                                                        [r["test_acc"] for r in s["runs"]["plain"]])]
    bars = {
        "teacher_beats_best_student_by_1_point": {
            "teacher": teacher["test_acc"], "best_student_mean": best_student,
            "margin": teacher["test_acc"] - best_student, "holds": teacher["test_acc"] - best_student >= MARGIN,
            "margin_over_students_of_at_most_half_its_macs": teacher["test_acc"] - max(halves) if halves else None},
        "distilled_beat_plain_on_average": {"mean_paired_gain": float(np.mean(gains)), "pairs": len(gains),
                                            "holds": float(np.mean(gains)) > 0},
        "10x_fewer_macs_keeps_97_percent": {
            "students": [s["trial"] for s in small],
            "best_acc_ratio": max((s["acc_ratio"] for s in small), default=None),
            "holds": any(s["acc_ratio"] >= KEEP for s in small)},
    }
    results = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv]), "task": args.task,
               "space": args.space, "target": TARGET, "study": shown(run_dir), "student_epochs": epochs,
               "student_seeds": args.student_seeds, "teacher": teacher, "students": students, "bars": bars,
               "wall_seconds": round(time.perf_counter() - start, 1)}
    table = Table(title=f"distillation on {args.task} ({args.space}, {TARGET}; teacher {args.teacher_epochs} epochs, "
                        f"students {epochs}, seeds {args.student_seeds})")
    for column in ("model", "MACs (teacher/x)", "params (teacher/x)", "latency ms (speedup)", "test acc plain",
                   "test acc distilled", "paired gain", "acc ratio"):
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_row("teacher", f"{teacher['macs']:,}", f"{teacher['params']:,}", f"{teacher['latency_ms']:.2f}",
                  f"{teacher['test_acc']:.3f}", "-", "-", "1.000")
    for s in students:
        table.add_row(f"trial {s['trial']}", f"{s['macs']:,} ({s['macs_ratio']:.1f}x)",
                      f"{s['params']:,} ({s['params_ratio']:.1f}x)", f"{s['latency_ms']:.2f} ({s['speedup']:.1f}x)",
                      f"{s['plain_test_acc']:.3f}", f"{s['distilled_test_acc']:.3f}", f"{s['paired_gain']:+.3f}",
                      f"{s['acc_ratio']:.3f}")
    return results, table


def _student_run(spec: ArchSpec, task: Task, folder: Path, epochs: int, seed: int,
                 soft: np.ndarray | None) -> dict[str, Any]:
    """One student's training (kept in ``folder``, so a rerun reuses it): its validation and test accuracy."""
    metrics_file = folder / "metrics.json"
    if not metrics_file.is_file():
        model, metrics = train(spec, task, epochs=epochs, seed=seed, teacher_logits=soft, device="cpu")
        save_trial(folder, spec, model, metrics)
    metrics = json.loads(metrics_file.read_text())
    return {"seed": seed, "val_acc": metrics["val_acc"], "test_acc": metrics["test_acc"], "epochs": metrics["epochs"]}


def section_key(name: str, args: argparse.Namespace) -> str:
    """The results key of a section: its name, with the options that change what it measures (chosen students,
    other student epochs), so a variant never replaces the default run's figures."""
    if name != "distill":
        return name
    key = name
    if args.student_trials:
        key += "-trials-" + "-".join(map(str, args.student_trials))
    if args.student_epochs and args.student_epochs != args.epochs:
        key += f"-e{args.student_epochs}"
    return key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=("kws", "distill"), default=["kws", "distill"])
    parser.add_argument("--task", default="kws-espeak", help="kws-espeak or kws-espeak:N (N clips per class)")
    parser.add_argument("--space", default="cnn2d", help="a 2-D search space")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every trial, the baseline and the students")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-channels", type=int, default=64, help="the DS-CNN baseline's channels")
    parser.add_argument("--teacher-epochs", type=int, default=40)
    parser.add_argument("--teacher-macs", type=int, default=8_000_000,
                        help="the teacher's MAC cap (tinycompile search --distill uses 2,000,000)")
    parser.add_argument("--student-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--students", type=int, default=3, help="students taken from the search's Pareto front")
    parser.add_argument("--student-trials", type=int, nargs="+",
                        help="these trials of the search as the students instead (results key distill-<options>)")
    parser.add_argument("--student-epochs", type=int, help="the students' epochs (default --epochs)")
    parser.add_argument("--out", default=str(HERE / "runs"))
    args = parser.parse_args()
    out = Path(args.out)
    results_file = HERE / "results" / "kws.json"
    results: dict[str, Any] = json.loads(results_file.read_text()) if results_file.is_file() else {}
    tables = []
    for name, section in (("kws", kws), ("distill", distill)):
        if name in args.sections:
            results[section_key(name, args)], table = section(args, out)
            tables.append(table)
            write_json(results_file, results)  # each section's figures as soon as it has them
    for table in tables:
        console().print(table)
    if "distill" in args.sections:
        print(json.dumps({k: v["holds"] for k, v in results[section_key("distill", args)]["bars"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
