"""``search --strategy supernet``: one supernet per run trained once, trials scored with inherited weights, the Pareto
front fine-tuned.

1. :func:`ensure_supernet`: while the workers start up (they wait for it), the run's supernet (:mod:`tinycompile.search.supernet`) is
   trained with the sandwich rule (each step: the largest candidate that fits the run's budgets, the smallest and two
   random candidates that fit them, their gradients summed; in-place distillation: the largest learns from the
   labels, the others from the labels and the largest's soft outputs) and cached in ``<run>/supernet/`` (weights, then ``supernet.json`` with the key of the task, space,
   seed and epochs it was trained for, written last). A resumed run finds it and does not train it again.
2. :class:`Inheritance`: a trial copies its candidate's weights out of the supernet into a standalone SpecNet,
   recomputes its batch-norm statistics on a few training batches, and is scored on the validation split. Its trial
   folder holds those inherited weights (``metrics.json``: ``"weights": "inherited"``).
3. :func:`finetune_front`: after the search, only the Pareto candidates are trained a few epochs from their inherited
   weights (with ``--distill``, against the supernet's largest candidate), by the workers side by side and then by
   the search process for any left; under a deadline, then the candidates behind them and, in the last stretch, a
   second pass over the front of the fine-tuned scores (:mod:`.finetune_plan`). Their
   folders then hold the fine-tuned weights, which the study also stores (user attr ``finetuned:<trial>``) for other
   machines.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.artifacts import upload_artifact
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from torch import nn

from tinycompile.cost.model import estimate
from tinycompile.device import resolve_device
from tinycompile.errors import UserError
from tinycompile.fileio import atomic_folder, folder_lock, write_json, write_with
from tinycompile.search.config import Prepared
from tinycompile.search.finetune_plan import (MIN_FIT, epoch_seconds, epochs_within, finetune_order,
                                              next_candidate, second_pass_seconds)
from tinycompile.search.pareto import finetuned_front, pareto_front, ranked
from tinycompile.search.records import FINETUNED, FOLDER, INFO, WEIGHTS, all_finetuned, finetuned
from tinycompile.search.supernet import Subnet, Supernet, recalibrate_bn
from tinycompile.tasks import Task, at_resolution
from tinycompile.train import evaluate, train
from tinycompile.trial import load_trial, save_trial

FORMAT = 2  # of the cached supernet; part of its key (2: the sandwich's largest fits the budgets)
BATCH_SIZE = 64
LR, WEIGHT_DECAY = 0.01, 1e-4  # as train.py's, with the same one-cycle schedule
DISTILL_WEIGHT, TEMPERATURE = 0.5, 1.0  # the smaller candidates' loss: (1 - w) * labels + w * the largest's outputs
GRAD_CLIP = 5.0
RANDOM_PER_STEP = 2
POLL_SECONDS = 0.5
POOL_SIZE, POOL_DRAWS = 500, 3000  # candidates within the budgets that the sandwich's random ones are drawn from, and
# the most random ones tried to find them (a few seconds of the cost model at worst)
REPLAN_AT = (3, 5, 9)  # epochs at whose start a time limit's supernet plans its epochs again, from the last one's time
RECALIBRATION_SAMPLES = 1024  # training samples that batch-norm statistics are recomputed on (a fixed subset)
FINETUNE_LR = 0.01  # as training from scratch: inherited weights are a start, not a near-optimum (0.003 fell behind)


def supernet_key(prepared: Prepared) -> str:
    """What the cached supernet must have been trained for: the task (name, shapes, its training data), the space (its
    family, input and every choice), the seed, the epochs (the most, under a time limit: a resumed run reuses the
    supernet it trained), and the target and budgets its random candidates fit."""
    task, space, config = prepared.task, prepared.space, prepared.config
    data = hashlib.sha256(np.ascontiguousarray(task.x_train).tobytes() + task.y_train.tobytes()).hexdigest()
    material = {
        "format": FORMAT,
        "task": [task.name, list(task.input_shape), task.num_classes, data],
        "space": [space.family, space.input, {k: list(v) for k, v in space.choices.items()}],
        "seed": config.seed,
        "epochs": config.epochs,
        # the random candidates it trained on were drawn within the budgets, on this target's cost model
        "budgets": [prepared.target.name, prepared.sram_bytes, prepared.flash_bytes, prepared.latency_ms],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


def supernet_dir(prepared: Prepared) -> Path:
    """The run's supernet folder."""
    return prepared.config.run_dir / FOLDER


