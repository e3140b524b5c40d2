"""Weight sharing (`search --strategy supernet`): a subnet extracted from a trained supernet is a standalone SpecNet with
the supernet's forward for that candidate; every candidate of every space fits its supernet; a search trains the
supernet once, caches it, reuses it when resumed, and leaves fine-tuned Pareto candidates that load and quantize."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState
from rich.console import Console

from support import run_cli
from tinycompile.backends.flow import trial_workload
from tinycompile.model import SpecNet
from tinycompile.cost.model import estimate
from tinycompile.search.config import Prepared, SearchConfig, prepare
from tinycompile.search.pareto import is_feasible, pareto_front, write_pareto
from tinycompile.search.records import all_finetuned
from tinycompile.search.sharing import (ensure_supernet, finetune_teacher, fits_budgets, fitting_pool, largest_fitting,
                                        new_supernet, train_supernet)
from tinycompile.search.space import load_space
from tinycompile.search.study import run_search
from tinycompile.search.supernet import Supernet, has_batch_norm, recalibrate_bn
from tinycompile.trial import load_trial, save_trial

SUPERNET = ["--task", "digits", "--space", "cnn2d", "--target", "cortex-m4", "--epochs", "1", "--strategy", "supernet"]


def candidates(net: Supernet, count: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    return [net.largest(), net.smallest(), *(net.random_subnet(rng) for _ in range(count))]


def assert_same_forward(net: Supernet, sub, x: torch.Tensor) -> SpecNet:
    model = net.extract(sub)
    assert type(model) is SpecNet and model.spec is sub.spec
    fresh = SpecNet(sub.spec)  # standalone: its own parameters, loadable into a network built from the spec alone
    fresh.load_state_dict(model.state_dict())
    assert not {p.data_ptr() for p in model.parameters()} & {p.data_ptr() for p in net.parameters()}
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(fresh.eval()(x), net(x, sub), atol=1e-5, rtol=1e-5)
        net.train()  # batch statistics of this batch, on both sides
        torch.testing.assert_close(fresh.train()(x), net(x, sub), atol=1e-5, rtol=1e-5)
    net.eval()
    return model


def test_a_subnet_of_a_trained_supernet_is_a_standalone_specnet_with_its_forward(digits, tmp_path: Path) -> None:
    prepared = prepare(SearchConfig(task="digits", space="cnn2d", target="cortex-m4", epochs=1, out=str(tmp_path)))
    net = new_supernet(prepared)
    metrics = train_supernet(net, digits, epochs=1, seed=0, device="cpu")
    assert metrics["epochs"] == 1 and metrics["largest"]["val_acc"] > 0.5  # one epoch already teaches the largest
    x = torch.from_numpy(digits.x_val[:16])
    kinds = set()
    for sub in candidates(net, 12):
        model = assert_same_forward(net, sub, x)
        kinds |= {layer.op for layer in sub.spec.layers}
        # a trial folder of it loads like any trained trial
        assert recalibrate_bn(model, digits.x_train[:256]) is True
        folder = tmp_path / "trial"
        save_trial(folder, sub.spec, model, {"val_acc": 0.0})
        _, loaded, _ = load_trial(folder)
        torch.testing.assert_close(loaded(x), model(x))
    assert {"conv", "dwconv", "add", "maxpool", "avgpool", "gap", "flatten", "dense"} <= kinds


def test_a_time_limit_cuts_the_supernet_epochs_and_leaves_a_roomy_one_as_it_was(digits, tmp_path: Path) -> None:
    prepared = prepare(SearchConfig(task="digits", space="cnn2d", target="cortex-m4", epochs=1, out=str(tmp_path)))
    plain = new_supernet(prepared)
    train_supernet(plain, digits, epochs=4, seed=0, device="cpu")
    roomy = new_supernet(prepared)
    assert train_supernet(roomy, digits, epochs=4, seed=0, device="cpu", seconds=1e6)["epochs"] == 4
    for (name, a), b in zip(plain.state_dict().items(), roomy.state_dict().values()):  # the same training
        torch.testing.assert_close(a, b, msg=name)
    tight = train_supernet(new_supernet(prepared), digits, epochs=40, seed=0, device="cpu", seconds=1e-3)
    assert tight["epochs"] == 3 and [h["epoch"] for h in tight["history"]] == [1, 2, 3]  # planned again after 2
    assert tight["largest"]["val_acc"] > 0.8  # the new plan's schedule ran its course: it learnt


def test_a_supernet_cut_short_by_the_time_limit_does_not_teach_the_fine_tuning(digits, tmp_path: Path) -> None:
    def prepared(epochs: int) -> Prepared:
        return prepare(SearchConfig(task="digits", space="mlp", target="cortex-m4", epochs=epochs, distill=True,
                                    strategy="supernet", study=f"e{epochs}", out=str(tmp_path)))

    cut, full = prepared(5), prepared(3)
    ensure_supernet(cut, Console(quiet=True), seconds=1e-3)  # planned again after 2 epochs: 3 of 5
    ensure_supernet(full, Console(quiet=True))
    console = Console(record=True, width=200)
    assert finetune_teacher(cut, console) is None
    said = console.export_text()
    assert "not distilling: the time limit cut the supernet's training to 3 of 5 epochs" in said
    assert not (cut.config.run_dir / "teacher").exists()
    logits = finetune_teacher(full, console)  # all its epochs: its largest candidate teaches
    assert logits is not None and logits.shape == (len(digits.x_train), digits.num_classes)
    assert (logits.argmax(1) == digits.y_train).mean() > 0.8


@pytest.mark.parametrize("space", ["cnn1d", "cnn2d", "mbconv1d", "mbconv2d", "mlp"])
def test_every_candidate_of_a_space_takes_its_weights_from_the_supernet(space: str) -> None:
    # Untrained, but with batch-norm statistics and kernel transforms moved off their initial values, so that a
    # wrong slice, crop or transform shows; every elastic dimension of each family is sampled.
    shape = (1, 1, 40) if space.endswith("1d") else (1, 8, 8)
    torch.manual_seed(0)
    net = Supernet(load_space(space), shape, 10)
    with torch.no_grad():
        for slot in net.slots.values():
            for t in slot.transforms.values():
                t.add_(0.1 * torch.randn_like(t))
            if hasattr(slot, "running_mean"):
                slot.running_mean.normal_()
                slot.running_var.uniform_(0.5, 2.0)
                slot.bn_weight.normal_()
    subs = candidates(net, 40, seed=1)
    for sub in subs[:12]:
        assert_same_forward(net, sub, torch.randn(4, *sub.spec.input_shape))
    for sub in candidates(net, 300, seed=2):  # every weight fits what the supernet holds
        for i, slot in enumerate(sub.slots):
            if slot is not None:
                net._slot(sub, i)
    if space.startswith("mbconv"):  # elastic kernel: the 3x3 and 5x5 depthwise kernels pass through transforms
        assert any(len(s.transforms) == 2 for s in net.slots.values())
    assert has_batch_norm(net.extract(subs[0])) is (space != "mlp")  # an MLP has no batch norm to recalibrate


def test_the_sandwich_trains_the_largest_candidate_that_fits_the_budgets(digits, tmp_path: Path) -> None:
    # 16 KB SRAM / 32 KB flash: cnn2d's largest candidate (6.2 M MACs) does not fit, so the sandwich's largest (the
    # teacher) is the largest that does, and the random candidates of each step are drawn among those that fit
    prepared = prepare(SearchConfig(task="digits", space="cnn2d", target="cortex-m4", epochs=1, sram_kb=16,
                                    flash_kb=32, out=str(tmp_path)))
    net = new_supernet(prepared)
    fits = lambda sub: fits_budgets(prepared, sub)  # noqa: E731
    assert not fits(net.largest())
    pool = fitting_pool(net, fits, random.Random(0))
    assert len(pool) > 100 and all(fits(sub) for sub in pool)
    largest = largest_fitting(net, fits, pool)
    macs = sum(largest.spec.macs())
    assert fits(largest) and macs >= max(sum(sub.spec.macs()) for sub in pool)
    assert macs < sum(net.largest().spec.macs())
    metrics = train_supernet(net, digits, epochs=1, seed=0, device="cpu", fits=fits)
    assert metrics["largest"]["macs"] == macs and metrics["largest"]["val_acc"] > 0.5  # it learns in one epoch


def load(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=run_dir.name, storage=f"sqlite:///{run_dir / 'study.db'}")


def test_a_supernet_search_caches_its_supernet_reuses_it_and_fine_tunes_the_front(tmp_path: Path) -> None:
    args = ["search", *SUPERNET, "--distill", "--study", "sn", "--out", str(tmp_path)]
    first = run_cli(*args, "--trials", "4")
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "sn"
    info_file = run_dir / "supernet" / "supernet.json"
    info = json.loads(info_file.read_text())
    assert info["epochs"] == 1 and info["largest"]["val_acc"] > 0.5
    stamp = (info_file.stat().st_mtime_ns, (run_dir / "supernet" / "supernet.pt").stat().st_mtime_ns)
    trials = load(run_dir).get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 4
    params = [t.params for t in trials]  # the sandwich's two ends, queued first, the fastest network among them
    assert info["smallest"]["choices"] in params and info["largest"]["choices"] in params
    for t in trials:  # scored with inherited weights: no training
        if t.user_attrs["trained"]:
            assert t.user_attrs["weights"] == "inherited" and "train_seconds" not in t.user_attrs
    pareto = json.loads((run_dir / "pareto.json").read_text())
    assert pareto["supernet"]["key"] == info["key"]
    teacher = pareto["teacher"]  # --distill: the supernet's largest candidate, its test accuracy beside the students'
    assert "largest candidate" in teacher["source"] and teacher["test_acc"] > 0.5
    assert "chooses where networks down-sample (stem.stride, blocks.stride, blocks.pool)" in first.stdout  # cnn2d
    assert "distillation teacher" in first.stdout and f"{teacher['test_acc']:.3f}" in first.stdout
    assert pareto["front"]
    for row in pareto["front"]:
        metrics = json.loads((Path(row["folder"]) / "metrics.json").read_text())
        assert metrics["weights"] in ("fine-tuned", "inherited") and metrics["finetune_epochs"] == 1
        assert metrics["distilled"] is True and row["test_acc"] == metrics["test_acc"]
        assert row["inherited_test_acc"] == metrics["inherited_test_acc"]
        # the build path: the folder loads and quantizes, its int8 accuracy measured on the task
        work, source = trial_workload(Path(row["folder"]), 4)
        assert work.graph.ops and 0.0 <= source["int8_test_accuracy"] <= 1.0
    assert load_trial(run_dir / "best")[0].meta["trial"] == pareto["front"][0]["trial"]
    printed = {cells[0]: cells[1] for line in first.stdout.splitlines()  # the table: trial, val acc, test acc, ...
               if len(cells := [c.strip() for c in line.split("│")[1:-1]]) > 2 and cells[0].isdigit()}
    for row in pareto["front"]:  # the fine-tuned model's validation accuracy beside its test accuracy
        assert printed[str(row["trial"])] == f"{row.get('finetuned_val_acc', row['val_acc']):.3f}"
    # the inherited front, fine-tuned by the worker, whose claims the search process then finds done
    front = len(pareto_front(load(run_dir).get_trials()))
    assert f"{front} of {front} Pareto candidates fine-tuned" in first.stdout + first.stderr

    again = run_cli(*args, "--trials", "6")
    assert again.returncode == 0, again.stderr
    assert "reusing the supernet" in again.stdout + again.stderr
    assert "training the supernet" not in again.stdout + again.stderr
    assert (info_file.stat().st_mtime_ns, (run_dir / "supernet" / "supernet.pt").stat().st_mtime_ns) == stamp
    assert json.loads(info_file.read_text())["trained_at"] == info["trained_at"]
    assert len(load(run_dir).get_trials(states=(TrialState.COMPLETE,))) == 6
    for row in json.loads((run_dir / "pareto.json").read_text())["front"]:  # new front members fine-tuned too
        assert "finetuned_val_acc" in row
    assert not list(run_dir.rglob("*.tmp"))


def test_a_supernet_of_another_space_or_seed_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "x"
    (run_dir / "supernet").mkdir(parents=True)
    (run_dir / "supernet" / "supernet.pt").write_bytes(b"")
    (run_dir / "supernet" / "supernet.json").write_text(json.dumps({"key": "0123456789abcdef"}))
    result = run_cli("search", *SUPERNET, "--trials", "1", "--study", "x", "--out", str(tmp_path / "runs"))
    assert result.returncode == 2
    err = result.stderr.strip()
    assert "\n" not in err and "holds a supernet trained for another task, space, seed or epochs" in err, err


def test_finetune_epochs_need_the_supernet_strategy(tmp_path: Path) -> None:
    result = run_cli("search", "--task", "digits", "--space", "mlp", "--target", "cortex-m4", "--trials", "1",
                     "--finetune-epochs", "2", "--out", str(tmp_path))
    assert result.returncode == 2 and "--finetune-epochs fine-tunes a supernet's Pareto candidates" in result.stderr
    assert not np.any([p.name == "study.db" for p in tmp_path.rglob("*")])


def test_time_left_before_a_deadline_fine_tunes_those_behind_the_front_and_the_best_twice(tmp_path: Path) -> None:
    config = SearchConfig(task="digits", space="cnn2d", target="cortex-m4", epochs=1, trials=8, strategy="supernet",
                          finetune_epochs=2, study="dl", out=str(tmp_path))
    study = run_search(prepare(config), Console(quiet=True), deadline=time.time() + 600)
    trials = study.get_trials(deepcopy=False)
    feasible = {t.number for t in trials if t.values is not None and is_feasible(t)}
    front = {t.number for t in pareto_front(trials)}
    assert front < feasible  # some candidates are behind the inherited front
    records = all_finetuned(study)
    assert set(records) == feasible  # ample time: every candidate, the front's and those behind it
    for number, record in records.items():
        metrics = json.loads((config.run_dir / "trials" / str(number) / "metrics.json").read_text())
        assert 1 <= record["epochs"] <= 2 and metrics["val_acc"] == record["val_acc"]
        if "first_pass" in record:  # a second pass kept only when it beat the first on validation
            assert record["passes"] == 2 and record["finetune_epochs"] == 4
            assert record["val_acc"] > record["first_pass"]["val_acc"]
        else:
            assert record["finetune_epochs"] == 2
            assert record.get("passes") == 1 or record["last_pass_val_acc"] <= record["val_acc"]
    # the front handed over is of the fine-tuned scores: no candidate beats a member once fine-tuned
    final = {t.number: (records[t.number]["val_acc"], t.values[1]) for t in trials if t.number in feasible}
    rows = write_pareto(study, config)
    assert rows
    for row in rows:
        assert records[row["trial"]]["passes"] == 2  # ample time: the final front was tuned a second time
        acc, ms = final[row["trial"]]
        assert row["finetuned_val_acc"] == acc
        assert not any(a >= acc and c <= ms and (a, c) != (acc, ms) for a, c in final.values())
    assert {r["trial"] for r in rows} == {n for n, (acc, ms) in final.items()
                                           if not any(a >= acc and c <= ms and (a, c) != (acc, ms)
                                                      for a, c in final.values())}


def median_feasible_latency(prepared: Prepared, samples: int = 400) -> float:
    """The median cost-model latency of the space's candidates that fit the budgets (seeded random draws)."""
    rng = random.Random(0)
    space, task = prepared.space, prepared.task
    costs = [estimate(space.build(space.random_choices(rng), task.input_shape, task.num_classes), prepared.target)
             for _ in range(samples)]
    return float(np.median([c.latency_ms for c in costs if all(v <= 0 for v in prepared.constraints(c).values())]))


