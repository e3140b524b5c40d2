"""Keyword spotting (``kws-espeak``) on cortex-m4 within 64 KB SRAM / 256 KB flash, two sections (both by default):

- ``kws``: ``tinycompile search`` on the generated keyword task (a 2-D space), ``tinycompile build`` of its best model
  on cortex-m4 (bit-exact on QEMU), and a DS-CNN-shaped baseline trained on the same data with the same recipe and
  built the same way: test accuracy (float and int8), MACs, SRAM, flash, instructions and estimated cycles of each.
- ``distill``: a DS-CNN-shaped teacher (``--teacher-channels`` x ``--teacher-blocks``; with several
  ``--teacher-seeds``, an ensemble whose averaged logits teach) trained for ``--teacher-epochs`` with augmentation
  (:mod:`tinycompile.augment`) and label smoothing, against students with >= 10x fewer MACs, per
  ``--student-ratios`` and ``--student-families``: the space's candidate with the most convolution weights within the
  teacher's MACs / ratio, and the widest DS-CNN of the teacher's depth within it (the teacher scaled down), each
  trained with and without distillation on the same ``--views`` fixed augmented views of the training split (the
  teacher's logits computed on each) and paired seeds: a TinyBERT-style table (student/teacher MACs and parameters,
  predicted cortex-m4 latency, test accuracy, accuracy ratio to the teacher) and whether issue 13's three bars hold.

    python bench/bench_kws.py [--sections kws distill] [--task kws-espeak] [--space cnn2d] [--trials 16]
        [--epochs 30] [--jobs 1] [--seed 0] [--teacher-channels 64] [--teacher-blocks 4] [--teacher-epochs 60]
        [--teacher-seeds 0 1] [--views 8] [--student-ratios 10 20] [--student-families space ds-cnn]
        [--student-seeds 0 1 2] [--student-epochs 60]

Prints a table per section and writes bench/results/kws.json (a section not run keeps its figures there, each with
its own date and command). The search is resumable: a second run reuses the finished study and its trials.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table

from tinycompile.arch import ArchSpec
from tinycompile.augment import views as augment_views
from tinycompile.baselines import ds_cnn, widest_ds_cnn
from tinycompile.console import console
from tinycompile.cost.model import estimate
from tinycompile.fileio import write_json, write_with
from tinycompile.model import SpecNet
from tinycompile.search.space import load_space
from tinycompile.search.teacher import teacher_spec
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
TEACHER_SMOOTHING = 0.1  # label smoothing of the teacher's training: softer, more informative logits to distil
# a label-smoothed teacher's logits are already soft: a lower temperature than Hinton's 4, most weight on the teacher
# (one seed of the 221 k-MAC student on kws-espeak: 0.845 test at T 2 / 0.9 against 0.823 at T 4 / 0.5)
STUDENT_TEMPERATURE, STUDENT_DISTILL_WEIGHT = 2.0, 0.9
DEFAULT_TASK = "kws-espeak"


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


def teacher_member(spec: ArchSpec, task: Task, folder: Path, epochs: int, seed: int) -> SpecNet:
    """One of the teacher's networks, trained with augmentation and label smoothing for all ``epochs`` (kept in
    ``folder``, so a rerun reuses it)."""
    if not (folder / "metrics.json").is_file():
        torch.set_num_threads(1)
        model, metrics = train(spec, task, epochs=epochs, seed=seed, patience=epochs, augment=True,
                               label_smoothing=TEACHER_SMOOTHING, device="cpu")
        save_trial(folder, spec, model, metrics)
    return load_trial(folder)[1]


def logits_of(models: list[SpecNet], x: np.ndarray) -> np.ndarray:
    """The models' logits on ``x`` (any leading axes before ``(N, C, H, W)``), averaged: an ensemble's."""
    flat = x.reshape(-1, *x.shape[-3:])
    with torch.no_grad():
        out = np.mean([np.concatenate([m.eval()(torch.from_numpy(flat[i:i + 512])).numpy()
                                       for i in range(0, len(flat), 512)]) for m in models], axis=0)
    return out.reshape(*x.shape[:-3], -1)


def pick_students(task: Task, space_name: str, teacher_macs: int, ratios: list[float], seed: int) -> list[ArchSpec]:
    """A student of the space per ratio: the candidate with the most convolution weights (the ``--distill`` teacher's
    rule) within ``teacher_macs / ratio`` MACs; repeats dropped, largest first."""
    space = load_space(space_name)
    return _one_per_ratio(ratios, lambda cap: teacher_spec(space, task, seed, max_macs=cap), teacher_macs)


def pick_ds_cnn_students(task: Task, blocks: int, teacher_macs: int, ratios: list[float]) -> list[ArchSpec]:
    """The teacher's DS-CNN scaled down in width per ratio (the widest within ``teacher_macs / ratio``), as
    TinyBERT's students are narrower BERTs; repeats dropped, largest first."""
    return _one_per_ratio(ratios, lambda cap: widest_ds_cnn(task.input_shape, task.num_classes, cap, blocks),
                          teacher_macs)