def new_supernet(prepared: Prepared) -> Supernet:
    """The (untrained) supernet of the run's space and task, initialised from the run's seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(prepared.config.seed)
        return Supernet(prepared.space, prepared.task.input_shape, prepared.task.num_classes)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock``: the first process trains, the others wait and reuse its result."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_info(prepared: Prepared) -> dict[str, Any] | None:
    """``supernet.json`` of a complete cached supernet, or None; UserError if it was trained for something else."""
    folder = supernet_dir(prepared)
    info_file = folder / INFO
    if not info_file.is_file() or not (folder / WEIGHTS).is_file():
        return None
    try:
        info = json.loads(info_file.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{info_file}: not readable JSON ({type(exc).__name__}: {exc}); delete {folder} to train the "
                        "supernet again") from None
    key = supernet_key(prepared)
    if not isinstance(info, dict) or info.get("key") != key:
        raise UserError(f"{folder} holds a supernet trained for another task, space, seed or epochs (key "
                        f"{info.get('key') if isinstance(info, dict) else None}, this run needs {key}); delete it to "
                        "train it again, or use another --study")
    return info


def ensure_supernet(prepared: Prepared, console: Console, seconds: float | None = None) -> dict[str, Any]:
    """The run's supernet: reused from ``<run>/supernet/`` when it was trained for this task, space, seed and epochs,
    else trained now (progress per epoch on ``console``), for ``--epochs`` or the fewer that fit in ``seconds``;
    returns its ``supernet.json``."""
    folder = supernet_dir(prepared)
    with _locked(folder):
        info = read_info(prepared)
        if info is not None:
            console.print(f"reusing the supernet in {folder} (trained {info['trained_at']}, {info['epochs']} epochs, "
                          f"largest candidate val acc {info['largest']['val_acc']:.3f})")
            return info
        config = prepared.config
        net = new_supernet(prepared)
        params = sum(p.numel() for p in net.parameters())
        within = f" at most, as many as end within {seconds:.0f} s" if seconds is not None else ""
        console.print(f"training the supernet of {prepared.space.name} on {prepared.task.name}: {config.epochs} epochs"
                      f"{within}, {params:,} shared parameters, sandwich rule (largest + smallest + {RANDOM_PER_STEP} "
                      "random per step)")
        columns = (TextColumn("[bold]supernet"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
                   TextColumn("largest val {task.fields[largest]}"), TextColumn("smallest val {task.fields[smallest]}"),
                   TimeElapsedColumn())
        with _threads(), Progress(*columns, console=console, transient=False) as progress:
            bar = progress.add_task("supernet", total=config.epochs, largest="-", smallest="-")

            def on_epoch(epoch: int, figures: dict[str, Any]) -> None:
                progress.update(bar, completed=epoch, total=figures["of"], largest=f"{figures['largest_val_acc']:.3f}",
                                smallest=f"{figures['smallest_val_acc']:.3f}")

            metrics = train_supernet(net, prepared.task, epochs=config.epochs, seed=config.seed, device=config.device,
                                     on_epoch=on_epoch, fits=lambda sub: fits_budgets(prepared, sub), seconds=seconds)
        write_with(folder / WEIGHTS, lambda tmp: torch.save(net.state_dict(), tmp))
        info = {"key": supernet_key(prepared), "task": prepared.task.name, "space": prepared.space.name,
                "seed": config.seed, "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "parameters": params,
                "shapes": {k: list(v) for k, v in net.shapes.items()}, **metrics}
        write_json(folder / INFO, info)  # last: its presence marks a complete supernet
        return info


def enqueue_sandwich(study: optuna.Study, info: dict[str, Any]) -> None:
    """Queue the two candidates the supernet trained at every step (``info``: its ``supernet.json``) as trials, once:
    the sandwich's smallest is the space's fastest network, which NSGA-II's first generations may not reach (a
    150-trial run's fastest scored candidate cost 0.28 ms on cortex-m4 against the smallest's 0.14 ms, and the strip
    below a front's fastest model is the largest area it leaves in a hypervolume box); its largest is the best
    network within the budgets that the supernet holds."""
    for end in ("smallest", "largest"):
        study.enqueue_trial(info[end]["choices"], skip_if_exists=True)


def wait_for_supernet(prepared: Prepared, deadline: float | None = None) -> bool:
    """Block until the run's supernet is trained (True; a worker starts while the search process trains it) or
    ``deadline`` passes (False). A worker whose search process died is killed with it (study._die_with_parent)."""
    while True:
        try:
            if read_info(prepared) is not None:
                return True
        except UserError:  # a supernet of another run: the search process says so, in one line
            return False
        if deadline is not None and time.time() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def _threads() -> Iterator[None]:
    """One torch thread for a block, as each search worker has: on a busy 2-core machine two spinning intra-op threads
    made the supernet's epochs 4x slower than one (161 s for 8 epochs against about 40 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_supernet(prepared: Prepared) -> tuple[Supernet, dict[str, Any]]:
    """The run's trained supernet (on the CPU, eval mode) and its ``supernet.json``; UserError if it is missing."""
    info = read_info(prepared)
    folder = supernet_dir(prepared)
    if info is None:
        raise UserError(f"{folder}: no trained supernet; run `tinycompile search ... --strategy supernet` to train it")
    net = new_supernet(prepared)
    try:
        net.load_state_dict(torch.load(folder / WEIGHTS, weights_only=True, map_location="cpu"))
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a truncated or foreign file
        raise UserError(f"{folder / WEIGHTS}: not this run's supernet ({type(exc).__name__}); delete {folder} to train "
                        "it again") from None
    return net.eval(), info


