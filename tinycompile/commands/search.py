"""``tinycompile search``: hardware-aware multi-objective architecture search."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from rich.console import Console

from tinycompile.console import console as make_console
from tinycompile.device import DEVICES
from tinycompile.errors import UserError

from tinycompile.search.config import OBJECTIVES, SAMPLERS, STRATEGIES, SUPERNET_SHARE, SearchConfig, prepare
from tinycompile.search.energy import DEFAULT_COUNTRY, EnergyMeter, caption, check_country, search_energy
from tinycompile.search.pareto import pareto_table, write_pareto
from tinycompile.search.plots import write_plots
from tinycompile.search.records import run_extras

FINETUNE_SHARE = 0.5  # of a supernet run's time after its supernet: the benchmark's setting (bench/RESULTS.md)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``search`` subcommand."""
    p = sub.add_parser("search", help="search tiny networks for a task and a chip (Optuna, multi-objective)")
    p.add_argument("--task", required=True,
                   help="mnist1d, digits, basicmotions, kws-espeak[:N], or an .npz of x_train, y_train, x_test, y_test")
    p.add_argument("--space", required=True, help="a search space in search_spaces/ (cnn1d, cnn2d, mbconv1d, mbconv2d, mlp) or a YAML file")
    p.add_argument("--target", required=True, help="a chip in hw_targets/ (see `tinycompile targets`) or a YAML file")
    p.add_argument("--trials", type=int, default=40, help="finished trials to reach (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler, the splits and training (default 0)")
    p.add_argument("--objective", choices=OBJECTIVES, default="latency", help="cost to minimise beside accuracy")
    p.add_argument("--sampler", choices=SAMPLERS, default="nsga2", help="Optuna sampler (default nsga2)")
    p.add_argument("--sram-kb", type=float, help="hard peak-SRAM budget in KB (default: the chip's SRAM)")
    p.add_argument("--flash-kb", type=float, help="hard flash budget in KB (default: the chip's flash)")
    p.add_argument("--latency-ms", type=float, help="hard latency budget in ms (default: none)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite file in the run folder; postgresql://... to share)")
    p.add_argument("--study", help="study name (default: made from task, space, target, objective and seed)")
    p.add_argument("--out", default="runs", help="folder of run folders (default runs/)")
    p.add_argument("--epochs", type=int, default=40,
                   help="maximum training epochs per candidate; with --strategy supernet, the supernet's (default 40)")
    p.add_argument("--distill", action="store_true", help="train candidates against a larger teacher's soft outputs: "
                   "the better of the space's largest candidate and a DS-CNN, trained twice as long (with --strategy "
                   "supernet: fine-tune the Pareto candidates against the supernet's largest)")
    p.add_argument("--strategy", choices=STRATEGIES, default="train",
                   help="train: every candidate from scratch (default); supernet: train one weight-sharing supernet, "
                   "score candidates with inherited weights, fine-tune the Pareto front (families cnn, mbconv, mlp)")
    p.add_argument("--finetune-epochs", type=int,
                   help="--strategy supernet: epochs of the Pareto candidates' fine-tuning (default: --epochs / 4)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="wall-clock budget of this run: no trial or fine-tuning starts after it (one under way "
                   "finishes); with --strategy supernet, the supernet trains for at most "
                   f"{round(SUPERNET_SHARE * 100)}%% of it (fewer --epochs if it must), and fine-tuning goes beyond "
                   "the front and twice over the best as the time allows (default: none, --trials decides)")
    p.add_argument("--finetune-share", type=float, metavar="FRACTION",
                   help=f"--strategy supernet with --time-limit: the share of the time left once the supernet is "
                   f"trained that goes to fine-tuning rather than trials (default {FINETUNE_SHARE})")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where to train: auto (CUDA if torch sees a GPU, else the CPU; default), cpu or cuda")
    p.add_argument("--country", default=DEFAULT_COUNTRY, metavar="ISO3",
                   help=f"where this machine draws its electricity, for the search's CO2e (ISO 3166 alpha-3; default "
                        f"{DEFAULT_COUNTRY})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate, search, then write and print the Pareto front."""
    started = time.time()  # --time-limit counts from here: start-up is part of what the user waits for
    config = SearchConfig(
        task=args.task,
        space=args.space,
        target=args.target,
        trials=args.trials,
        seed=args.seed,
        objective=args.objective,
        sampler=args.sampler,
        sram_kb=args.sram_kb,
        flash_kb=args.flash_kb,
        latency_ms=args.latency_ms,
        jobs=args.jobs,
        storage=args.storage,
        study=args.study,
        out=args.out,
        epochs=args.epochs,
        distill=args.distill,
        device=args.device,
        strategy=args.strategy,
        finetune_epochs=args.finetune_epochs,
    )
    console = make_console()
    country = check_country(args.country)
    _check_time_limit(args)
    prepared = prepare(config)
    config = prepared.config  # with the study (and so the run folder) named
    console.print(
        f"searching {config.space} on {prepared.task.name} for {prepared.target.name}: {config.trials} trials, "
        f"{config.sampler}, strategy {config.strategy}, budgets SRAM {prepared.sram_bytes / 1024:g} KB flash {prepared.flash_bytes / 1024:g} KB"
        + (f" latency {config.latency_ms:g} ms" if config.latency_ms else "")
        + f"; run folder {config.run_dir}"
    )
    scales = prepared.space.scale_choices() if config.strategy == "supernet" else []
    if scales:
        console.print(f"note: space {prepared.space.name} chooses where networks down-sample ({', '.join(scales)}); "
                      "a supernet's shared weights serve a space that fixes them far better (as cnn1d-shared does: "
                      "inherited accuracy 0.93 against 0.82 on MNIST-1D)")
    from tinycompile.search.study import completed, run_search  # imports torch: only once the inputs are known good

    deadline = None if args.time_limit is None else started + args.time_limit
    finetune_share = args.finetune_share if args.finetune_share is not None else FINETUNE_SHARE
    share = 1 - finetune_share if deadline is not None and config.strategy == "supernet" else None
    with EnergyMeter(country, config):  # this process and its workers: one session, recorded in the study
        study = run_search(prepared, make_console(stderr=True), deadline=deadline, trial_share=share)
    if deadline is not None and not completed(study):
        raise UserError(f"--time-limit {args.time_limit:g} s ended before any trial finished; give the search more "
                        f"time: a larger --time-limit resumes the run in {config.run_dir} with what it made")
    return summarize(study, config, console)


def _check_time_limit(args: argparse.Namespace) -> None:
    """--time-limit and --finetune-share: numbers in range, the share only where it applies; UserError if not."""
    if args.time_limit is not None and not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise UserError(f"--time-limit must be a finite number of seconds > 0, but got {args.time_limit:g}")
    if args.finetune_share is None:
        return
    if not 0 < args.finetune_share < 1:
        raise UserError(f"--finetune-share must be between 0 and 1 (exclusive), but got {args.finetune_share:g}")
    if args.strategy != "supernet" or args.time_limit is None:
        raise UserError("--finetune-share shares a time limit between trials and fine-tuning; it needs --strategy "
                        "supernet and --time-limit")


def summarize(study, config: SearchConfig, console: Console) -> int:  # noqa: ANN001 - optuna.Study (lazy import)
    """Write pareto.json (the Pareto trials' folders fetched from the study where missing) and the plots, print the
    Pareto table; each says what the search cost in energy where the study recorded it."""
    rows = write_pareto(study, config)
    target = Path(config.target).stem if config.target.endswith((".yaml", ".yml")) else config.target
    energy = caption(search_energy(study, rows[0] if rows else None, target))
    write_plots(study, config.run_dir, config.objective, energy)
    console.print(pareto_table(rows, f"Pareto front of {study.study_name} ({len(rows)} models)", energy))
    extras = run_extras(config.run_dir)
    if "supernet" in extras:
        console.print("strategy supernet: val and test acc are the fine-tuned model's where it was fine-tuned, else "
                      "the inherited weights' (pareto.json: val_acc is what the search ranked, finetuned_val_acc "
                      "beside it)")
    if "teacher" in extras:
        teacher = extras["teacher"]
        console.print(f"distillation teacher ({teacher['source']}): test acc {teacher['test_acc']:.3f}")
    console.print(f"wrote {config.run_dir / 'pareto.json'}, plots in {config.run_dir}")
    return 0