def test_under_a_deadline_candidates_beyond_the_cost_limit_are_not_fine_tuned(tmp_path: Path) -> None:
    config = SearchConfig(task="digits", space="cnn2d", target="cortex-m4", epochs=1, trials=12, strategy="supernet",
                          sampler="random", finetune_epochs=1, study="limit", out=str(tmp_path))
    prepared = prepare(config)
    # The limit splits the space's candidates about in half (46% of the random sampler's draws are within it), so 12
    # independent ones (the sampler is seeded per process) all fall on one side about once in 1,400 runs; a fixed
    # 1.0 ms with NSGA-II's 8 left every one beyond it in a few runs of a hundred.
    limit = median_feasible_latency(prepared)
    study = run_search(prepared, Console(quiet=True), deadline=time.time() + 600, cost_limit=limit)
    feasible = [t for t in study.get_trials(deepcopy=False) if t.values is not None and is_feasible(t)]
    within = {t.number for t in feasible if t.values[1] <= limit}
    seen = f"limit {limit:.3f} ms; feasible (trial, ms): {[(t.number, round(t.values[1], 3)) for t in feasible]}"
    assert within and len(within) < len(feasible), seen  # candidates on both sides of the limit
    assert set(all_finetuned(study)) == within, seen  # ample time: all of those within it, none beyond


def test_a_time_limit_ends_a_supernet_search_with_its_front_fine_tuned(tmp_path: Path) -> None:
    start = time.time()
    result = run_cli("search", "--task", "digits", "--space", "mlp", "--target", "cortex-m4", "--strategy", "supernet",
                     "--epochs", "1", "--trials", "1000", "--time-limit", "20", "--out", str(tmp_path))
    wall = time.time() - start
    assert result.returncode == 0, result.stderr
    run = tmp_path / "digits-mlp-cortex-m4-latency-s0"
    study = optuna.load_study(study_name=run.name, storage=f"sqlite:///{run / 'study.db'}")
    finished = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    assert 0 < len(finished) < 1000  # the limit, not --trials, ended it
    # None started after it: the limit runs from the command's own start, after its imports (seconds later than
    # ``start`` on a loaded machine) and before its first trial.
    starts = [t.datetime_start.timestamp() for t in finished]
    assert max(starts) < min(starts) + 20
    assert wall < 20 + 60  # what was under way at the limit finished; no more (slack for a loaded machine)
    rows = json.loads((run / "pareto.json").read_text())["front"]
    assert any("finetuned_val_acc" in r for r in rows)  # the front's fine-tuning ran within the limit