def _resolutions(net: Supernet) -> list[int | None]:
    values = net.space.choices.get("net.resolution")
    return list(values) if values else [None]


def calibration_indices(task: Task, seed: int) -> np.ndarray:
    """The fixed subset of training samples that every candidate's batch-norm statistics are recomputed on."""
    order = np.random.default_rng(seed).permutation(len(task.x_train))
    return np.sort(order[:RECALIBRATION_SAMPLES])


def subnet_accuracy(net: Supernet, sub: Subnet, task: Task, seed: int) -> tuple[nn.Module, float, bool]:
    """Candidate ``sub`` extracted from ``net``, its batch norm recalibrated, and its validation accuracy (``task``
    at the candidate's resolution); also whether it had batch norm to recalibrate."""
    model = net.extract(sub)
    recalibrated = recalibrate_bn(model, task.x_train[calibration_indices(task, seed)])
    return model, evaluate(model, task.x_val, task.y_val), recalibrated


def fits_budgets(prepared: Prepared, sub: Subnet) -> bool:
    """Whether a candidate fits the run's hard budgets (the cost model's figures): one the search would score."""
    return all(v <= 0 for v in prepared.constraints(estimate(sub.spec, prepared.target)).values())


def fitting_pool(net: Supernet, fits: Callable[[Subnet], bool], rng: random.Random) -> list[Subnet]:
    """Up to ``POOL_SIZE`` random candidates that ``fits`` accepts (of at most ``POOL_DRAWS``): the sandwich's
    random candidates are drawn from them, so that no training step waits for the cost model."""
    pool: list[Subnet] = []
    for _ in range(POOL_DRAWS):
        sub = net.random_subnet(rng)
        if fits(sub):
            pool.append(sub)
            if len(pool) == POOL_SIZE:
                break
    return pool


def largest_fitting(net: Supernet, fits: Callable[[Subnet], bool], pool: list[Subnet]) -> Subnet:
    """The candidate with the most MACs that ``fits`` accepts, as far as a cheap search finds it: the space's largest
    if it fits, else the largest of ``pool`` grown one choice at a time while it still fits."""
    largest = net.largest()
    if fits(largest) or not pool:  # nothing fits (prepare refuses such budgets): the space's largest, as before
        return largest
    best = max(pool, key=_macs)
    improved = True
    while improved:  # hill-climb: any single change that adds MACs and still fits
        improved = False
        for key, values in net.space.parameters().items():
            for value in values:
                if value == best.choices[key]:
                    continue
                sub = net.subnet({**best.choices, key: value})
                if _macs(sub) > _macs(best) and fits(sub):
                    best, improved = sub, True
    return best


def _macs(sub: Subnet) -> int:
    return sum(sub.spec.macs())