def _one_per_ratio(ratios: list[float], pick: Callable[[int], ArchSpec | None], teacher_macs: int) -> list[ArchSpec]:
    """``pick(teacher_macs / ratio)`` per ratio, smallest ratio first, without repeats or Nones."""
    chosen: list[ArchSpec] = []
    for ratio in sorted(ratios):
        spec = pick(int(teacher_macs / ratio))
        if spec is not None and all(spec.to_dict() != c.to_dict() for c in chosen):
            chosen.append(spec)
    return chosen


def _student_job(job: tuple[ArchSpec, Path, Path, int, int, bool]) -> dict[str, Any]:
    """One student's training on the views (distilled or not; kept in its folder, so a rerun reuses it): its
    validation and test accuracy. A process-pool job, so it loads what it needs itself."""
    spec, views_file, folder, epochs, seed, distilled = job
    metrics_file = folder / "metrics.json"
    if not metrics_file.is_file():
        torch.set_num_threads(1)
        data = np.load(views_file)
        task = Task("views", data["x_train"], data["y_train"], data["x_val"], data["y_val"], data["x_test"],
                    data["y_test"], int(data["classes"]), 0.0, 1.0)
        model, metrics = train(spec, task, epochs=epochs, seed=seed, patience=epochs, train_views=data["views"],
                               teacher_logits=data["logits"] if distilled else None, device="cpu",
                               temperature=STUDENT_TEMPERATURE, distill_weight=STUDENT_DISTILL_WEIGHT)
        save_trial(folder, spec, model, metrics)
    metrics = json.loads(metrics_file.read_text())
    return {"seed": seed, "val_acc": metrics["val_acc"], "test_acc": metrics["test_acc"], "epochs": metrics["epochs"]}


