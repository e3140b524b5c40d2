"""The settings of one search, validated up front so that a bad input fails before any worker starts."""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tinycompile.cost.model import Cost, estimate
from tinycompile.device import resolve_device
from tinycompile.errors import UserError
from tinycompile.fileio import check_out_dir
from tinycompile.search.space import SUPERNET_FAMILIES, SearchSpace, load_space
from tinycompile.targets import Target, load_target
from tinycompile.tasks import Task, load_task

OBJECTIVES = ("latency", "energy")
SAMPLERS = ("nsga2", "tpe", "random")
STRATEGIES = ("train", "supernet")  # train every candidate from scratch, or score it with a supernet's shared weights
# Under a time limit, the supernet's share of it: on MNIST-1D / cortex-m4 (bench/RESULTS.md), an 86 s run with a
# 25-epoch supernet (36 s, 42%) reached 0.99x the hypervolume of a 346 s `train` search, with 15 epochs (23 s, 27%)
# 0.94x; a 59 s run whose 25 epochs took 35 s (60%), 0.95x. Longer runs reach --epochs (40: 53-67 s) within it.
SUPERNET_SHARE = 0.4
BUDGET_PROBES = 3000  # random candidates tried to tell an impossible budget from a hard one


@dataclass(frozen=True)
class SearchConfig:
    """What the user asked for; ``None`` budgets default to the target chip's own memories."""

    task: str
    space: str
    target: str
    trials: int = 40
    seed: int = 0
    objective: str = "latency"
    sampler: str = "nsga2"
    sram_kb: float | None = None
    flash_kb: float | None = None
    latency_ms: float | None = None
    jobs: int = 1
    storage: str | None = None
    study: str | None = None
    out: str = "runs"
    epochs: int = 40
    distill: bool = False
    device: str = "auto"  # where each worker trains; not a setting of the study: machines of one study may differ
    strategy: str = "train"  # supernet: --epochs trains the supernet, trials inherit its weights, the front is fine-tuned
    finetune_epochs: int | None = None  # supernet: epochs of the Pareto candidates' fine-tuning (None: epochs // 4, >= 1)

    @property
    def finetune_epochs_used(self) -> int:
        """The Pareto candidates' fine-tuning epochs (``--strategy supernet``)."""
        return self.finetune_epochs if self.finetune_epochs is not None else max(1, self.epochs // 4)

    @property
    def study_name(self) -> str:
        """The study's name: given (:func:`prepare` sets it from the loaded task, space and target), or, for a
        config.json written before it did, made from the task, space, target, objective and seed as given."""
        task = Path(self.task).stem if self.task.endswith(".npz") else self.task
        return self.study or f"{task}-{self.space}-{self.target}-{self.objective}-s{self.seed}"

    @property
    def run_dir(self) -> Path:
        """The run folder: study, trials, Pareto front, plots."""
        return Path(self.out) / self.study_name

    @property
    def storage_url(self) -> str:
        """The Optuna storage: given, or a SQLite file in the run folder."""
        return self.storage or f"sqlite:///{(self.run_dir / 'study.db').resolve()}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def load_run_config(run_dir: Path) -> SearchConfig:
    """The settings a run folder's ``config.json`` recorded, with the folder where it is now (``report``, ``build``):
    its study is read from that folder's own study.db unless the search used another storage."""
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.json); give runs/<study> as written by `search`")
    try:
        data = json.loads(config_file.read_text())
        if not isinstance(data, dict):
            raise TypeError(f"config.json must hold a JSON object, but holds {type(data).__name__}")
        config = SearchConfig(**{**data, "out": str(run_dir.parent)})
        if not all(isinstance(v, str) for v in (config.task, config.space, config.target, config.objective)):
            raise TypeError("task, space, target and objective must be strings")
    except (OSError, ValueError, TypeError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        raise UserError(f"{config_file}: not a search's config.json ({type(exc).__name__}: {exc}); "
                        "it is written by `tinycompile search`") from None
    return replace(config, storage=config.storage or f"sqlite:///{(run_dir / 'study.db').resolve()}")


@dataclass
class Prepared:
    """A validated search: its config and the loaded task, space and target with the budgets in bytes."""

    config: SearchConfig
    task: Task
    space: SearchSpace
    target: Target
    sram_bytes: int
    flash_bytes: int
    latency_ms: float | None

    def constraints(self, cost: Cost) -> dict[str, float]:
        """Constraint values, feasible when all <= 0: how far SRAM, flash and latency are over budget."""
        values = {"sram_bytes": float(cost.peak_sram - self.sram_bytes), "flash_bytes": float(cost.flash - self.flash_bytes)}
        if self.latency_ms is not None:
            values["latency_ms"] = cost.latency_ms - self.latency_ms
        return values


def prepare(config: SearchConfig) -> Prepared:
    """Validate every setting and check that the budgets admit at least one candidate; raise ``UserError`` if not."""
    if config.trials < 1:
        raise UserError(f"--trials must be >= 1, but got {config.trials}")
    if config.jobs < 1:
        raise UserError(f"--jobs must be >= 1, but got {config.jobs}")
    if config.epochs < 1:
        raise UserError(f"--epochs must be >= 1, but got {config.epochs}")
    if config.device != "auto":  # auto always resolves; each worker resolves it on its own machine
        resolve_device(config.device)
    if config.objective not in OBJECTIVES:
        raise UserError(f"unknown objective {config.objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if config.sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {config.sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if config.strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {config.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if config.finetune_epochs is not None and config.finetune_epochs < 1:
        raise UserError(f"--finetune-epochs must be >= 1, but got {config.finetune_epochs}")
    if config.finetune_epochs is not None and config.strategy != "supernet":
        raise UserError("--finetune-epochs fine-tunes a supernet's Pareto candidates; it needs --strategy supernet")
    if config.storage and not config.storage.startswith(("sqlite:///", "postgresql://", "postgresql+")):
        raise UserError(f"--storage must be a sqlite:///FILE or postgresql://USER@HOST/DB URL, but got {config.storage!r}")
    if config.study is not None and (config.study in ("", ".", "..") or "/" in config.study or "\0" in config.study):
        raise UserError(f"--study must be a plain name (it names the run folder inside --out), but got {config.study!r}")
    target = load_target(config.target)
    space = load_space(config.space)
    if config.strategy == "supernet" and space.family not in SUPERNET_FAMILIES:
        raise UserError(f"--strategy supernet: space {space.name!r} is of family {space.family}, which has no "
                        f"supernet (families with one: {', '.join(SUPERNET_FAMILIES)}); use --strategy train")
    task = load_task(config.task, seed=config.seed)
    if config.study is None:  # from the names inside the files: a --space given as a path must not nest or escape --out
        parts = (task.name, space.name, target.name, config.objective, f"s{config.seed}")
        config = replace(config, study="-".join(folder_name(part) for part in parts))
    space.check_input(task.input_shape)
    sram_kb = _budget("--sram-kb", config.sram_kb, target.sram_kb, "SRAM", target.name)
    flash_kb = _budget("--flash-kb", config.flash_kb, target.flash_kb, "flash", target.name)
    if config.latency_ms is not None and not (math.isfinite(config.latency_ms) and config.latency_ms > 0):
        raise UserError(f"--latency-ms must be a finite number > 0, but got {config.latency_ms}")
    check_out_dir(config.out, "--out")
    prepared = Prepared(config, task, space, target, int(sram_kb * 1024), int(flash_kb * 1024), config.latency_ms)
    _check_reachable(prepared)
    return prepared


def folder_name(text: str) -> str:
    """``text`` as one safe folder name: runs of characters other than letters, digits and ``._+-`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip(".-") or "study"


def _budget(flag: str, value: float | None, chip: float, what: str, target: str) -> float:
    if value is None:
        return chip
    if not (math.isfinite(value) and value > 0):  # nan compares false with everything: it would pass "<= 0"
        raise UserError(f"{flag} must be a finite number > 0, but got {value}")
    if value > chip:
        raise UserError(f"{flag} {value:g} exceeds the {chip:g} KB of {what} that {target} has; lower it or pick another target")
    return value


def _check_reachable(p: Prepared) -> None:
    """Sample candidates from the cost model alone; an impossible budget is refused before any training."""
    rng = random.Random(p.config.seed)
    best: Cost | None = None
    for _ in range(BUDGET_PROBES):
        spec = p.space.build(p.space.random_choices(rng), p.task.input_shape, p.task.num_classes)
        cost = estimate(spec, p.target)
        if all(v <= 0 for v in p.constraints(cost).values()):
            return
        if best is None or cost.peak_sram + cost.flash < best.peak_sram + best.flash:
            best = cost
    assert best is not None
    budget = f"SRAM {p.sram_bytes / 1024:g} KB, flash {p.flash_bytes / 1024:g} KB"
    if p.latency_ms is not None:
        budget += f", latency {p.latency_ms:g} ms"
    raise UserError(
        f"no candidate of space {p.space.name!r} fits {budget} on {p.target.name} (the smallest of {BUDGET_PROBES} "
        f"sampled needs SRAM {best.peak_sram / 1024:.1f} KB, flash {best.flash / 1024:.1f} KB, "
        f"{best.latency_ms:.2f} ms); raise the budget or use a smaller space"
    )