def train_supernet(net: Supernet, task: Task, *, epochs: int, seed: int, device: str = "auto",
                   on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
                   fits: Callable[[Subnet], bool] | None = None, seconds: float | None = None) -> dict[str, Any]:
    """Train ``net`` on ``task`` for ``epochs`` (or the fewer that end within ``seconds``) with the sandwich rule and
    in-place distillation; leave it on the CPU in eval mode; return the figures (the largest and smallest candidates'
    validation accuracy after each epoch)."""
    return _Sandwich(net, task, seed=seed, device=device, fits=fits).train(epochs, on_epoch, seconds)


class _Sandwich:
    """The sandwich rule's training of a supernet: at each step the largest candidate learns from the labels, the
    smallest and RANDOM_PER_STEP random ones from the labels and the largest's soft outputs, their gradients summed.

    ``fits``: the run's budgets. The random candidates of each step are drawn among those it accepts, and the
    sandwich's largest (the teacher of the others) is the largest candidate it accepts (:func:`largest_fitting`):
    the shared weights serve the candidates the search will score (as MCUNet draws within its constraints), and an
    epoch costs what the largest feasible candidate costs, not the space's largest (on MNIST-1D within 16 KB / 32 KB:
    0.4 M MACs instead of 3 M)."""

    def __init__(self, net: Supernet, task: Task, *, seed: int, device: str = "auto",
                 fits: Callable[[Subnet], bool] | None = None) -> None:
        self.net, self.seed = net, seed
        self.dev = torch.device(resolve_device(device))
        self.pick = random.Random(seed)
        self.views = {r: at_resolution(task, r) for r in _resolutions(net)}
        self.x_train = {r: torch.from_numpy(v.x_train).to(self.dev) for r, v in self.views.items()}
        self.y_train = torch.from_numpy(task.y_train).to(self.dev)
        self.pool = fitting_pool(net, fits, self.pick) if fits else []
        self.largest = largest_fitting(net, fits, self.pool) if fits else net.largest()
        self.smallest = net.smallest()
        self.steps = -(-len(task.x_train) // BATCH_SIZE)

    def _step(self, idx: torch.Tensor) -> None:
        """Sum the sandwich's gradients for the batch ``idx`` into the supernet's."""
        net, y = self.net, self.y_train[idx]
        logits = net(self.x_train[self.largest.spec.meta.get("resolution")][idx], self.largest)
        nn.functional.cross_entropy(logits, y).backward()
        soft = torch.softmax(logits.detach() / TEMPERATURE, dim=1)
        randoms = [self.pick.choice(self.pool) if self.pool else net.random_subnet(self.pick)
                   for _ in range(RANDOM_PER_STEP)]
        for sub in (self.smallest, *randoms):
            out = net(self.x_train[sub.spec.meta.get("resolution")][idx], sub)
            kd = nn.functional.kl_div(nn.functional.log_softmax(out / TEMPERATURE, dim=1), soft,
                                      reduction="batchmean") * TEMPERATURE**2
            ((1 - DISTILL_WEIGHT) * nn.functional.cross_entropy(out, y) + DISTILL_WEIGHT * kd).backward()

    def train(self, epochs: int, on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
              seconds: float | None = None) -> dict[str, Any]:
        """Train for ``epochs``, or the fewer that end within ``seconds``; leave the supernet on the CPU in eval mode;
        return the figures.

        Under ``seconds`` the one-cycle schedule is planned for ``epochs`` and planned again at the start of the
        epochs in REPLAN_AT, for as many as then fit at the last epoch's speed (``epochs`` at most), continuing from
        where the epochs done brought it: the search's workers start up beside the supernet, and made its first
        epochs up to twice as slow as the later ones (timed before the start, 2.4x)."""
        net, dev = self.net, self.dev
        torch.manual_seed(self.seed)
        order_rng = np.random.default_rng(self.seed)
        net.to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

        def one_cycle(n: int) -> torch.optim.lr_scheduler.OneCycleLR:  # the schedule over n epochs
            return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=n * self.steps)

        sched = one_cycle(epochs)
        history: list[dict[str, Any]] = []
        start = time.perf_counter()
        most, epoch = epochs, 0
        while epoch < epochs:
            epoch += 1
            if seconds is not None and epoch in REPLAN_AT:
                elapsed = history[-1]["seconds"]
                last = max(elapsed - history[-2]["seconds"], 1e-3)
                fit = max(epoch, min(most, epoch - 1 + int((seconds - elapsed) / last)))
                if fit != epochs:
                    epochs = fit
                    sched = one_cycle(epochs)
                    for _ in range((epoch - 1) * self.steps):  # where the epochs done have brought the schedule
                        sched.step()
            net.train()
            order = torch.from_numpy(order_rng.permutation(len(self.y_train))).to(dev)
            for i in range(0, len(order), BATCH_SIZE):
                opt.zero_grad(set_to_none=True)
                self._step(order[i:i + BATCH_SIZE])
                nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP)
                opt.step()
                sched.step()
            net.cpu().eval()
            figures = {"epoch": epoch, "of": epochs, "seconds": round(time.perf_counter() - start, 2)}
            for name, sub in (("largest", self.largest), ("smallest", self.smallest)):
                view = self.views[sub.spec.meta.get("resolution")]
                figures[f"{name}_val_acc"] = subnet_accuracy(net, sub, view, self.seed)[1]
            history.append(figures)
            if on_epoch:
                on_epoch(epoch, figures)
            net.to(dev)
        net.cpu().eval()
        last = history[-1]
        return {
            "epochs": epochs,
            "train_seconds": round(time.perf_counter() - start, 2),
            "device": dev.type,
            "largest": _end(self.largest, last["largest_val_acc"]),
            "smallest": _end(self.smallest, last["smallest_val_acc"]),
            "history": history,
        }