def distill(args: argparse.Namespace, out: Path) -> tuple[dict[str, Any], Table]:
    """A DS-CNN-class teacher (an ensemble when several seeds) trained long with augmentation, against students of
    the space with >= 10x fewer MACs, each trained with and without distillation on the same augmented views and
    paired seeds."""
    task = load_task(args.task, seed=args.seed)
    start = time.perf_counter()
    folder = out / f"distill-{args.task.replace(':', '-')}-s{args.seed}"
    tspec = ds_cnn(task.input_shape, task.num_classes, channels=args.teacher_channels, blocks=args.teacher_blocks)
    tspec.meta.update(task=args.task, target=TARGET)
    tname = f"{tspec.meta['name']}-e{args.teacher_epochs}"
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        members = list(pool.map(_teacher_job, [(tspec, args.task, args.seed, folder / f"teacher-{tname}-s{s}",
                                                args.teacher_epochs, s) for s in args.teacher_seeds]))
    member_acc = [json.loads((folder / f"teacher-{tname}-s{s}" / "metrics.json").read_text())["test_acc"]
                  for s in args.teacher_seeds]
    teacher = {"name": tspec.meta["name"], "members": len(members), "epochs": args.teacher_epochs,
               "label_smoothing": TEACHER_SMOOTHING, "augmented": True, "member_test_acc": member_acc,
               "test_acc": float((logits_of(members, task.x_test).argmax(1) == task.y_test).mean()),
               "val_acc": float((logits_of(members, task.x_val).argmax(1) == task.y_val).mean()),
               **cost_figures(tspec)}
    # the ensemble's compute is every member's: its MACs, parameters and latency are the sums
    for key in ("macs", "params", "latency_ms"):
        teacher[key] *= len(members)
    views = augment_views(task.x_train, args.views, args.seed)
    views_file = folder / f"views-{tname}-x{len(members)}-k{args.views}.npz"
    if not views_file.is_file():
        write_with(views_file, lambda tmp: savez(tmp, views=views, logits=logits_of(members, views),
                                                    x_train=task.x_train, y_train=task.y_train, x_val=task.x_val,
                                                    y_val=task.y_val, x_test=task.x_test, y_test=task.y_test,
                                                    classes=task.num_classes))
    specs = []
    if "space" in args.student_families:
        specs += pick_students(task, args.space, teacher["macs"], args.student_ratios, args.seed)
    if "ds-cnn" in args.student_families:
        specs += pick_ds_cnn_students(task, args.teacher_blocks, teacher["macs"], args.student_ratios)
    epochs = args.student_epochs
    jobs = [(spec, views_file, folder / f"student-{i}-{'distilled' if d else 'plain'}-s{seed}-e{epochs}-k{args.views}",
             epochs, seed, d) for seed in args.student_seeds for i, spec in enumerate(specs) for d in (False, True)]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        done = list(pool.map(_student_job, jobs))
    students = []
    for i, spec in enumerate(specs):
        runs = {"plain": [r for j, r in zip(jobs, done) if j[0] is spec and not j[5]],
                "distilled": [r for j, r in zip(jobs, done) if j[0] is spec and j[5]]}
        figures = cost_figures(spec)
        plain = [r["test_acc"] for r in runs["plain"]]
        distilled = [r["test_acc"] for r in runs["distilled"]]
        students.append({
            "student": i, "family": "ds-cnn" if spec.meta.get("name", "").startswith("ds-cnn") else args.space,
            "layers": describe(spec), "spec": spec.to_dict(), **figures, "runs": runs,
            "plain_test_acc": float(np.mean(plain)), "distilled_test_acc": float(np.mean(distilled)),
            "paired_gain": float(np.mean(np.subtract(distilled, plain))),
            "macs_ratio": teacher["macs"] / figures["macs"], "params_ratio": teacher["params"] / figures["params"],
            "speedup": teacher["latency_ms"] / figures["latency_ms"],
            "acc_ratio": float(np.mean(distilled)) / teacher["test_acc"],
        })
    best_student = max(max(s["plain_test_acc"], s["distilled_test_acc"]) for s in students)
    small = [s for s in students if s["macs_ratio"] >= STUDENT_MAC_RATIO]
    gains = [g for s in students for g in np.subtract([r["test_acc"] for r in s["runs"]["distilled"]],
                                                        [r["test_acc"] for r in s["runs"]["plain"]])]
    bars = {
        "teacher_beats_best_student_by_1_point": {
            "teacher": teacher["test_acc"], "best_student_mean": best_student,
            "margin": teacher["test_acc"] - best_student, "holds": teacher["test_acc"] - best_student >= MARGIN},
        "distilled_beat_plain_on_average": {"mean_paired_gain": float(np.mean(gains)), "pairs": len(gains),
                                            "holds": float(np.mean(gains)) > 0},
        "10x_fewer_macs_keeps_97_percent": {
            "students": [s["student"] for s in small],
            "best_acc_ratio": max((s["acc_ratio"] for s in small), default=None),
            "holds": any(s["acc_ratio"] >= KEEP for s in small)},
    }
    results = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", *sys.argv]), "task": args.task,
               "space": args.space, "target": TARGET, "student_epochs": epochs, "views": args.views,
               "student_seeds": args.student_seeds, "temperature": STUDENT_TEMPERATURE,
               "distill_weight": STUDENT_DISTILL_WEIGHT, "teacher": teacher, "students": students, "bars": bars,
               "wall_seconds": round(time.perf_counter() - start, 1)}
    table = Table(title=f"distillation on {args.task} (teacher {tname} x{len(members)}; {args.space} students "
                        f"{epochs} epochs on {args.views} views, seeds {args.student_seeds})")
    for column in ("model", "MACs (teacher/x)", "params (teacher/x)", "latency ms (speedup)", "test acc plain",
                   "test acc distilled", "paired gain", "acc ratio"):
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_row(f"teacher {tname} x{len(members)}", f"{teacher['macs']:,}", f"{teacher['params']:,}",
                  f"{teacher['latency_ms']:.2f}", f"{teacher['test_acc']:.3f}", "-", "-", "1.000")
    for s in students:
        table.add_row(f"student {s['student']} ({s['family']})", f"{s['macs']:,} ({s['macs_ratio']:.1f}x)",
                      f"{s['params']:,} ({s['params_ratio']:.1f}x)", f"{s['latency_ms']:.2f} ({s['speedup']:.1f}x)",
                      f"{s['plain_test_acc']:.3f}", f"{s['distilled_test_acc']:.3f}", f"{s['paired_gain']:+.3f}",
                      f"{s['acc_ratio']:.3f}")
    return results, table