def _end(sub: Subnet, val_acc: float) -> dict[str, Any]:
    """One end of the sandwich as ``supernet.json`` records it."""
    return {"choices": sub.choices, "val_acc": val_acc, "params": sub.spec.params(), "macs": sum(sub.spec.macs())}


class Inheritance:
    """Scores candidates with weights inherited from the run's supernet (one per worker, loaded at first use)."""

    def __init__(self, prepared: Prepared) -> None:
        self.p = prepared
        self._net: Supernet | None = None
        self._key = ""
        self._views: dict[int | None, Task] = {}

    def net(self) -> Supernet:
        """The run's supernet."""
        if self._net is None:
            self._net, info = load_supernet(self.p)
            self._key = info["key"]
        return self._net

    def view(self, resolution: int | None) -> Task:
        """The task at a candidate's resolution (resized once per worker)."""
        if resolution not in self._views:
            self._views[resolution] = at_resolution(self.p.task, resolution)
        return self._views[resolution]

    def score(self, sub: Subnet) -> tuple[nn.Module, dict[str, Any]]:
        """Candidate ``sub`` with its inherited weights and BN statistics recomputed, and its metrics (validation and
        test accuracy of those weights; no training)."""
        start = time.perf_counter()
        net = self.net()
        task = self.view(sub.spec.meta.get("resolution"))
        model, val_acc, recalibrated = subnet_accuracy(net, sub, task, self.p.config.seed)
        return model, {
            "val_acc": val_acc,
            "test_acc": evaluate(model, task.x_test, task.y_test),
            "weights": "inherited",
            "supernet": self._key,
            "bn_recalibrated": recalibrated,  # False: the network has no batch norm (an MLP)
            "recalibration_samples": int(min(RECALIBRATION_SAMPLES, len(task.x_train))) if recalibrated else 0,
            "inherit_seconds": round(time.perf_counter() - start, 3),
            "device": "cpu",
        }


def teacher_logits(prepared: Prepared, console: Console) -> np.ndarray:
    """``--distill`` with a supernet: the teacher is the supernet's largest candidate (trained at every step, from the
    labels, and the source of the in-place distillation), its batch norm recalibrated; saved as a trial folder in
    ``<run>/teacher`` with its logits on the training split (made once, then read)."""
    folder = prepared.config.run_dir / "teacher"
    logits_file = folder / "logits.npy"
    with _locked(folder):
        if not logits_file.exists():
            if read_info(prepared) is None:
                ensure_supernet(prepared, console)
            net, info = load_supernet(prepared)
            sub = net.subnet(info["largest"]["choices"])  # the sandwich's largest: the largest that fits
            sub.spec.meta.update(task=prepared.config.task, target=prepared.target.name)
            task = at_resolution(prepared.task, sub.spec.meta.get("resolution"))
            model, val_acc, _ = subnet_accuracy(net, sub, task, prepared.config.seed)
            metrics = {"val_acc": val_acc, "test_acc": evaluate(model, task.x_test, task.y_test),
                       "source": "the supernet's largest candidate (sandwich rule, in-place distillation)",
                       "supernet": info["key"], "epochs": info["epochs"], "params": sub.spec.params(),
                       "macs": sum(sub.spec.macs())}
            with torch.no_grad():
                logits = model(torch.from_numpy(task.x_train)).numpy()
            save_trial(folder, sub.spec, model, metrics)

            def save(tmp: Path) -> None:
                with tmp.open("wb") as f:
                    np.save(f, logits)

            write_with(logits_file, save)
    return np.load(logits_file)


def finetune_teacher(prepared: Prepared, console: Console) -> np.ndarray | None:
    """``--distill``: the fine-tuning teacher's logits (:func:`teacher_logits`); None without ``--distill`` or when
    ``--time-limit`` cut the supernet's training short (said on ``console``). Such a teacher is weaker than fine-tuning
    from the labels alone: on MNIST-1D, a supernet trained 16 of 40 epochs (its largest candidate 0.952 val acc) left
    17 fine-tunings (11 candidates, 12-25 epochs) 0.8 points of validation accuracy below the labels alone on average
    (13 lower, 1 even), while after all 40 epochs (0.980) it lifted 12 by 0.3 points (9 higher, 1 even)."""
    if not prepared.config.distill:
        return None
    info = read_info(prepared)  # None: teacher_logits trains it, for all its epochs
    if info is not None and info["epochs"] < prepared.config.epochs:
        console.print(f"not distilling: the time limit cut the supernet's training to {info['epochs']} of "
                      f"{prepared.config.epochs} epochs, and its largest candidate (val acc "
                      f"{info['largest']['val_acc']:.3f}) would teach worse than the labels alone")
        return None
    return teacher_logits(prepared, console)


def finetune_front(study: optuna.Study, prepared: Prepared, console: Console, deadline: float | None = None,
                   cost_limit: float | None = None) -> int:
    """Fine-tune the Pareto candidates not fine-tuned yet that no other process is fine-tuning; with a ``deadline``
    (a ``time.time()``), the candidates behind the front too, in the order of :mod:`.finetune_plan` (the most
    predicted gain per second once a few are tuned), each for the epochs that still end before it, and in the time
    kept for it a second pass over the front of the fine-tuned scores; return how many fine-tunings ran here. Under a
    deadline, candidates that cost more than ``cost_limit`` (the costs that matter to the caller) are not tuned.

    Every search worker calls this once the trials are done, and the search process once the workers have stopped:
    each candidate is claimed by a lock held while it is fine-tuned, so the workers share the candidates between them
    (on two workers, twice the candidates in the same time) and the search process finishes what a dead worker left."""
    trials = study.get_trials(deepcopy=False)
    front = {t.number for t in pareto_front(trials)}  # of the inherited scores
    records = all_finetuned(study)
    todo = [t for t in finetune_order(trials, beyond_front=deadline is not None) if t.number not in records
            and (deadline is None or _within(t, cost_limit))]
    if not todo and (deadline is None or not records):  # nothing to tune once, nor to tune twice
        return 0
    tuner = _Tuner(study, trials, prepared, console, deadline, cost_limit)
    behind = sum(1 for t in todo if t.number not in front)
    if todo:
        console.print(f"fine-tuning {len(todo) - behind} Pareto candidate(s) from their inherited weights: "
                      f"{tuner.wanted} epoch(s) each{tuner.distilled}" + (
                          f"; and, by latency strata and then the most gain expected per second, up to {behind} "
                          "behind the front until the time kept for a second pass over the best" if behind else ""))
    done = 0
    with _threads(), Progress(*_COLUMNS, console=console, transient=False) as progress:
        bar = progress.add_task("fine-tune", total=len(todo), trial="-")
        for i in range(len(todo)):
            records = tuner.records()  # one read serves the choice, the second pass's time and the epochs
            trial = tuner.pick(todo, records)
            todo.remove(trial)
            if trial.number not in front and tuner.second_pass_due(records):
                break
            done += tuner.tune(trial, 0, progress, bar, records)
            progress.update(bar, completed=i + 1)
            if tuner.past_deadline():
                break
        if deadline is not None:
            done += tuner.second_pass(progress)
    untouched = len(front - set(all_finetuned(study)))
    if deadline is not None and untouched:
        console.print(f"stopped at the deadline: {untouched} of {len(front)} Pareto candidates not fine-tuned")
    return done