def _teacher_job(job: tuple[ArchSpec, str, int, Path, int, int]) -> SpecNet:
    """A process-pool job: one teacher member (loads the cached task itself)."""
    spec, task_name, task_seed, folder, epochs, seed = job
    return teacher_member(spec, load_task(task_name, seed=task_seed), folder, epochs, seed)


def savez(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` to exactly ``path`` (given a bare path, numpy would append ".npz" to it)."""
    with path.open("wb") as f:
        np.savez(f, **arrays)


def describe(spec: ArchSpec) -> str:
    """A one-line summary of a network's layers (op, channels, kernel, stride)."""
    parts = []
    for layer in spec.layers:
        text = layer.op
        if layer.op in ("conv", "dense"):
            text += f" {layer.channels}"
        if layer.op in ("conv", "dwconv") and tuple(layer.kernel) != (1, 1):
            text += f" {layer.kernel[0]}x{layer.kernel[1]}"
        if tuple(layer.stride) != (1, 1):  # a 1-D network strides along W alone: (1, s)
            a, b = layer.stride
            text += f" s{a}" if a == b else f" s{a}x{b}"
        parts.append(text)
    return ", ".join(parts)


def section_key(name: str, args: argparse.Namespace) -> str:
    """The results key of a section: its name, with the options that change what it measures (chosen students,
    other student epochs), so a variant never replaces the default run's figures."""
    if name != "distill" or args.task == DEFAULT_TASK:
        return name
    return f"{name}-{args.task.replace(':', '-')}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=("kws", "distill"), default=["kws", "distill"])
    parser.add_argument("--task", default=DEFAULT_TASK,
                        help="kws-espeak or kws-espeak:N (N clips per class); distill also takes other tasks")
    parser.add_argument("--space", default="cnn2d", help="a 2-D search space")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every trial, the baseline and the students")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-channels", type=int, default=64, help="the DS-CNN baseline's channels")
    parser.add_argument("--teacher-channels", type=int, default=64, help="the DS-CNN teacher's channels")
    parser.add_argument("--teacher-blocks", type=int, default=4, help="the DS-CNN teacher's separable blocks")
    parser.add_argument("--teacher-epochs", type=int, default=60)
    parser.add_argument("--teacher-seeds", type=int, nargs="+", default=[0, 1],
                        help="one teacher network per seed; several make an ensemble (averaged logits)")
    parser.add_argument("--views", type=int, default=8, help="fixed augmented views the students train on")
    parser.add_argument("--student-ratios", type=float, nargs="+", default=[10, 20],
                        help="a student of the space within the teacher's MACs / ratio, per ratio")
    parser.add_argument("--student-families", nargs="+", choices=("space", "ds-cnn"), default=["space", "ds-cnn"],
                        help="students of the space, and/or the teacher's DS-CNN scaled down in width")
    parser.add_argument("--student-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--student-epochs", type=int, default=60)
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