_COLUMNS = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("trial {task.fields[trial]}"), TimeElapsedColumn())


class _Tuner:
    """One process's share of a run's fine-tuning: claims, epochs under the deadline, the two passes."""

    def __init__(self, study: optuna.Study, trials: list[optuna.trial.FrozenTrial], prepared: Prepared,
                 console: Console, deadline: float | None, cost_limit: float | None = None) -> None:
        from tinycompile.search.artifacts import DatabaseArtifactStore

        # the trials are done when fine-tuning starts: read once; only the fine-tuned records change from here on
        self.study, self.trials, self.prepared, self.deadline = study, trials, prepared, deadline
        self.cost_limit = cost_limit
        self.feasible = [t for rank in ranked(trials) for t in rank]
        self.macs = {t.number: int(t.user_attrs.get("macs", 0)) for t in trials}
        self.wanted = prepared.config.finetune_epochs_used
        self.teacher = finetune_teacher(prepared, console)
        self.distilled = ", distilled from the supernet's largest candidate" if self.teacher is not None else ""
        self.store = DatabaseArtifactStore(prepared.config.storage_url)

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def records(self) -> dict[int, dict[str, Any]]:
        """The fine-tuned records, read where a deadline's decisions need them (empty without a deadline)."""
        return all_finetuned(self.study) if self.deadline is not None else {}

    def _second_pass_todo(self, records: dict[int, dict[str, Any]]) -> list[optuna.trial.FrozenTrial]:
        """The front of the fine-tuned scores (``records``) not tuned twice yet, cheapest first."""
        front = [t for t in finetuned_front(self.trials, records) if t.number in records
                 and _passes(records[t.number]) < 2 and _within(t, self.cost_limit)]
        return sorted(front, key=lambda t: (t.values[1], t.number))

    def pick(self, todo: list[optuna.trial.FrozenTrial],
             records: dict[int, dict[str, Any]]) -> optuna.trial.FrozenTrial:
        """The next of ``todo`` to fine-tune: under a deadline as the fine-tuned candidates' fit predicts the most
        gain per second (:func:`.finetune_plan.next_candidate`), else the first; tuned ones are skipped."""
        if self.deadline is None:
            return todo[0]
        fresh = [t for t in todo if t.number not in records]  # tuned by another process meanwhile
        return next_candidate(fresh, self.feasible, records, self.macs, self.cost_limit) if fresh else todo[0]

    def second_pass_due(self, records: dict[int, dict[str, Any]]) -> bool:
        """Whether the time left is what the second pass over the current fine-tuned front needs; never before one
        candidate per latency stratum is tuned (a short run covers the latencies before it improves a few)."""
        if self.deadline is None:
            return False
        if len(records) < MIN_FIT:
            return False
        need = second_pass_seconds((self.macs[t.number] for t in self._second_pass_todo(records)),
                                   epoch_seconds(records, self.macs), self.wanted, self.prepared.config.jobs)
        return self.deadline - time.time() <= need

    def tune(self, trial: optuna.trial.FrozenTrial, passes: int, progress: Progress, bar: TaskID,
             records: dict[int, dict[str, Any]]) -> int:
        """Fine-tune ``trial``, tuned ``passes`` times so far, once more if no other process has meanwhile and its
        epochs fit before the deadline at the speed of ``records``; 1 if it ran here."""
        from tinycompile.search.artifacts import fetch_numbers

        epochs = self.wanted
        if self.deadline is not None:
            left = self.deadline - time.time()
            rates = epoch_seconds(records, self.macs)
            epochs = epochs_within(left, self.macs[trial.number], rates, self.wanted) if left > 0 else 0
            if not epochs:  # too little time for this one; a cheaper one behind it may still fit
                return 0
        with _claimed(self.prepared, trial.number) as mine:
            if not mine or _passes(finetuned(self.study, trial.number)) != passes:  # tuned elsewhere meanwhile
                return 0
            progress.update(bar, trial=str(trial.number))
            fetch_numbers(self.study, self.prepared.config, [trial.number])  # its weights, wherever they were made
            _finetune_one(self.study, self.prepared, trial, epochs, self.teacher, self.store)
            return 1

    def second_pass(self, progress: Progress) -> int:
        """Until the deadline, tune the fine-tuned front's candidates once more from their fine-tuned weights."""
        done, skipped, bar = 0, set(), None
        while not self.past_deadline():
            records = self.records()
            todo = [t for t in self._second_pass_todo(records) if t.number not in skipped]
            if not todo:
                break
            bar = progress.add_task("second pass", total=None, trial="-") if bar is None else bar
            ran = self.tune(todo[0], 1, progress, bar, records)
            if not ran:
                skipped.add(todo[0].number)  # held by another process, or too long for the time left
            done += ran
            progress.update(bar, completed=done)
        return done


def _within(trial: optuna.trial.FrozenTrial, cost_limit: float | None) -> bool:
    """Whether ``trial`` costs no more than ``cost_limit`` (None: no limit)."""
    return cost_limit is None or trial.values[1] <= cost_limit


def _passes(record: dict[str, Any] | None) -> int:
    """How many times a trial was fine-tuned (records from before the second pass existed: once)."""
    return 0 if record is None else int(record.get("passes", 1))


@contextlib.contextmanager
def _claimed(prepared: Prepared, number: int) -> Iterator[bool]:
    """Whether this process holds the claim on fine-tuning trial ``number`` (False: another one is at it); a claim
    dies with its process, so a killed worker's candidate is free again."""
    folder = supernet_dir(prepared) / "finetune"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{number}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _finetune_one(study: optuna.Study, prepared: Prepared, trial: optuna.trial.FrozenTrial, epochs: int,
                  teacher: np.ndarray | None, store: Any) -> None:
    """Fine-tune one trial from its folder's weights (inherited; fine-tuned in a second pass), keep the better on
    validation, replace its folder whole, store its files in the study, then record the figures."""
    from tinycompile.search.artifacts import FILES

    start = time.perf_counter()
    config = prepared.config
    key = f"{FINETUNED}{trial.number}"
    previous = finetuned(study, trial.number)
    passes = _passes(previous) + 1
    folder = config.run_dir / "trials" / str(trial.number)
    spec, model, before = load_trial(folder)
    task = at_resolution(prepared.task, spec.meta.get("resolution"))
    tuned, metrics = train(spec, task, epochs=epochs, seed=config.seed + trial.number + 1_000 * (passes - 1),
                           lr=FINETUNE_LR, teacher_logits=teacher, device=config.device, init_state=model.state_dict())
    if previous is not None and metrics["val_acc"] <= previous["val_acc"]:  # a second pass that did not help
        study.set_user_attr(key, {**previous, "passes": passes, "last_pass_val_acc": metrics["val_acc"]})
        return
    kept = "fine-tuned"
    if metrics["val_acc"] < before["val_acc"]:  # fine-tuning never makes a candidate worse on validation
        tuned, kept = model, before.get("weights", "inherited")
        metrics.update(val_acc=before["val_acc"], test_acc=before["test_acc"])
    metrics.update(weights=kept, finetune_epochs=epochs + before.get("finetune_epochs", 0), passes=passes,
                   inherited_val_acc=before.get("inherited_val_acc", before["val_acc"]),
                   inherited_test_acc=before.get("inherited_test_acc", before["test_acc"]),
                   supernet=before.get("supernet"), cost=before.get("cost"))
    with folder_lock(folder), atomic_folder(folder) as tmp:
        tmp.chmod(folder.stat().st_mode & 0o7777)  # as the folder it replaces (a temporary folder is private)
        save_trial(tmp, spec, tuned, metrics)
    ids = {name: upload_artifact(artifact_store=store, file_path=str(folder / name), study_or_trial=study)
           for name in FILES}
    record = {key: metrics[key] for key in ("val_acc", "test_acc", "inherited_val_acc", "inherited_test_acc",
                                            "finetune_epochs", "epochs", "distilled", "weights", "train_seconds",
                                            "passes")}
    if previous is not None:  # when the first pass's model was ready, for a benchmark's time line
        record["first_pass"] = {k: previous[k] for k in ("val_acc", "test_acc", "finished_at")}
    record["seconds"] = round(time.perf_counter() - start, 2)  # all of it, storing included: what a deadline sees
    study.set_user_attr(key, {**record, "artifacts": ids, "finished_at": time.time()})
